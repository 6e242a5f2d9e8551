"""BIN of a probe spec -> file: paths, PATH, the tracee's maps, ld.so.cache.

A user writes ``uprobe:libc:malloc`` for a 32-bit program; probing the
64-bit libc instead would find no hit and no error."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from ptrace_raw import libraries
from ptrace_raw.errors import TracerError
from ptrace_raw.libraries import (CacheEntry, LibraryNotFound, elf_bits, library_matches,
                                  parse_ld_so_cache, parse_ldconfig_output,
                                  read_ld_so_cache, resolve_binary)

from .binutils import build_variant


def ldconfig_p() -> str:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(ldconfig):
        pytest.skip("ldconfig is not installed: nothing to compare the cache with")
    return subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("name, soname", [("libc", "libc.so.6"), ("libc.so.6", "libc.so.6"),
                                          ("libpthread", "libpthread.so.0")])
def test_library_names_resolve_per_bitness(bits, name, soname):
    want = [e.path for e in parse_ldconfig_output(ldconfig_p())
            if e.soname == soname and e.bits == bits]
    if not want:
        pytest.skip(f"no {bits}-bit {soname} installed (multilib libc6-i386 for -m32)")
    path = resolve_binary(name, bits=bits)
    assert path == os.path.realpath(want[0])
    assert elf_bits(path) == bits


@pytest.mark.parametrize("name, filename, match", [
    ("libc", "libc.so.6", True),
    ("libc", "libc-2.31.so", True),
    ("libc", "libc.so", True),
    ("libc", "libcrypt.so.1", False),
    ("libc", "libc_malloc_debug.so.0", False),
    ("libc.so.6", "libc.so.6", True),
    ("libc.so.6", "libc.so.60", False),
    ("libc.so", "libc.so.6", True),
    ("libpthread", "libpthread.so.0", True),
    ("libpthread", "libpthread-2.31.so", True),
    ("libm", "libmvec.so.1", False),
])
def test_library_matches(name, filename, match):
    assert library_matches(name, filename) is match


def test_mapped_paths_win_over_the_cache():
    mapped = ["/home/u/app", "[vdso]", "/opt/x/libcrypt.so.1", "/opt/x/libc-2.31.so",
              "/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert resolve_binary("libc", mapped) == "/opt/x/libc-2.31.so"
    assert resolve_binary("libc.so.6", mapped) == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert resolve_binary("libcrypt", mapped) == "/opt/x/libcrypt.so.1"


def test_paths_and_commands(tmp_path, monkeypatch):
    binary = build_variant("pie", 64)
    monkeypatch.chdir(binary.parent)
    assert resolve_binary(binary.name) == str(binary)
    assert resolve_binary(f"./{binary.name}", ["/x/libc.so.6"]) == str(binary)
    ls = shutil.which("ls")
    assert resolve_binary("ls") == os.path.realpath(ls)
    with pytest.raises(LibraryNotFound, match="no such file"):
        resolve_binary(str(tmp_path / "missing"))


def test_not_found_says_where_it_looked():
    with pytest.raises(LibraryNotFound) as err:
        resolve_binary("libdoesnotexist", ["/usr/lib/x86_64-linux-gnu/libc.so.6"], bits=32)
    message = str(err.value)
    assert "libdoesnotexist" in message and "1 mapped" in message
    assert "/etc/ld.so.cache (32-bit" in message and "/usr/lib32" in message
    assert isinstance(err.value, TracerError)


def test_cache_parser_matches_ldconfig():
    expect = {(e.soname, e.path, e.bits) for e in parse_ldconfig_output(ldconfig_p())}
    with open(libraries.LD_SO_CACHE, "rb") as f:
        parsed = parse_ld_so_cache(f.read())
    if parsed is None:
        pytest.skip("this system's ld.so.cache is not in the glibc-ld.so.cache1.1 format")
    assert {(e.soname, e.path, e.bits) for e in parsed} == expect


def synthetic_cache(entries, big=False):
    """A glibc-ld.so.cache1.1 file: header, entries, then the strings."""
    end = ">" if big else "<"
    strings = b""
    offsets = []
    base = 48 + 24 * len(entries)
    for key, value, _ in entries:
        offsets.append((base + len(strings), base + len(strings) + len(key) + 1))
        strings += key.encode() + b"\0" + value.encode() + b"\0"
    out = struct.pack(end + "20sIIB3xI12x", b"glibc-ld.so.cache1.1", len(entries),
                      len(strings), 3 if big else 2, 0)
    for (key_at, value_at), (_, _, flags) in zip(offsets, entries):
        out += struct.pack(end + "iIIIQ", flags, key_at, value_at, 0, 0)
    return out + strings


@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
def test_cache_parser_byte_table(big):
    data = synthetic_cache([("libfoo.so.1", "/lib64/libfoo.so.1", 0x0303),
                            ("libfoo.so.1", "/lib32/libfoo.so.1", 0x0003),
                            ("libfoo.so.1", "/libx32/libfoo.so.1", 0x0803),
                            ("libbar.so", "/lib/libbar.so", 0x0001)], big)
    assert parse_ld_so_cache(data) == [
        CacheEntry("libfoo.so.1", "/lib64/libfoo.so.1", 64, 0),
        CacheEntry("libfoo.so.1", "/lib32/libfoo.so.1", 32, 0),
        CacheEntry("libfoo.so.1", "/libx32/libfoo.so.1", None, 0),
        CacheEntry("libbar.so", "/lib/libbar.so", None, 0)]
    assert parse_ld_so_cache(b"ld.so-1.7.0" + data) is None
    assert parse_ld_so_cache(data[:60]) is None


def test_unknown_cache_format_falls_back_to_ldconfig(tmp_path):
    text = ldconfig_p()
    odd = tmp_path / "ld.so.cache"
    odd.write_bytes(b"ld.so-1.7.0\0" + b"\0" * 64)
    entries = read_ld_so_cache(str(odd))
    assert {(e.soname, e.path) for e in entries} == \
        {(e.soname, e.path) for e in parse_ldconfig_output(text)}
    assert entries


def test_ldconfig_output_parser():
    text = """1234 libs found in cache `/etc/ld.so.cache'
\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6
\tlibc.so.6 (libc6) => /lib32/libc.so.6
\tlibc.so.6 (libc6,x32) => /libx32/libc.so.6
\tlibold.so.1 (libc6,x86-64, OS ABI: Linux 2.6.32) => /lib/libold.so.1
\tlibz.so.1 (libc6,x86-64, hwcap: "x86-64-v3") => /usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1
Cache generated by: ldconfig (GNU libc) stable release version 2.36
"""
    assert parse_ldconfig_output(text) == [
        CacheEntry("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 64, 0),
        CacheEntry("libc.so.6", "/lib32/libc.so.6", 32, 0),
        CacheEntry("libc.so.6", "/libx32/libc.so.6", None, 0),
        CacheEntry("libold.so.1", "/lib/libold.so.1", 64, 0),
        CacheEntry("libz.so.1", "/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1", 64, 1)]


def test_standard_dirs_are_searched_when_the_cache_misses(monkeypatch, tmp_path):
    lib = tmp_path / "libelftest.so.1"
    shutil.copy(build_variant("lib", 32), lib)
    monkeypatch.setattr(libraries, "read_ld_so_cache", lambda: [])
    monkeypatch.setitem(libraries.STANDARD_DIRS, 32, (str(tmp_path),))
    monkeypatch.setitem(libraries.STANDARD_DIRS, 64, (str(tmp_path),))
    assert resolve_binary("libelftest", bits=32) == str(lib)
    with pytest.raises(LibraryNotFound):
        resolve_binary("libelftest", bits=64)          # wrong class


def test_cache_prefers_baseline_over_hwcaps_entries(monkeypatch, tmp_path):
    """ldconfig lists glibc-hwcaps variants (x86-64-v3...) first; only the
    baseline one loads on every CPU."""
    (tmp_path / "v3").mkdir()
    for path in (tmp_path / "v3" / "libz.so.1", tmp_path / "libz.so.1"):
        path.write_bytes(b"\x7fELF\x02")
    monkeypatch.setattr(libraries, "read_ld_so_cache", lambda: [
        CacheEntry("libz.so.1", str(tmp_path / "v3" / "libz.so.1"), 64, 2),
        CacheEntry("libz.so.1", str(tmp_path / "libz.so.1"), 64, 0)])
    assert resolve_binary("libz", bits=64) == str(tmp_path / "libz.so.1")
