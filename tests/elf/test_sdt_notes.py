"""SDT notes against readelf -n and nm, for -O0/-O2, -m64/-m32, PIE,
non-PIE and a shared library.

``usdt:BIN:sdt:tick`` must put its int3 on the marker's nop and bump the
semaphore the program tests; an address off by the .stapsdt.base
adjustment, or a 32-bit note read with 8-byte words, breaks both."""

from __future__ import annotations

import struct
import subprocess

import pytest

from ptrace_raw.elf import ElfError, ElfImage, SymbolNotFound
from ptrace_raw.sdt import SdtArgError, SdtNoteError, parse_stapsdt_notes

from .binutils import nm_addresses, readelf_sdt, sdt_include_flags, section_address
from tests.conftest import build_c

LAYOUTS = {"pie": ("-fPIE", "-pie"), "nopie": ("-fno-pie", "-no-pie"),
           "lib": ("-shared", "-fPIC")}


def expected_args(name, bits):
    """The signed sizes the C types give: long and pointers follow bits."""
    word = bits // 8
    return {"tick": [-4, 1, -2, -8, word, -4, -word],
            "data": [-word, -4, 8, 4, -word, -word],
            "consts": [-4, -4, -1]}[name]


FLOAT_ARGS = {("data", 2), ("data", 3)}


@pytest.fixture(params=["-O0", "-O2"])
def opt(request):
    return request.param


@pytest.fixture(params=sorted(LAYOUTS))
def sdt_binary(request, bits, opt):
    return build_c("sdt_probes.c", bits, (opt, *LAYOUTS[request.param], *sdt_include_flags()))


def test_probes_match_readelf_and_nm(sdt_binary, bits):
    image = ElfImage.open(sdt_binary)
    notes = readelf_sdt(sdt_binary)
    probes = image.sdt_probes()
    assert [(p.provider, p.name, p.pc, p.semaphore, p.args) for p in probes] == \
        [(prov, name, loc, sem, args) for prov, name, loc, base, sem, args in notes]
    symbols = nm_addresses(sdt_binary)
    base = section_address(sdt_binary, ".stapsdt.base")
    for probe, note in zip(probes, notes):
        assert note[3] == base                       # nothing moved the base
        assert image.read(probe.pc, 1) == b"\x90"     # the marker's nop
        assert probe.semaphore == symbols[f"sdt_{probe.name}_semaphore"]
        assert probe.bits == bits


def test_arguments_parse_with_the_c_types_sizes(sdt_binary, bits):
    image = ElfImage.open(sdt_binary)
    assert sorted(p.name for p in image.sdt_probes()) == ["consts", "data", "tick"]
    for probe in image.sdt_probes():
        args = probe.arguments
        assert [(-a.size if a.signed else a.size) for a in args] == expected_args(probe.name, bits)
        assert [i for i, a in enumerate(args) if a.is_float] == \
            [i for name, i in sorted(FLOAT_ARGS) if name == probe.name]
        assert " ".join(a.text for a in args) == probe.args
    consts = next(p for p in image.sdt_probes() if p.name == "consts")
    assert [a.value(lambda r: 0) for a in consts.arguments] == [42, -7, -1]


@pytest.mark.parametrize("layout", ["pie", "nopie"])
def test_tls_offset_matches_the_running_program(bits, layout):
    """``%fs:sdt_tvar@tpoff`` (x86_64) and ``%gs:sdt_tvar@ntpoff`` (i386)
    read the thread pointer plus this offset."""
    path = build_c("sdt_probes.c", bits, ("-O2", *LAYOUTS[layout], *sdt_include_flags()))
    printed = subprocess.run([str(path)], capture_output=True, text=True).stdout
    image = ElfImage.open(path)
    assert image.tls_offset("sdt_tvar") == int(printed)
    assert any("sdt_tvar@" in p.args for p in image.sdt_probes())
    with pytest.raises(SymbolNotFound):
        image.tls_offset("sdt_gvar")


def test_file_without_notes_has_no_probes():
    image = ElfImage.open(build_c("elf_symbols.c", 64, ("-O0",), libs=("-ldl",)))
    assert image.sdt_probes() == ()
    with pytest.raises(ElfError, match="no TLS segment"):
        image.tls_offset("sdt_tvar")


def note(bits, pc, base, sem, strings, ntype=3, name=b"stapsdt\0"):
    word = "Q" if bits == 64 else "I"
    desc = struct.pack(f"<3{word}", pc, base, sem) + b"\0".join(strings) + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<3I", len(name), len(desc), ntype) + pad(name) + pad(desc)


@pytest.mark.parametrize("note_bits", [64, 32])
def test_note_byte_table_and_base_adjustment(note_bits):
    """Prelink moves sections after the notes were written: the note keeps
    the old .stapsdt.base, and pc and semaphore move by the difference."""
    data = (note(note_bits, 0x1130, 0x2004, 0x4010, [b"p", b"one", b"-4@%eax"])
            + note(note_bits, 0x1140, 0x2004, 0, [b"p", b"two", b""])
            + note(note_bits, 1, 2, 3, [b"x", b"y", b""], ntype=1)
            + note(note_bits, 1, 2, 3, [b"x", b"y", b""], name=b"GNU\0"))
    probes = parse_stapsdt_notes(data, note_bits, 0x3004)
    assert [(p.provider, p.name, p.pc, p.semaphore, p.args) for p in probes] == [
        ("p", "one", 0x2130, 0x5010, "-4@%eax"), ("p", "two", 0x2140, 0, "")]
    assert parse_stapsdt_notes(data, note_bits, None)[0].pc == 0x1130
    assert parse_stapsdt_notes(data, note_bits, 0x2004)[0].semaphore == 0x4010
    with pytest.raises(SdtNoteError):
        parse_stapsdt_notes(data[:len(data) // 4 + 20], note_bits, None)


def test_bad_operand_surfaces_only_when_arguments_are_read():
    (probe,) = parse_stapsdt_notes(note(64, 0x10, 0, 0, [b"p", b"n", b"4@%xmm0"]), 64, None)
    assert probe.pc == 0x10
    with pytest.raises(SdtArgError, match="xmm0"):
        probe.arguments
