"""How the arch plans real code: the share of instructions (and of
function-entry instructions) that are emulated, boosted, stepped or refused,
in functions of the system libc (64- and 32-bit) and the Python binary.

Run: ``python bench/arch_coverage.py [--functions N]``.  The aim is that no
function entry is ever stepped.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter

from elftools.elf.elffile import ELFFile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from arch import I386, X86_64, UnsupportedInstruction  # noqa: E402

STRATEGIES = ("emulate", "boost", "step", "refused")


def default_binaries():
    """(label, path) of the binaries measured, those present on this host."""
    found = [("libc x86_64", "/lib/x86_64-linux-gnu/libc.so.6")]
    found += [("libc i386", p) for p in ("/usr/lib32/libc.so.6", "/lib/i386-linux-gnu/libc.so.6")
              if os.path.exists(p)][:1]
    pythons = sorted(p for p in glob.glob("/usr/bin/python3*")
                     if os.path.isfile(p) and not os.path.islink(p) and _is_elf(p))
    found += [("python", p) for p in pythons[:1]]
    return [(label, path) for label, path in found if os.path.exists(path)]


def _is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def sample_functions(path, count):
    """Up to ``count`` functions spread evenly over the file, as
    (arch, name, address, code)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        arch = X86_64 if elf.elfclass == 64 else I386
        funcs = {}
        for section_name in (".symtab", ".dynsym"):
            symtab = elf.get_section_by_name(section_name)
            if symtab is None:
                continue
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"] > 0 and sym["st_value"]:
                    funcs.setdefault(sym["st_value"], (sym.name, sym["st_size"]))
        addrs = sorted(funcs)
        step = max(1, len(addrs) // count) if count else 1
        chosen = addrs[::step][:count]
        texts = [s for s in elf.iter_sections() if s["sh_flags"] & 0x4 and s["sh_type"] == "SHT_PROGBITS"]
        out = []
        for addr in chosen:
            name, size = funcs[addr]
            for sec in texts:
                if sec["sh_addr"] <= addr and addr + size <= sec["sh_addr"] + sec["sh_size"]:
                    data = sec.data()
                    off = addr - sec["sh_addr"]
                    out.append((arch, name, addr, data[off:off + size]))
                    break
        return out


def iter_instructions(arch, addr, code):
    """(address, bytes) of each instruction of one function, by linear sweep."""
    for insn in arch.decode(code, addr):
        off = insn.addr - addr
        yield insn.addr, code[off:off + arch.max_insn_len], off == 0


def classify(arch, code, addr):
    try:
        return arch.analyze(code, addr).strategy, ""
    except UnsupportedInstruction as exc:
        return "refused", exc.reason


def measure(functions):
    """Counters of strategies over all instructions and over entries, and
    the entry instructions that were not emulated or boosted."""
    every, entries, poor_entries = Counter(), Counter(), Counter()
    for arch, name, addr, code in functions:
        for at, insn, is_entry in iter_instructions(arch, addr, code):
            strategy, _ = classify(arch, insn, at)
            every[strategy] += 1
            if is_entry:
                entries[strategy] += 1
                if strategy in ("step", "refused"):
                    poor_entries[next(arch.decode(insn, at)).text] += 1
    return every, entries, poor_entries


def _row(label, counts):
    total = sum(counts.values()) or 1
    shares = "  ".join(f"{s} {100 * counts[s] / total:5.1f}%" for s in STRATEGIES)
    return f"  {label:<8} {sum(counts.values()):>7}  {shares}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=400,
                        help="functions sampled per binary (default 400)")
    args = parser.parse_args(argv)
    for label, path in default_binaries():
        functions = sample_functions(path, args.functions)
        every, entries, poor = measure(functions)
        print(f"{label}: {path} ({len(functions)} functions)")
        print(_row("all", every))
        print(_row("entries", entries))
        for text, n in poor.most_common(5):
            print(f"    entry not emulated/boosted: {n} x {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
