"""Relocation for inline probes: byte tables, and the handler bytes against
their assembly listing.

The story these pin down: a block moved into a trampoline runs at another
address, so every position-dependent operand must keep its target (a
rip-relative disp, a rel8 jump that can no longer reach), a call that ends
the block must leave the return address the code was built for (i386
get-pc thunks read it), and anything a relocation cannot keep must be
refused rather than guessed.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from arch import I386, X86_64, UnsupportedInstruction
from arch.x86_inline import _HANDLERS

H = bytes.fromhex
SITE, TRAMP = 0x400000, 0x500000

# (name, arch, original bytes at SITE, expected bytes at TRAMP)
TABLE = [
    ("plain copy", X86_64, H("554889e5"), H("554889e5")),
    ("rip-relative load: disp moves by SITE - TRAMP",
     X86_64, H("488b0500100000"), H("488b0500100000"[:6]) + (0x1000 - 0x100000).to_bytes(4, "little", signed=True)),
    ("rip-relative with an immediate after the disp",
     X86_64, H("48833d0010000028"), H("48833d") + (0x1000 - 0x100000).to_bytes(4, "little", signed=True) + H("28")),
    ("jmp rel8 becomes jmp rel32 to the same target",
     X86_64, H("eb06"), H("e9") + (SITE + 8 - (TRAMP + 5)).to_bytes(4, "little", signed=True)),
    ("jz rel8 becomes jz rel32",
     X86_64, H("7405"), H("0f84") + (SITE + 7 - (TRAMP + 6)).to_bytes(4, "little", signed=True)),
    ("a call ending the block pushes the original return address, then jumps",
     X86_64, H("e810000000"),
     H("488d6424f8") + H("c70424") + (SITE + 5).to_bytes(4, "little") + H("c7442404") + bytes(4)
     + H("e9") + (SITE + 0x15 - (TRAMP + 25)).to_bytes(4, "little", signed=True)),
    ("i386: call ending the block is push imm32 + jmp",
     I386, H("53e800000000"),
     H("53") + H("68") + (SITE + 6).to_bytes(4, "little") + H("e9")
     + ((SITE + 6) - (TRAMP + 11)).to_bytes(4, "little", signed=True)),
    ("VEX in map 0F (vmovd %esi,%xmm0; mov; and) copies as it is",
     X86_64, H("c5f96ec689f825ff0f0000"), H("c5f96ec689f825ff0f0000")),
    ("VEX rip-relative load: disp moves by SITE - TRAMP",
     X86_64, H("c5fe6f0500100000"), H("c5fe6f05") + (0x1000 - 0x100000).to_bytes(4, "little", signed=True)),
    ("EVEX rip-relative load: disp moves by SITE - TRAMP",
     X86_64, H("62e1fe286f0500100000"),
     H("62e1fe286f05") + (0x1000 - 0x100000).to_bytes(4, "little", signed=True)),
    ("i386: VEX in map 0F copies as it is",
     I386, H("c5f96ec689f8"), H("c5f96ec689f8")),
    ("loop keeps its rel8 over a jump to the target",
     X86_64, H("e2fe"), H("e202eb05e9") + (SITE - (TRAMP + 9)).to_bytes(4, "little", signed=True)),
]


@pytest.mark.parametrize("name,arch,code,want", TABLE, ids=[t[0] for t in TABLE])
def test_relocation_table(name, arch, code, want):
    assert arch.relocate(code, SITE, TRAMP) == want


def test_far_targets_take_the_absolute_jump():
    far = 0x7f0000000000
    got = X86_64.relocate(H("eb00"), SITE, far)
    assert got == H("ff2500000000") + (SITE + 2).to_bytes(8, "little")
    cond = X86_64.relocate(H("7400"), SITE, far)
    assert cond[:2] == H("750e") and cond[2:] == H("ff2500000000") + (SITE + 2).to_bytes(8, "little")


@pytest.mark.parametrize("code,why", [
    (H("0f05"), "syscall"),
    (H("cc"), "int3"),
    (H("c7f800000000"), "xbegin"),
    (H("488b05"), "end inside"),
])
def test_refusals(code, why):
    with pytest.raises(UnsupportedInstruction, match=why):
        X86_64.relocate(code, SITE, TRAMP)


def test_rip_relative_out_of_reach_is_refused():
    with pytest.raises(UnsupportedInstruction, match="out of reach"):
        X86_64.relocate(H("488b0500000000"), SITE, 0x7f0000000000)


def test_branch_targets_of_a_function():
    # xor eax,eax; 1: inc eax; cmp $3,eax; jne 1b; call +0; ret
    code = H("31c0ffc083f80375f9e800000000c3")
    assert X86_64.branch_targets(code, SITE) == {SITE + 2, SITE + 14}


def test_call_returns_direct_and_indirect():
    # push rbx; call *rdi; pop rbx; call +0
    code = H("53ffd75be800000000")
    assert X86_64.call_returns(code, SITE) == {SITE + 3, SITE + 9}
    # push ebx; call *ecx; pop ebx; and a prologue with no call
    assert I386.call_returns(H("53ffd15b"), 0x8049000) == {0x8049003}
    assert X86_64.call_returns(H("554889e5"), SITE) == set()


@pytest.mark.skipif(shutil.which("as") is None, reason="GNU as is not installed")
def test_handler_bytes_match_their_listing(tmp_path):
    """x86_inline.py carries the bytes of x86_inline.S: assemble it again."""
    src = Path(__file__).resolve().parents[2] / "arch" / "x86_inline.S"
    obj = tmp_path / "inline.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True)
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text").data()
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    for (kind, bits), code in _HANDLERS.items():
        name = f"{kind}{bits}"
        assert text[syms[name]:syms[name + "_end"]].hex() == code, name


@pytest.mark.parametrize("arch", [X86_64, I386], ids=["x86_64", "i386"])
def test_handlers_fill_each_value_once(arch):
    w = arch.word_size
    values = {"counter": 0x1000, "ring": 0x2000, "capacity": 64, "tid_offset": 0x2d0,
              "table": 0x3000, "hist": 0x4000, "stub": 0x5000, "mult": 0x80000000,
              "guard": 0x6000}
    for kind in ("count", "record", "enter", "return"):
        code = arch.inline_handler(kind, values)
        for mark in ("11", "22", "33", "88"):
            assert bytes.fromhex(mark * w) not in code
        assert b"\x44\x44\x44\x44" not in code and b"\x77\x77\x77\x77" not in code
