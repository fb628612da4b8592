#!/usr/bin/env python3
"""Flash and static RAM of the upsguard firmware, and how much of it is upsguard-core's.

usage: firmware-size.py ELF STUB_ELF CORE_DIR FLASH_BUDGET RAM_BUDGET

The ELF must carry line tables (`debug = "line-tables-only"`) and its relocations
(`-C link-arg=--emit-relocs`); neither changes a byte of what is loaded.

The core's part is attributed, not guessed:
* .text: every byte by the DWARF line table row that covers it, i.e. by the source file the
  instruction came from, so code LTO inlined into the firmware's functions still counts as the
  core's. Rows from Rust's own library (`core::`, compiler-builtins) inherit the owner of the
  nearest preceding (else following) row of the same sequence (function): an `Option::map`
  inlined into the link driver is the link driver's. Library functions left standing on their
  own (memcpy, fmt::Formatter::pad) are shared runtime, counted as neither.
* .rodata: every object (nm symbol, or the gap between two) by who references it: the owner of
  each .text relocation site (literal pool word, movw/movt pair) pointing into it, then through
  .rodata's own relocations (tables of string pointers). An object the core and the firmware
  both use counts as the core's.
* .data/.bss: the core's own statics, plus the firmware static that holds the Agent
  (`upsguard_fw::app::AGENT`): the agent's whole state is the core's RAM, wherever it lives.
The core is upsguard-core plus the crates only it brings in (heapless, nom, postcard, serde,
cobs, hash32, byteorder, memchr, stable_deref_trait) and embedded-io (the pump's interface).

As a cross-check the script also prints the whole firmware minus a build of it with the core
stubbed out (feature stub-core): an upper bound, since it also counts the firmware's own glue
that formats the core's events. Exits 1 when the attributed part exceeds a budget.
"""

import bisect
import collections
import os
import re
import struct
import subprocess
import sys

CORE_CRATES = {
    "upsguard-core", "heapless", "nom", "postcard", "serde", "serde_core", "cobs", "hash32",
    "byteorder", "memchr", "stable_deref_trait", "embedded-io",
}
AGENT_STATIC = "upsguard_fw::app::AGENT"


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def tool(name):
    for cand in (f"arm-none-eabi-{name}", name):
        try:
            subprocess.run([cand, "--version"], check=True, capture_output=True)
            return cand
        except (OSError, subprocess.CalledProcessError):
            continue
    sys.exit(f"firmware-size: {name} not found (Debian: apt-get install binutils-arm-none-eabi)")


OBJDUMP, NM, READELF = tool("objdump"), tool("nm"), tool("readelf")


class Elf:
    def __init__(self, path):
        self.data = open(path, "rb").read()
        f = self.data
        shoff, = struct.unpack_from("<I", f, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", f, 0x2E)
        hdrs = [struct.unpack_from("<IIIIIIIIII", f, shoff + i * shentsize) for i in range(shnum)]
        names = hdrs[shstrndx][4]
        self.sections = {}
        for h in hdrs:
            end = f.index(b"\0", names + h[0])
            self.sections[f[names + h[0]:end].decode()] = h  # name, type, flags, addr, off, size
        self.size = {k: v[5] for k, v in self.sections.items()}

    def range(self, name):
        h = self.sections.get(name)
        return (h[3], h[3] + h[5]) if h else (0, 0)

    def u16(self, addr):
        return self._read(addr, "<H")

    def u32(self, addr):
        return self._read(addr, "<I")

    def _read(self, addr, fmt):
        for h in self.sections.values():
            if h[1] != 8 and h[2] & 2 and h[3] <= addr < h[3] + h[5]:  # loaded, not NOBITS
                return struct.unpack_from(fmt, self.data, h[4] + addr - h[3])[0]
        return None


def crate_of_path(path, core_dir):
    path = os.path.normpath(path)
    if path.startswith(core_dir + os.sep):
        return "upsguard-core"
    m = re.search(r"/index\.crates\.io-[^/]+/([A-Za-z0-9_\-]+?)-\d+\.\d+\.\d+[^/]*/", path)
    if m:
        return m.group(1)
    if "/library/" in path or path.startswith("library/") or "compiler-builtins" in path:
        return None  # Rust's own library: owned by context
    return "firmware"


def line_rows(elf_path, core_dir):
    """[(start, end, crate)] for every line-table row range in .text."""
    comp_dirs = {}
    stmt = None
    for line in run(OBJDUMP, "--dwarf=info", elf_path).splitlines():
        if "DW_AT_stmt_list" in line:
            stmt = int(line.split(":")[-1].strip(), 0)
        elif "DW_AT_comp_dir" in line and stmt is not None:
            comp_dirs[stmt] = line.split("):", 1)[-1].strip() if "):" in line else line.split(":", 1)[-1].strip()
            stmt = None
    ranges = []
    prog = None
    dirs, files = {}, {}
    mode = None
    seq = []  # [(addr, crate)] rows of the current sequence
    addr, fileno = 0, 1

    def close_seq(end_addr):
        # Resolve library rows from their neighbours in the same sequence.
        owners = [c for _, c in seq]
        last = None
        for i, c in enumerate(owners):
            if c is None:
                owners[i] = last
            else:
                last = c
        nxt = None
        for i in range(len(owners) - 1, -1, -1):
            if owners[i] is None:
                owners[i] = nxt
            elif seq[i][1] is not None:
                nxt = seq[i][1]
        pts = [a for a, _ in seq] + [end_addr]
        for i, o in enumerate(owners):
            if pts[i + 1] > pts[i]:
                ranges.append((pts[i], pts[i + 1], o or "runtime"))
        seq.clear()

    def crate(n):
        d, name = files.get(n, (0, "?"))
        base = prog_dir
        if d:
            dd = dirs.get(d, "")
            base = dd if dd.startswith("/") else os.path.join(prog_dir, dd)
        return crate_of_path(name if name.startswith("/") else os.path.join(base, name), core_dir)

    prog_dir = ""
    for line in run(OBJDUMP, "--dwarf=rawline", elf_path).splitlines():
        s = line.strip()
        if s.startswith("Offset:") and "0x" in s or re.match(r"Offset:\s+0$", s):
            prog = int(s.split(":")[1].strip(), 0)
            prog_dir = comp_dirs.get(prog, "")
            dirs, files, mode = {}, {}, None
            addr, fileno = 0, 1
            continue
        if s.startswith("The Directory Table"):
            mode = "dirs"
            continue
        if s.startswith("The File Name Table"):
            mode = "files"
            continue
        if s.startswith("Line Number Statements"):
            mode = "stmts"
            continue
        if mode == "dirs":
            m = re.match(r"(\d+)\s+(.+)$", s)
            if m:
                dirs[int(m.group(1))] = m.group(2)
        elif mode == "files":
            m = re.match(r"(\d+)\s+(\d+)\s+\d+\s+\d+\s+(.+)$", s)
            if m:
                files[int(m.group(1))] = (int(m.group(2)), m.group(3))
        elif mode == "stmts":
            m = re.search(r"(?:set Address|advance Address by \d+|Advance PC by (?:constant )?\d+) to (0x[0-9a-f]+)", s)
            if m:
                addr = int(m.group(1), 16)
            if "Set File Name to entry" in s:
                fileno = int(re.search(r"entry (\d+)", s).group(1))
            if "End of Sequence" in s:
                close_seq(addr)
                addr, fileno = 0, 1
            elif s.split("]", 1)[-1].strip().startswith(("Copy", "Special opcode")):
                seq.append((addr, crate(fileno)))
    # Sequences never share bytes; clip any overlap so no byte is counted twice.
    ranges.sort()
    out, end = [], 0
    for a, b, o in ranges:
        a = max(a, end)
        if b > a:
            out.append((a, b, o))
            end = b
    return out


def owner_at(ranges, starts, addr):
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and ranges[i][0] <= addr < ranges[i][1]:
        return ranges[i][2]
    return None


def symbols(elf_path):
    out = []
    for line in run(NM, "-S", "-n", "-C", "--defined-only", elf_path).splitlines():
        p = line.split(" ", 3)
        if len(p) == 4:
            out.append((int(p[0], 16), int(p[1], 16), p[2], p[3]))
    return out


def relocs(elf_path, section):
    out = []
    cur = None
    for line in run(READELF, "-rW", elf_path).splitlines():
        m = re.match(r"Relocation section '([^']+)'", line)
        if m:
            cur = m.group(1)
            continue
        if cur != section:
            continue
        p = line.split()
        if len(p) >= 3 and re.fullmatch(r"[0-9a-f]{8}", p[0]):
            out.append((int(p[0], 16), p[2]))
    return out


def thumb_imm16(elf, addr):
    hw1, hw2 = elf.u16(addr), elf.u16(addr + 2)
    if hw1 is None or hw2 is None:
        return None
    return ((hw1 & 0xF) << 12) | (((hw1 >> 10) & 1) << 11) | (((hw2 >> 12) & 7) << 8) | (hw2 & 0xFF)


def analyse(elf_path, core_dir):
    elf = Elf(elf_path)
    ranges = line_rows(elf_path, core_dir)
    starts = [r[0] for r in ranges]
    text_lo, text_hi = elf.range(".text")
    text = collections.Counter()
    covered = 0
    for a, b, o in ranges:
        a, b = max(a, text_lo), min(b, text_hi)
        if b > a:
            text[o] += b - a
            covered += b - a
    text["unattributed"] += (text_hi - text_lo) - covered

    syms = symbols(elf_path)
    # .text relocation sites outside line rows (literal pools): the owner of the last row
    # before them in the same function.
    funcs = sorted((a, a + s) for a, s, t, _ in syms if t in "tT" and s)

    def site_owner(p):
        o = owner_at(ranges, starts, p)
        if o:
            return o
        i = bisect.bisect_right(funcs, (p, 1 << 40)) - 1
        if i >= 0 and funcs[i][0] <= p < funcs[i][1]:
            j = bisect.bisect_right(starts, p) - 1
            if j >= 0 and ranges[j][1] > funcs[i][0]:
                return ranges[j][2]
        return "runtime"

    ro_lo, ro_hi = elf.range(".rodata")
    # .rodata objects: symbols, and the gaps between them.
    bounds = sorted({a for a, s, t, _ in syms if ro_lo <= a < ro_hi} | {ro_lo, ro_hi})
    objects = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    obj_starts = [o[0] for o in objects]

    def obj_of(addr):
        if not (ro_lo <= addr < ro_hi):
            return None
        return bisect.bisect_right(obj_starts, addr) - 1

    users = collections.defaultdict(set)
    pending_movw = {}
    for p, kind in relocs(elf_path, ".rel.text"):
        target = None
        if kind == "R_ARM_ABS32":
            target = elf.u32(p)
        elif kind.startswith("R_ARM_THM_MOVW"):
            pending_movw[p] = thumb_imm16(elf, p)
            continue
        elif kind.startswith("R_ARM_THM_MOVT"):
            hi = thumb_imm16(elf, p)
            # Pair with the closest preceding MOVW.
            lows = [q for q in pending_movw if q < p]
            if hi is not None and lows:
                q = max(lows)
                lo = pending_movw.pop(q)
                if lo is not None:
                    target = (hi << 16) | lo
        if target is not None:
            i = obj_of(target)
            if i is not None:
                users[i].add(site_owner(p))
    # Through .rodata's own pointers, until nothing changes.
    ro_edges = []
    for p, kind in relocs(elf_path, ".rel.rodata"):
        if kind == "R_ARM_ABS32":
            src, dst = obj_of(p), obj_of(elf.u32(p) or 0)
            if src is not None and dst is not None:
                ro_edges.append((src, dst))
    changed = True
    while changed:
        changed = False
        for src, dst in ro_edges:
            new = users[src] - users[dst]
            if new:
                users[dst] |= new
                changed = True
    rodata = collections.Counter()
    for i, (a, b) in enumerate(objects):
        u = users.get(i, set())
        if u & CORE_CRATES:
            o = "core"
        elif u:
            o = sorted(u)[0]
        else:
            o = "unattributed"
        rodata[o] += b - a

    ram = collections.Counter()
    for a, s, t, name in syms:
        if t.lower() in "bd" and s:
            base = name.lstrip("<&*")
            crate = base.split("::")[0]
            if name == AGENT_STATIC or crate.replace("_", "-") in CORE_CRATES or crate in CORE_CRATES:
                ram["core"] += s
    return elf, text, rodata, ram


def main():
    elf_path, stub_path, core_dir, flash_budget, ram_budget = sys.argv[1:6]
    core_dir = os.path.normpath(os.path.abspath(core_dir))
    flash_budget, ram_budget = int(flash_budget), int(ram_budget)
    elf, text, rodata, ram = analyse(elf_path, core_dir)
    stub = Elf(stub_path)

    def totals(e):
        s = e.size
        flash = s.get(".vector_table", 0) + s.get(".text", 0) + s.get(".rodata", 0) + s.get(".data", 0)
        return flash, s.get(".data", 0) + s.get(".bss", 0)

    s = elf.size
    flash, sram = totals(elf)
    print(f"firmware (mps2-an386, {os.path.basename(elf_path)}): .vector_table {s.get('.vector_table', 0)} B, "
          f".text {s.get('.text', 0)} B, .rodata {s.get('.rodata', 0)} B, .data {s.get('.data', 0)} B, "
          f".bss {s.get('.bss', 0)} B => flash {flash} B, static RAM {sram} B")
    core_text = sum(v for k, v in text.items() if k in CORE_CRATES)
    core_ro = rodata.get("core", 0)
    core_flash = core_text + core_ro
    core_ram = ram.get("core", 0)
    by_crate = ", ".join(f"{k} {v}" for k, v in text.most_common())
    print(f"  .text by source (DWARF line tables): {by_crate}")
    print(f"  .rodata by referrer (relocations): " + ", ".join(f"{k} {v}" for k, v in rodata.most_common()))
    print(f"upsguard-core's part: .text {core_text} B, .rodata {core_ro} B, .data+.bss {core_ram} B "
          f"=> flash {core_flash} B (budget {flash_budget} B), static RAM {core_ram} B (budget {ram_budget} B)")
    sflash, sram_stub = totals(stub)
    print(f"cross-check, whole minus the stub-core build (upper bound, includes the firmware's glue): "
          f"flash {flash - sflash} B, static RAM {sram - sram_stub} B")
    sys.stdout.flush()
    ok = True
    if core_flash > flash_budget:
        print(f"FAIL: the core's part takes {core_flash} B of flash, over the {flash_budget} B budget", file=sys.stderr)
        ok = False
    if core_ram > ram_budget:
        print(f"FAIL: the core's part takes {core_ram} B of static RAM, over the {ram_budget} B budget", file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
