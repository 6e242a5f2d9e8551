"""What binutils says about a file, as plain values: the other side of the
differential tests (pyelftools' habit of checking itself against readelf).
Also builders for the file variants the tests cover (stripped copies,
SDT sources that need <sys/sdt.h> from the 64-bit multiarch directory)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import TRACEES, build_c

KINDS = {"FUNC": "func", "IFUNC": "ifunc", "OBJECT": "object"}
BINDINGS = {"LOCAL": "local", "GLOBAL": "global", "WEAK": "weak", "UNIQUE": "unique"}

# (name, compiler flags) of the file variants every differential test covers.
VARIANTS = [
    ("pie", ("-O0", "-fPIE", "-pie")),
    ("nopie", ("-O0", "-fno-pie", "-no-pie")),
    ("lib", ("-O2", "-shared", "-fPIC", "-Wl,-soname,libelftest.so.1",
             f"-Wl,--version-script={TRACEES / 'elf_lib.map'}")),
]


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} (binutils) is not installed: nothing to compare against")


def run(*cmd) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                          text=True).stdout


def stripped(path: Path) -> Path:
    """A `strip`ped copy next to a built binary, made once."""
    need("strip")
    out = path.with_name(path.name + "-stripped")
    if not out.exists():
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        run("strip", "-o", tmp, path)
        os.replace(tmp, out)
    return out


def split_debug(exe: Path, program: Path, debug: Path, link: bool = True,
                compress: bool = False) -> Path:
    """A stripped copy of ``exe`` at ``program`` whose DWARF and .symtab are
    in ``debug``, made the way distributions ship them: objcopy
    --only-keep-debug (``compress``: with zlib-compressed debug sections,
    as Debian's -dbgsym files have them), strip, then (``link``) objcopy
    --add-gnu-debuglink, which records the debug file's name and CRC."""
    need("objcopy")
    need("strip")
    for path in (program, debug):
        path.parent.mkdir(parents=True, exist_ok=True)
    run("objcopy", "--only-keep-debug", *(["--compress-debug-sections=zlib"] if compress else []),
        exe, debug)
    run("strip", "-o", program, exe)
    if link:
        run("objcopy", f"--add-gnu-debuglink={debug}", program)
    return program


def build_id(path: Path) -> str:
    """The file's NT_GNU_BUILD_ID, in hex, as readelf shows it."""
    need("readelf")
    m = re.search(r"Build ID: ([0-9a-f]+)", run("readelf", "-nW", path))
    if m is None:
        pytest.skip(f"{path} has no build ID (a linker without --build-id)")
    return m.group(1)


def build_variant(variant: str, bits: int, strip: bool = False) -> Path:
    flags = dict(VARIANTS)[variant]
    source = "elf_lib.c" if variant == "lib" else "elf_symbols.c"
    path = build_c(source, bits, flags, name="libelftest" if variant == "lib" else None,
                   libs=() if variant == "lib" else ("-ldl",))
    return stripped(path) if strip else path


@lru_cache(maxsize=None)
def sdt_include_flags() -> tuple[str, ...]:
    """<sys/sdt.h> ships in the 64-bit multiarch include directory only; a
    -m32 build finds it there after its own headers (-idirafter)."""
    res = subprocess.run(["gcc", "-m64", "-xc", "-M", "-"], input="#include <sys/sdt.h>\n",
                         capture_output=True, text=True)
    m = re.search(r"(\S+)/sys/sdt\.h", res.stdout)
    if res.returncode != 0 or not m:
        pytest.skip("<sys/sdt.h> is missing (install systemtap-sdt-dev)")
    return ("-idirafter", m.group(1))


def readelf_symbols(path: Path) -> dict[tuple[str, int, int, str], set[str]]:
    """Defined FUNC/IFUNC/OBJECT symbols of .symtab and .dynsym, versions
    cut: (name, value, size, kind) -> the bindings it appears with (libc
    has pread@@GLIBC_2.1 weak and pread@GLIBC_2.2 global, same code)."""
    need("readelf")
    out: dict[tuple[str, int, int, str], set[str]] = {}
    for line in run("readelf", "-sW", path).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].rstrip(":").isdigit():
            continue
        value, size, typ, bind, ndx, name = f[1], f[2], f[3], f[4], f[6], f[7]
        if typ not in KINDS or bind not in BINDINGS or ndx in ("UND", "ABS"):
            continue
        name = name.split("@")[0]
        if name:
            key = (name, int(value, 16), int(size, 0), KINDS[typ])
            out.setdefault(key, set()).add(BINDINGS[bind])
    return out


def readelf_versioned(path: Path) -> dict[str, int]:
    """Full versioned names (``f@@VER_2``) -> value, from .dynsym."""
    need("readelf")
    out = {}
    for line in run("readelf", "--dyn-syms", "-W", path).splitlines():
        f = line.split()
        if len(f) >= 8 and "@" in f[7] and f[6] != "UND":
            out[f[7]] = int(f[1], 16)
    return out


def readelf_loads(path: Path) -> list[dict]:
    need("readelf")
    loads = []
    for line in run("readelf", "-lW", path).splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            flags = "".join(f[6:-1])
            loads.append(dict(offset=int(f[1], 16), vaddr=int(f[2], 16), filesz=int(f[4], 16),
                              memsz=int(f[5], 16), flags=flags))
    return loads


def readelf_header(path: Path) -> dict:
    need("readelf")
    text = run("readelf", "-hW", path)
    dynamic = run("readelf", "-dW", path)
    soname = re.search(r"\(SONAME\)\s+Library soname: \[(.*)\]", dynamic)
    return dict(
        bits=64 if re.search(r"Class:\s+ELF64", text) else 32,
        type=re.search(r"Type:\s+(\w+)", text).group(1),
        entry=int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", text).group(1), 16),
        pie=bool(re.search(r"\(FLAGS_1\).*\bPIE\b", dynamic)),
        soname=soname.group(1) if soname else None,
    )


def readelf_sdt(path: Path) -> list[tuple[str, str, int, int, int, str]]:
    """(provider, name, location, base, semaphore, arguments) per note."""
    need("readelf")
    notes = []
    text = run("readelf", "-nW", path)
    pattern = re.compile(
        r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), "
        r"Semaphore: (0x[0-9a-f]+)\s+Arguments: ?([^\n]*)")
    for m in pattern.finditer(text):
        notes.append((m[1], m[2], int(m[3], 16), int(m[4], 16), int(m[5], 16), m[6].strip()))
    return notes


def nm_addresses(path: Path) -> dict[str, int]:
    need("nm")
    out = {}
    for line in run("nm", path).splitlines():
        f = line.split()
        if len(f) == 3:
            out[f[2]] = int(f[0], 16)
    return out


def section_address(path: Path, name: str) -> int:
    need("readelf")
    for line in run("readelf", "-SW", path).splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 3 and f[1] == name:
            return int(f[3], 16)
    raise LookupError(name)
