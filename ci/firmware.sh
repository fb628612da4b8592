#!/usr/bin/env bash
# Builds the appliance firmware (firmware/, QEMU mps2-an386, release: opt-level "s", LTO,
# panic=abort), prints its flash and static RAM, and fails when upsguard-core's part of it
# exceeds 32 KiB of flash or 4 KiB of static RAM (see ci/firmware-size.py for how the core's
# part is attributed). Leaves the ELF at target/firmware/upsguard-fw.elf for
# tests/tests/firmware_qemu.rs (UPSGUARD_FIRMWARE_ELF).
#
# Needs the thumbv7em-none-eabihf target, python3 and binutils-arm-none-eabi (ci/test.sh
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=thumbv7em-none-eabihf
out=${UPSGUARD_FIRMWARE_TARGET_DIR:-$root/target/firmware}
flash_budget=${UPSGUARD_FW_CORE_FLASH_BUDGET:-32768}
ram_budget=${UPSGUARD_FW_CORE_RAM_BUDGET:-4096}

(cd firmware && cargo fmt --check)
build() {
  (cd firmware && cargo build --release --locked --quiet --target-dir "$out" "$@")
}
# The firmware, then the same firmware with the core stubbed out (the size cross-check).
build
cp "$out/$target/release/upsguard-fw" "$out/upsguard-fw.elf"
build --features stub-core
cp "$out/$target/release/upsguard-fw" "$out/upsguard-fw-stub.elf"

python3 ci/firmware-size.py "$out/upsguard-fw.elf" "$out/upsguard-fw-stub.elf" core \
  "$flash_budget" "$ram_budget"
echo "firmware ELF: $out/upsguard-fw.elf"
