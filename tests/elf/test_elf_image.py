"""ElfImage against binutils, for -m64 and -m32, PIE, non-PIE and a shared
library, each stripped and not, plus the system libc.

A user who probes ``uprobe:BIN:FUNC`` needs the address readelf shows for
FUNC, even in a stripped binary (.dynsym survives `strip`) and for a
versioned libc symbol (``memcpy@@GLIBC_2.14``, not the hidden old one)."""

from __future__ import annotations

import os
import shutil

import pytest

from ptrace_raw.elf import ElfError, ElfImage, Symbol, SymbolNotFound, _disjoint_ranges, _Entry
from ptrace_raw.errors import TracerError
from ptrace_raw.libraries import resolve_binary

from .binutils import (VARIANTS, build_variant, readelf_header, readelf_loads,
                       readelf_symbols, readelf_versioned)

VARIANT_IDS = [v for v, _ in VARIANTS]


@pytest.fixture(params=[False, True], ids=["full", "stripped"])
def strip(request):
    return request.param


@pytest.fixture(params=VARIANT_IDS)
def variant(request):
    return request.param


@pytest.fixture
def image_path(variant, bits, strip):
    return build_variant(variant, bits, strip)


def assert_same_symbols(image, expect):
    """One Symbol per (name, value, size, kind), with a binding readelf
    shows for it."""
    ours = list(image.iter_symbols())
    assert len(ours) == len({s[:4] for s in ours})
    assert {s[:4] for s in ours} == set(expect)
    for s in ours:
        assert s.binding in expect[s[:4]], s


def test_symbols_match_readelf(image_path):
    assert_same_symbols(ElfImage.open(image_path), readelf_symbols(image_path))


def test_libc_symbols_match_readelf(bits):
    path = resolve_binary("libc.so.6", bits=bits)
    # No debug file directory: with libc6-dbg installed, the image would
    # take the .symtab of libc's debug file, which readelf of libc lacks.
    image = ElfImage.open(path, debug_dirs=())
    assert_same_symbols(image, readelf_symbols(path))
    # Two memcpy versions; the default one is what a probe on "memcpy" means.
    versions = [s for s in image.iter_functions("memcpy")]
    assert image.get_function("memcpy") in versions
    if bits == 64:
        assert len({s.value for s in versions}) == 2
        assert image.get_function("memcpy").kind == "ifunc"


def test_header_matches_readelf(image_path, variant):
    image = ElfImage.open(image_path)
    expect = readelf_header(image_path)
    assert image.bits == expect["bits"]
    assert image.entry == expect["entry"]
    assert image.is_dyn == (expect["type"] == "DYN")
    assert image.is_pie == expect["pie"] == (variant == "pie")
    assert image.soname == expect["soname"]
    assert image.soname == ("libelftest.so.1" if variant == "lib" else None)


def test_executable_ranges_match_readelf(image_path):
    image = ElfImage.open(image_path)
    loads = readelf_loads(image_path)
    assert image.executable_ranges() == [(l["vaddr"], l["vaddr"] + l["memsz"])
                                         for l in loads if "E" in l["flags"]]
    for lo, hi in image.executable_ranges():
        assert lo < hi


def test_offsets_and_vaddrs_round_trip(image_path):
    image = ElfImage.open(image_path)
    for load in readelf_loads(image_path):
        for delta in (0, 1, load["filesz"] - 1):
            offset = load["offset"] + delta
            vaddr = load["vaddr"] + delta
            assert image.vaddr_for_offset(offset) == vaddr
            assert image.offset_for_vaddr(vaddr) == offset
    last = max(readelf_loads(image_path), key=lambda l: l["vaddr"])
    if last["memsz"] > last["filesz"]:          # .bss has no file bytes
        with pytest.raises(ElfError):
            image.offset_for_vaddr(last["vaddr"] + last["filesz"])


def test_read_returns_file_bytes_and_bss_zeros(image_path):
    image = ElfImage.open(image_path)
    raw = image_path.read_bytes()
    for load in readelf_loads(image_path):
        n = min(load["filesz"], 64)
        assert image.read(load["vaddr"], n) == raw[load["offset"]:load["offset"] + n]
        end = load["vaddr"] + load["memsz"]
        if load["memsz"] > load["filesz"]:
            assert image.read(load["vaddr"] + load["filesz"], 1) == b"\0"
        with pytest.raises(ElfError, match="run past"):
            image.read(end - 2, 4)
        assert image.read(end - 2, 4, partial=True) == image.read(end - 2, 2)
    with pytest.raises(ElfError, match="not in a loadable segment"):
        image.read(0x7FFF_0000, 1)


def test_get_function_kinds_and_aliases(bits):
    image = ElfImage.open(build_variant("pie", bits))
    target = image.get_function("elf_target")
    alias = image.get_function("elf_alias")
    assert (alias.value, alias.size) == (target.value, target.size)
    assert target.kind == "func" and target.binding == "global"
    assert image.get_function("elf_weak").binding == "weak"
    assert image.get_function("elf_static_helper").binding == "local"
    assert image.get_function("elf_ifunc").kind == "ifunc"
    assert image.get_symbol("elf_counter").kind == "object"
    assert image.has_function("elf_target") and not image.has_function("elf_counter")
    at_target = [s.name for s in image.iter_functions() if s.value == target.value]
    assert at_target == ["elf_alias", "elf_target"]


def test_iter_functions_glob_is_sorted_by_address(bits):
    image = ElfImage.open(build_variant("pie", bits))
    names = [s.name for s in image.iter_functions("elf_string_*")]
    assert sorted(names) == ["elf_string_one", "elf_string_two"]
    values = [s.value for s in image.iter_functions()]
    assert values == sorted(values)
    assert all(s.kind in ("func", "ifunc") for s in image.iter_functions())
    assert list(image.iter_functions("no_such_*")) == []


def test_stripped_binary_keeps_dynsym_functions(bits):
    image = ElfImage.open(build_variant("lib", bits, strip=True))
    assert image.get_function("elf_lib_add").size > 0
    assert image.get_function("elf_lib_ifunc").kind == "ifunc"
    with pytest.raises(SymbolNotFound):
        image.get_function("elf_lib_static")        # local: gone with .symtab


def test_versioned_function_means_the_default_version(bits, strip):
    """.symtab spells elf_lib_ver@VER_1 / elf_lib_ver@@VER_2; a stripped
    file has only .dynsym and .gnu.version.  Either way the name means the
    @@ (default) version, the one new links bind to."""
    path = build_variant("lib", bits, strip)
    image = ElfImage.open(path)
    versions = readelf_versioned(path)
    assert versions["elf_lib_ver@@VER_2"] != versions["elf_lib_ver@VER_1"]
    assert image.get_function("elf_lib_ver").value == versions["elf_lib_ver@@VER_2"]
    assert sorted(s.value for s in image.iter_functions("elf_lib_ver")) == \
        sorted([versions["elf_lib_ver@@VER_2"], versions["elf_lib_ver@VER_1"]])
    hit, offset = image.symbolize(versions["elf_lib_ver@VER_1"])
    assert offset == 0 and hit.name in ("elf_lib_ver", "elf_lib_ver_old")


def test_not_found_names_file_and_suggests():
    image = ElfImage.open(build_variant("pie", 64))
    with pytest.raises(SymbolNotFound) as err:
        image.get_function("elf_targte")
    message = str(err.value)
    assert str(image.path) in message and "elf_target" in message
    assert isinstance(err.value, TracerError)
    with pytest.raises(SymbolNotFound, match="data object"):
        image.get_function("elf_counter")
    with pytest.raises(SymbolNotFound) as err:
        image.get_function("zzzzzzzz")
    assert "did you mean" not in str(err.value)


def test_symbolize_round_trips_every_sized_symbol(image_path):
    image = ElfImage.open(image_path)
    symbols = [s for s in image.iter_symbols() if s.size]
    assert symbols
    for s in symbols:
        for off in {0, s.size // 2, s.size - 1}:
            found, offset = image.symbolize(s.value + off)
            assert (found.value, offset) == (s.value, off)
    last = max(symbols, key=lambda s: s.value + s.size)
    assert image.symbolize(last.value + last.size + 0x100000) is None
    assert image.symbolize(0) is None or image.symbolize(0)[0].value == 0


def test_symbolize_prefers_the_public_name():
    image = ElfImage.open(resolve_binary("libc.so.6"))
    malloc = image.get_function("malloc")
    assert image.symbolize(malloc.value + 4) == (malloc, 4)


def test_symbolize_innermost_symbol_wins():
    """A small symbol inside a larger one owns its bytes; the outer one owns
    the bytes on either side (a label inside a hand-written function), and
    of two aliases the public, global name is reported."""
    outer = Symbol("outer", 0x1000, 0x100, "func", "global")
    inner = Symbol("inner", 0x1040, 0x10, "func", "local")
    alias = Symbol("__outer", 0x1000, 0x100, "func", "global")
    label = Symbol("label", 0x2000, 0, "func", "local")
    starts, ends, owners = _disjoint_ranges(
        [_Entry(alias, False), _Entry(outer, False), _Entry(inner, False), _Entry(label, False)])
    assert list(zip(starts, ends, [o.name for o in owners])) == [
        (0x1000, 0x1040, "outer"), (0x1040, 0x1050, "inner"), (0x1050, 0x1100, "outer"),
        (0x2000, 0x2001, "label")]


def test_open_caches_by_file_identity(tmp_path):
    src = build_variant("pie", 64)
    copy = tmp_path / "copy"
    shutil.copy(src, copy)
    link = tmp_path / "link"
    link.symlink_to(copy)
    first = ElfImage.open(copy)
    assert ElfImage.open(link) is first
    assert first.path == os.path.realpath(copy)
    st = os.stat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert ElfImage.open(copy) is not first


def test_bad_files_raise_elf_error(tmp_path):
    text = tmp_path / "text"
    text.write_text("not an elf\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated"
    truncated.write_bytes(build_variant("pie", 64).read_bytes()[:40])
    for path, message in ((text, "not an ELF"), (empty, "cannot read"),
                          (truncated, "not a valid ELF"), (tmp_path / "missing", "cannot open")):
        with pytest.raises(ElfError, match=message):
            ElfImage.open(path)
