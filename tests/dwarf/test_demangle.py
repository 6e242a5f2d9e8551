"""C++ demangling: known names, names left alone, and agreement with
c++filt over every symbol of a real C++ program."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from ptrace_raw.demangle import demangle
from tests.conftest import TRACEES


@pytest.mark.parametrize("mangled,readable", [
    ("_Z3fooi", "foo(int)"),
    ("_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back(int const&)"),
    ("_ZN3geo6SquareC2Ed", "geo::Square::Square(double)"),
    ("_ZNK3geo6Square4areaEv", "geo::Square::area() const"),
    ("_ZN3geo5twiceIdEET_RKS1_", "double geo::twice<double>(double const&)"),
    ("_ZTVN3geo5ShapeE", "vtable for geo::Shape"),
    ("_ZSt4cout@@GLIBCXX_3.4", "std::cout@@GLIBCXX_3.4"),
])
def test_known_names(mangled, readable):
    assert demangle(mangled) == readable


@pytest.mark.parametrize("name", ["main", "printf@GLIBC_2.2.5", "_Z", "_Zbogus", "", "_start"])
def test_other_names_are_unchanged(name):
    assert demangle(name) == name


@pytest.mark.skipif(not (shutil.which("g++") and shutil.which("c++filt")),
                    reason="needs g++ to build the C++ program and c++filt as the reference")
def test_agrees_with_cxxfilt(tmp_path):
    program = tmp_path / "names"
    subprocess.run(["g++", "-O0", "-o", str(program), str(TRACEES / "dwarf_names.cpp")], check=True)
    with open(program, "rb") as f:
        names = sorted({s.name for sec in ("symtab", "dynsym")
                        for s in ELFFile(f).get_section_by_name("." + sec).iter_symbols()
                        if s.name.startswith("_Z")})
    assert len(names) > 20
    reference = subprocess.run(["c++filt"], input="\n".join(names) + "\n", capture_output=True,
                               text=True, check=True).stdout.splitlines()
    assert [demangle(n) for n in names] == reference
