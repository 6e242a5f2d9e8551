"""Named parameters from DWARF, for -O0 builds and -O2 builds (where an
out-of-line copy of an inlined function names its parameters only through
DW_AT_abstract_origin), and their formatting."""

from __future__ import annotations

import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from ptrace_raw.params import Param, format_value, function_params, function_return
from tests.conftest import build_c

FLAGS = [("-O0",), ("-O2",)]


def expected_take_all(word):
    return [
        Param("i", "int", 4, True, False, False),
        Param("u", "unsigned int", 4, False, False, False),
        Param("p", "const void *", word, False, True, False),
        Param("s", "const char *", word, False, True, True),
        Param("n", "counter_t", word, False, False, False),
        Param("pt", "struct point *", word, False, True, False),
        Param("c", "signed char", 1, True, False, False),
        Param("sh", "short int", 2, True, False, False),
        Param("big", "long long unsigned int", 8, False, False, False),
    ]


def symbol(program, name):
    with open(program, "rb") as f:
        sym, = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
        return sym["st_value"], sym["st_size"]


@pytest.mark.parametrize("flags", FLAGS, ids=["O0", "O2"])
def test_params_by_name_and_address(bits, flags):
    program = build_c("dwarf_params.c", bits, flags)
    word = bits // 8
    assert function_params(program, "take_all") == expected_take_all(word)
    start, size = symbol(program, "take_all")
    assert function_params(program, start) == expected_take_all(word)
    assert function_params(program, start + size - 1) == expected_take_all(word)
    assert function_params(program, "describe") == [
        Param("name", "label_t", word, False, True, True),
        Param("pt", "struct point *", word, False, True, False),
        Param("m", "enum mode", 4, True, False, False),     # it has a negative value
        Param("scale", "double", 8, False, False, False, is_float=True),
    ]
    assert function_params(program, "takes_nothing") == []
    assert [p.name for p in function_params(program, "main")] == ["argc", "argv"]


def test_o2_copy_is_described_through_its_abstract_origin(bits):
    program = build_c("dwarf_params.c", bits, ("-O2",))
    start, _ = symbol(program, "describe")
    with open(program, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        concrete = [d for cu in dwarf.iter_CUs() for d in cu.iter_DIEs()
                    if d.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in d.attributes
                    and d.attributes["DW_AT_low_pc"].value == start]
    assert len(concrete) == 1 and "DW_AT_abstract_origin" in concrete[0].attributes
    assert "DW_AT_name" not in concrete[0].attributes
    assert [p.name for p in function_params(program, "describe")] == ["name", "pt", "m", "scale"]


def test_what_a_function_returns(bits):
    """Its type as a Param named "return" (what Arch.returns_in_memory is
    asked about), None for void or an undescribed function."""
    program = build_c("dwarf_params.c", bits, ("-O0",))
    assert function_return(program, "describe") == Param("return", "int", 4, True, False, False)
    assert function_return(program, "takes_nothing") is None
    assert function_return(program, "no_such_function") is None
    sret = build_c("sret.c", bits, ("-O0", "-g"))
    assert function_return(sret, "make_big") == Param(
        "return", "struct big", 4 * (bits // 8), False, False, False, is_scalar=False)


def test_no_dwarf_means_none(tmp_path):
    program = build_c("dwarf_params.c", 64, ("-O0",))
    stripped = tmp_path / "stripped"
    subprocess.run(["objcopy", "--strip-debug", str(program), str(stripped)], check=True)
    assert function_params(stripped, "take_all") is None
    assert function_params(program, "puts") is None          # imported: no DWARF here
    assert function_params(program, "no_such_function") is None


INT = Param("i", "int", 4, True, False, False)
UINT = Param("u", "unsigned int", 4, False, False, False)
SHORT = Param("sh", "short int", 2, True, False, False)
PTR = Param("p", "const void *", 8, False, True, False)
STR = Param("s", "const char *", 8, False, True, True)
DOUBLE = Param("d", "double", 8, False, False, False, is_float=True)
FLOAT = Param("f", "float", 4, False, False, False, is_float=True)


@pytest.mark.parametrize("param,raw,text", [
    (INT, 0xFFFFFFFB, "-5"),
    (INT, 0xDEADBEEF_FFFFFFFB, "-5"),      # upper register half is not the value's
    (INT, 0x7FFFFFFF, "2147483647"),
    (UINT, 0xFFFFFFFB, "4294967291"),
    (SHORT, 0xFFFE, "-2"),
    (PTR, 0x7FFC1234, "0x7ffc1234"),
    (PTR, 0, "0x0"),
    (STR, 0, "0x0"),
    (DOUBLE, struct.unpack("<Q", struct.pack("<d", 1.5))[0], "1.5"),
    (FLOAT, struct.unpack("<I", struct.pack("<f", -0.25))[0], "-0.25"),
])
def test_format_value(param, raw, text):
    assert format_value(param, raw) == text


def test_format_char_pointer():
    memory = {0x1000: b'say "hi"\n'}

    def read_cstring(addr):
        if addr not in memory:
            raise OSError("unmapped")
        return memory[addr]
    assert format_value(STR, 0x1000, read_cstring) == '0x1000 "say \\"hi\\"\\n"'
    assert format_value(STR, 0x2000, read_cstring) == "0x2000 <unreadable>"
    assert format_value(STR, 0x1000) == "0x1000"
    assert format_value(PTR, 0x1000, read_cstring) == "0x1000"
