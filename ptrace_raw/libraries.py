"""From the BIN of a probe spec to a file: a path, a command on PATH, or a
library name (``libc``, ``libc.so.6``, ``libpthread``).

A library name is looked up where the tracee's loader found it first (the
files the tracee already maps), then where the loader would look
(/etc/ld.so.cache, then the standard directories), keeping only libraries
of the tracee's bitness: a 32-bit tracee needs /lib32 or /lib/i386-linux-gnu.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from functools import lru_cache
from typing import Iterable, NamedTuple, Optional

from .errors import TracerError

LD_SO_CACHE = "/etc/ld.so.cache"
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("20sIIB3xI12x")          # magic nlibs len_strings flags ext_offset
_FLAGS_AT = 28                                   # the flags byte of _HEADER
_ENTRY = struct.Struct("iIIIQ")                  # flags key value osversion hwcap
_FLAG_TYPE_MASK, _FLAG_ELF_LIBC6 = 0x00FF, 0x0003
_FLAG_ARCH_MASK, _FLAG_X8664_LIB64 = 0xFF00, 0x0300
_ENDIAN_BIG = 3

STANDARD_DIRS = {
    64: ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
         "/lib", "/usr/lib"),
    32: ("/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib32", "/usr/lib32",
         "/lib", "/usr/lib"),
}


class LibraryNotFound(TracerError, FileNotFoundError):
    """No file for a probe's BIN; the message says where we looked."""


class CacheEntry(NamedTuple):
    """One ld.so.cache line: ``soname`` -> ``path``; ``bits`` is 64 for
    x86-64 libraries, 32 for i386 ones, None for others (x32)."""

    soname: str
    path: str
    bits: Optional[int]
    hwcap: int


def resolve_binary(name: str, mapped_paths: Iterable[str] = (), bits: int = 64) -> str:
    """The file a probe spec's BIN names, resolved through symlinks so it
    compares equal to the paths of /proc/PID/maps."""
    if os.path.isfile(name):
        return os.path.realpath(name)
    if os.path.isdir(name):
        raise LibraryNotFound(f"{name} is a directory")
    if "/" in name:
        if os.path.exists(name):
            raise LibraryNotFound(f"{name} is not a regular file")
        raise LibraryNotFound(f"{name}: no such file")
    on_path = shutil.which(name)
    if on_path:
        return os.path.realpath(on_path)
    mapped = list(dict.fromkeys(mapped_paths))
    for path in mapped:
        if library_matches(name, os.path.basename(path)):
            return path
    entries = [e for e in read_ld_so_cache() if e.bits == bits]
    # Baseline entries first: a glibc-hwcaps variant exists only for some CPUs.
    for entry in sorted(entries, key=lambda e: e.hwcap != 0):
        if library_matches(name, entry.soname) and os.path.exists(entry.path):
            return os.path.realpath(entry.path)
    for directory in STANDARD_DIRS[bits]:
        try:
            files = sorted(os.listdir(directory))
        except OSError:
            continue
        for base in files:
            path = os.path.join(directory, base)
            if library_matches(name, base) and elf_bits(path) == bits:
                return os.path.realpath(path)
    raise LibraryNotFound(
        f"library '{name}' not found: not among the tracee's {len(mapped)} mapped files, "
        f"not in {LD_SO_CACHE} ({bits}-bit entries), not in {', '.join(STANDARD_DIRS[bits])}; "
        f"give a path, or probe after the program has loaded it")


def library_matches(name: str, filename: str) -> bool:
    """Does library ``name`` designate file or soname ``filename``?

    ``libc`` matches ``libc.so.6`` and ``libc-2.31.so`` but not
    ``libcrypt.so.1``; ``libc.so`` matches ``libc.so.6``; ``libc.so.6``
    matches only itself."""
    if filename == name:
        return True
    stem = re.escape(name)
    if ".so" in name:
        return re.fullmatch(stem + r"(\.\d+)+", filename) is not None
    return re.fullmatch(stem + r"(-[\d.]+)?\.so(\.\d+)*", filename) is not None


def elf_bits(path: str) -> Optional[int]:
    """64 or 32 from the ELF identification bytes, None if not ELF."""
    try:
        with open(path, "rb") as f:
            ident = f.read(5)
    except OSError:
        return None
    if ident[:4] != b"\x7fELF":
        return None
    return {1: 32, 2: 64}.get(ident[4])


def read_ld_so_cache(path: str = LD_SO_CACHE) -> list[CacheEntry]:
    """The loader's cache, parsed directly when it has the
    ``glibc-ld.so.cache1.1`` layout, else as ``ldconfig -p`` prints it.
    Re-read only when the file changes."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    return _read_cache(path, st.st_ino, st.st_mtime_ns)


@lru_cache(maxsize=4)
def _read_cache(path: str, _ino: int, _mtime_ns: int) -> list[CacheEntry]:
    with open(path, "rb") as f:
        data = f.read()
    entries = parse_ld_so_cache(data)
    return entries if entries is not None else _ldconfig_entries()


def parse_ld_so_cache(data: bytes) -> Optional[list[CacheEntry]]:
    """Entries of a ``glibc-ld.so.cache1.1`` file, or None for any other
    format.  String offsets count from the start of the new-format header,
    which is the start of the file in this layout."""
    if len(data) < _HEADER.size or not data.startswith(_CACHE_MAGIC):
        return None
    end = ">" if data[_FLAGS_AT] == _ENDIAN_BIG else "<"
    _, nlibs, _, _, _ = struct.unpack_from(end + _HEADER.format, data, 0)
    entry = struct.Struct(end + _ENTRY.format)
    if _HEADER.size + nlibs * entry.size > len(data):
        return None
    out = []
    for i in range(nlibs):
        eflags, key, value, _, hwcap = entry.unpack_from(data, _HEADER.size + i * entry.size)
        out.append(CacheEntry(_cstring(data, key), _cstring(data, value),
                              _entry_bits(eflags), hwcap))
    return out


def _entry_bits(flags: int) -> Optional[int]:
    if flags & _FLAG_TYPE_MASK != _FLAG_ELF_LIBC6:
        return None
    arch = flags & _FLAG_ARCH_MASK
    return 64 if arch == _FLAG_X8664_LIB64 else 32 if arch == 0 else None


def _cstring(data: bytes, at: int) -> str:
    return data[at:data.index(b"\0", at)].decode("utf-8", "replace")


_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$")


def parse_ldconfig_output(text: str) -> list[CacheEntry]:
    """``ldconfig -p`` lines like ``libc.so.6 (libc6,x86-64) => /lib/...``."""
    out = []
    for line in text.splitlines():
        m = _LDCONFIG_LINE.match(line)
        if not m:
            continue
        tags = [t.strip() for t in m[2].split(",")]
        bits = None
        if tags[0] == "libc6":
            arch = [t for t in tags[1:] if not t.startswith(("hwcap:", "OS ABI:"))]
            bits = 64 if arch == ["x86-64"] else 32 if not arch else None
        hwcap = 1 if any(t.startswith("hwcap:") for t in tags) else 0
        out.append(CacheEntry(m[1], m[3], bits, hwcap))
    return out


def _ldconfig_entries() -> list[CacheEntry]:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        res = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_ldconfig_output(res.stdout)
