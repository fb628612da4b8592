#!/usr/bin/env bash
# Prints the flash a Cortex-M4 build of upsguard-core takes (link driver + shutdown machine,
# opt-level "s", LTO, panic=abort) and fails above the 32 KiB budget.
set -euo pipefail
cd "$(dirname "$0")/core-size"
target=thumbv7em-none-eabihf
RUSTFLAGS="-C link-arg=-Tlink.x -C link-arg=--unresolved-symbols=ignore-all" \
  cargo build --release --target "$target" --quiet --target-dir ../../target/core-size
elf=../../target/core-size/$target/release/upsguard-core-size
read -r text rodata data <<<"$(python3 - "$elf" <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb').read()
# ELF32 little-endian section headers.
shoff, = struct.unpack_from('<I', f, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', f, 0x2E)
def sh(i):
    return struct.unpack_from('<IIIIIIIIII', f, shoff + i * shentsize)
names = sh(shstrndx)[4]
sizes = {}
for i in range(shnum):
    name_off, _, _, _, _, size, *_ = sh(i)
    end = f.index(b'\0', names + name_off)
    sizes[f[names + name_off:end].decode()] = size
print(sizes.get('.text', 0), sizes.get('.rodata', 0), sizes.get('.data', 0))
PY
)"
flash=$((text + rodata + data))
printf 'upsguard-core on %s: .text %d B, .rodata %d B, .data %d B => %d B of flash (budget 32768 B)\n' \
  "$target" "$text" "$rodata" "$data" "$flash"
[ "$flash" -le 32768 ]
