#!/usr/bin/env bash
# The one command that runs every test (README "Run all tests"; .ci/run calls it).
# Installs what the tests need on a Debian 12 machine (run as root), then runs:
# rustfmt, clippy, the workspace tests (unit, property, snapshot, end-to-end with
# real NUT programs and apcupsd, the appliance firmware in QEMU), the no_std / thumbv7em checks
# of the core and the firmware's size budget.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

# --- 1. System packages the tests use as judges of compatibility -----------------------
need=()
[ -x /lib/nut/apcsmart ] || need+=(nut-server)
command -v upsc >/dev/null 2>&1 || need+=(nut-client)
command -v socat >/dev/null 2>&1 || need+=(socat)
# apcupsd is unpacked below, not installed: it conflicts with NUT's packages.
dpkg -s libusb-0.1-4 >/dev/null 2>&1 || need+=(libusb-0.1-4)
dpkg -s libwrap0 >/dev/null 2>&1 || need+=(libwrap0)
# The notification tests' SMTP server (Debian's python3, not a pyenv one).
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
# The web UI's browser test: Debian's Chromium driven by playwright-core from npm.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs)
# The appliance firmware's judge (an emulated Cortex-M4) and the tools that size it.
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v arm-none-eabi-nm >/dev/null 2>&1 || need+=(binutils-arm-none-eabi)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/test.sh: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  # The packages' own daemons (NUT's server and monitor) are not under test and
  # must not hold ports or act on this machine's power; the tests start their own instances.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now nut-server nut-monitor nut-driver.target >/dev/null 2>&1 || true
  fi
fi

# apcupsd 3.14.14 (the apcupsd interop test's judge) and NUT both provide `ups-monitor`, so
# Debian will not install them side by side. The test runs apcupsd's binaries from the unpacked
# package instead (tests/tests/apcupsd_interop.rs looks in $UPSGUARD_APCUPSD_ROOT); nothing of
# it is installed, so no system service or shutdown hook of its own can act on this machine.
export UPSGUARD_APCUPSD_ROOT=${UPSGUARD_APCUPSD_ROOT:-/opt/upsguard-peers/apcupsd}
if [ ! -x "$UPSGUARD_APCUPSD_ROOT/sbin/apcupsd" ]; then
  say "unpacking apcupsd into $UPSGUARD_APCUPSD_ROOT"
  dl=$(mktemp -d)
  if ! (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root apcupsd); then
    apt-get update -qq
    (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root apcupsd)
  fi
  mkdir -p "$UPSGUARD_APCUPSD_ROOT"
  dpkg-deb -x "$dl"/apcupsd_*.deb "$UPSGUARD_APCUPSD_ROOT"
  rm -rf "$dl"
fi

# --- 2. Toolchain pieces --------------------------------------------------------------
rustup component add rustfmt clippy >/dev/null 2>&1 || true
thumb=thumbv7em-none-eabihf
# The core's Cortex-M4 build and the firmware test need this target: no fallback.
rustup target list --installed 2>/dev/null | grep -qx "$thumb" || rustup target add "$thumb"

# --- 3. Style and lints ---------------------------------------------------------------
say "rustfmt"
cargo fmt --all -- --check
say "clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "clippy: the server build without the emulator (--no-default-features)"
cargo clippy -p upsguard --no-default-features --locked -- -D warnings

# --- 4. no_std core -------------------------------------------------------------------
say "no_std core: no std/alloc feature anywhere in its dependency tree"
if cargo tree -p upsguard-core -e normal,features --target "$thumb" --locked | grep -E '"(std|alloc)"'; then
  echo "upsguard-core pulls in std or alloc" >&2
  exit 1
fi
say "no_std core: build for $thumb"
cargo build -p upsguard-core --target "$thumb" --release --locked
cargo build -p upsguard-core --target "$thumb" --release --features defmt,embedded-io --locked
cargo clippy -p upsguard-core --target "$thumb" --features embedded-io --locked -- -D warnings
say "appliance firmware (firmware/): build, clippy, flash and static RAM against the budget"
# Same target dir as ci/firmware.sh, so its build reuses these artifacts.
(cd firmware && cargo clippy --release --locked --target "$thumb" --target-dir ../target/firmware -- -D warnings)
ci/firmware.sh
# tests/tests/firmware_qemu.rs boots this ELF in qemu-system-arm (mps2-an386).
export UPSGUARD_FIRMWARE_ELF=$PWD/target/firmware/upsguard-fw.elf

# --- 5. Tests ------------------------------------------------------------------------
# End-to-end tests run the real binaries, so build them first (tests find them beside
# their own executable).
say "build binaries"
cargo build --workspace --bins --locked
say "cargo test --workspace"
set +e
CI=true cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' target/test-output.txt | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
set -- $passed

# --- 6. Web UI in a real browser -------------------------------------------------------
# tests/browser/ui-test.mjs runs target/debug/upsguard --simulate and drives headless Chromium
# through setup, login, dashboard, settings, events and logout; last line "N passed, N failed".
say "browser test (headless Chromium, tests/browser)"
set +e
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node ui-test.mjs) 2>&1 | tee target/browser-test-output.txt
browser_status=${PIPESTATUS[0]}
set -e
browser=$(tail -n 1 target/browser-test-output.txt | grep -Eo '^[0-9]+ passed, [0-9]+ failed$' | awk '{print $1, $3}')
if [ -z "$browser" ]; then
  browser="0 1"
  [ "$browser_status" -ne 0 ] || browser_status=1
fi
set -- $(( $1 + ${browser% *} )) $(( $2 + ${browser#* } ))
printf '\nTotal: %s passed, %s failed\n' "$1" "$2"
[ "$status" -ne 0 ] && exit "$status"
exit "$browser_status"
