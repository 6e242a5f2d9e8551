"""SDT argument operands -> values, over fake registers and memory.

The forms are those gcc and clang emit for an "nor" operand on x86_64 and
i386 (see sdt_probes.c and its readelf -n output at -O0/-O2): a wrong
sub-register slice (%ah is bits 8..15), a missing sign extension, or a
32-bit tracee's register read with its garbage upper half turns a right
probe into wrong numbers, silently."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from ptrace_raw.sdt import SdtArgError, parse_sdt_args

REGS64 = {
    "rax": 0x1122_3344_5566_77F8, "rbx": 0x10, "rcx": 0x7000_1000, "rdx": 2,
    "rsi": 0xFF80, "rdi": 0xDEAD_BEEF_CAFE_BABE, "rbp": 0x7000_1100, "rsp": 0x7000_1200,
    "r8": 0xFFFF_FFFF_FFFF_FFFE, "r9": 0x1234_5678_4020_0000, "r10": 0x1_8001, "r11": 0xFF,
    "r12": 0xC, "r13": 1, "r14": 0x7000_1300, "r15": 0x8000_0000_0000_0000,
    "rip": 0x5555_5555_5000, "fs_base": 0x7F00_0000_0100, "gs_base": 0,
}
# A 32-bit tracee's fields: only the low halves are its registers.
REGS32 = {
    "rax": 0xDEAD_BEEF_0000_0005, "rbx": 0xAAAA_0000_8000_0000, "rcx": 0x5555_0000_0000_0001,
    "rdx": 0xCAFE_0000_5655_8000, "rsi": 0x1_FFFF_FF9C, "rdi": 0x0000_0000_0000_ABCD,
    "rbp": 0x7777_0000_FFD0_1000, "rsp": 0x0000_0000_FFCF_FFF0, "rip": 0x5655_6000,
    "fs_base": 0, "gs_base": 0xF7F0_0100,
}
SYMBOLS = {
    "gvar": 0x5555_5555_8010, "st": 0x5555_5555_8020, "dv": 0x5555_5555_8040,
    "fv": 0x5555_5555_8048, "arr": 0x5555_5555_8100, "tvar@tpoff": -0x10,
    "counter.1": 0x5555_5555_8200,
    "gvar32": 0x5655_A010, "arr32": 0x5655_A100, "st32": 0x5655_A020, "tvar@ntpoff": -0x8,
}


def memory():
    mem = {}

    def put(addr, data):
        for i, b in enumerate(data):
            mem[addr + i] = b

    put(0x7000_1100 - 20, struct.pack("<i", -42))
    put(0x7000_1100 - 8, struct.pack("<q", -5))
    put(0x7000_1000 + 2 * 8, struct.pack("<q", 123456789))
    put(0x7000_1000, b"\xaa\xbb")
    put(0x7000_1200 + 0x10 + 2 * 4, struct.pack("<I", 0xFFFF_FFF0))
    put(0x7000_1300 + 1 * 8, struct.pack("<q", 99))
    put(SYMBOLS["gvar"], struct.pack("<i", 5))
    put(SYMBOLS["st"] + 8, struct.pack("<q", -2))
    put(SYMBOLS["dv"], struct.pack("<d", 1.5))
    put(SYMBOLS["fv"], struct.pack("<f", 2.5))
    put(SYMBOLS["arr"] + 2 * 8, struct.pack("<q", 3))
    put(SYMBOLS["counter.1"] - 4, struct.pack("<i", 77))
    put(0x7F00_0000_0100 - 0x10, struct.pack("<i", 3))
    put(0x7F00_0000_0100 + 0x28, struct.pack("<Q", 0x1234_5678_9ABC_DEF0))
    # 32-bit
    put(0xFFD0_1000 + 8, struct.pack("<i", 7))
    put(0xFFCF_FFF0 + 12, b"\xc8")
    put(0xFFCF_FFF0 + 16, struct.pack("<h", -3))
    put(0xFFCF_FFF0 + 20, struct.pack("<q", -5))
    put(SYMBOLS["gvar32"], struct.pack("<i", 6))
    put(SYMBOLS["arr32"] + 1 * 4, struct.pack("<i", -9))
    put(SYMBOLS["st32"] + 4, struct.pack("<i", 8))
    put(0xF7F0_0100 - 8, struct.pack("<i", 4))
    put(0x8000_0000 + 1 * 4, struct.pack("<I", 0xFEED_F00D))
    put(0xFFFF_FFFC, struct.pack("<i", -1234))
    put(0xF7F0_0100 + 0x14, struct.pack("<I", 0x5A5A_5A5A))

    def read(addr, size):
        return bytes(mem[addr + i] for i in range(size))
    return read


CASES = [
    # registers and their slices, 64-bit
    ("8@%rax", 64, 0x1122_3344_5566_77F8),
    ("-8@%r8", 64, -2),
    ("8@%r8", 64, 0xFFFF_FFFF_FFFF_FFFE),
    ("4@%eax", 64, 0x5566_77F8),
    ("-4@%eax", 64, 0x5566_77F8),
    ("2@%ax", 64, 0x77F8),
    ("1@%al", 64, 0xF8),
    ("-1@%al", 64, -8),
    ("1@%ah", 64, 0x77),
    ("-1@%sil", 64, -128),
    ("-2@%si", 64, -128),
    ("4@%esi", 64, 0xFF80),
    ("1@%dil", 64, 0xBE),
    ("2@%di", 64, 0xBABE),
    ("1@%bpl", 64, 0x00),
    ("1@%spl", 64, 0x00),
    ("-4@%r8d", 64, -2),
    ("-2@%r10w", 64, -32767),
    ("1@%r10b", 64, 1),
    ("-1@%r11b", 64, -1),
    ("1@%r11b", 64, 255),
    ("8@%r15", 64, 0x8000_0000_0000_0000),
    ("-8@%r15", 64, -(1 << 63)),
    ("4@%r12d", 64, 0xC),
    ("1@%bh", 64, 0),
    ("1@%dl", 64, 2),
    ("1@%ch", 64, 0x10),
    ("4f@%r9d", 64, 2.5),
    # immediates
    ("-4@$42", 64, 42),
    ("-4@$-7", 64, -7),
    ("-1@$-1", 64, -1),
    ("1@$-1", 64, 255),
    ("4@$0x10", 64, 16),
    ("-4@$0xffffffff", 64, -1),
    ("8@$gvar", 64, SYMBOLS["gvar"]),
    ("8@$gvar+4", 64, SYMBOLS["gvar"] + 4),
    # memory: base + displacement
    ("-4@-20(%rbp)", 64, -42),
    ("-8@-8(%rbp)", 64, -5),
    ("8@-8(%rbp)", 64, (1 << 64) - 5),
    ("1@(%rcx)", 64, 0xAA),
    ("2@(%rcx)", 64, 0xBBAA),
    ("-1@0(%rcx)", 64, -0x56),
    ("1@0x1(%rcx)", 64, 0xBB),
    # base, index, scale
    ("-8@(%rcx,%rdx,8)", 64, 123456789),
    ("-8@16(%rcx)", 64, 123456789),
    ("4@16(%rsp,%rdx,4)", 64, 0xFFFF_FFF0),
    ("-4@0x10(%rsp,%rdx,4)", 64, -16),
    ("-8@7(%r14,%r13)", 64, 99),
    ("-8@0(%r14,%r13,8)", 64, 99),
    # rip-relative symbols: memory at the symbol
    ("-4@gvar(%rip)", 64, 5),
    ("-8@8+st(%rip)", 64, -2),
    ("-8@st+8(%rip)", 64, -2),
    ("8f@dv(%rip)", 64, 1.5),
    ("4f@fv(%rip)", 64, 2.5),
    ("-4@counter.1-4(%rip)", 64, 77),
    ("-8@arr(,%rdx,8)", 64, 3),
    # segments and TLS
    ("-4@%fs:tvar@tpoff", 64, 3),
    ("8@%fs:0x28", 64, 0x1234_5678_9ABC_DEF0),
    ("8@%fs:40", 64, 0x1234_5678_9ABC_DEF0),
    # i386: 32-bit views over the 64-bit fields
    ("-4@%eax", 32, 5),
    ("4@%ebx", 32, 0x8000_0000),
    ("-4@%ebx", 32, -(1 << 31)),
    ("-4@%esi", 32, -100),
    ("1@%al", 32, 5),
    ("2@%di", 32, 0xABCD),
    ("1@%dh", 32, 0x80),
    ("-4@8(%ebp)", 32, 7),
    ("1@12(%esp)", 32, 200),
    ("-2@16(%esp)", 32, -3),
    ("-8@20(%esp)", 32, -5),
    ("4@(%ebx,%ecx,4)", 32, 0xFEED_F00D),
    ("-4@$7", 32, 7),
    ("-4@gvar32@GOTOFF(%edx)", 32, 6),
    ("-4@arr32@GOTOFF(%edx,%ecx,4)", 32, -9),
    ("-4@4+st32@GOTOFF(%edx)", 32, 8),
    ("-4@gvar32", 32, 6),
    ("-4@arr32(,%ecx,4)", 32, -9),
    ("-4@%gs:tvar@ntpoff", 32, 4),
    ("4@%gs:0x14", 32, 0x5A5A_5A5A),
]


@pytest.mark.parametrize("text, bits, expect", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_value(text, bits, expect):
    regs = REGS64 if bits == 64 else REGS32
    (arg,) = parse_sdt_args(text, bits)
    value = arg.value(regs.__getitem__, memory(), SYMBOLS.__getitem__)
    assert value == expect and type(value) is type(expect)
    assert str(arg) == text


def test_addresses_wrap_at_32_bits():
    regs = dict(REGS32, rbp=0x0000_0000)
    (arg,) = parse_sdt_args("-4@-4(%ebp)", 32)
    assert arg.address(regs.__getitem__) == 0xFFFF_FFFC
    assert arg.value(regs.__getitem__, memory()) == -1234


def test_a_whole_note_string():
    args = parse_sdt_args("-4@-4(%rbp)  1@%sil -2@%dx 8@%r8 -8@$7 ", 64)
    assert [(a.kind, a.size, a.signed) for a in args] == [
        ("mem", 4, True), ("reg", 1, False), ("reg", 2, True), ("reg", 8, False),
        ("imm", 8, True)]
    assert parse_sdt_args("", 64) == []


@pytest.mark.parametrize("text, bits, message", [
    ("4@%xmm0", 64, "unknown register %xmm0"),
    ("8@%rax", 32, "does not exist in 32-bit mode"),
    ("1@%sil", 32, "does not exist in 32-bit mode"),
    ("4@(%r8d)", 32, "does not exist in 32-bit mode"),
    ("3@%eax", 64, "unsupported size 3"),
    ("16@%rax", 64, "unsupported size 16"),
    ("2f@%ax", 64, "unsupported size 2 for a float"),
    ("%eax", 64, "expected N@operand"),
    ("4@", 64, "expected N@operand"),
    ("4@()", 64, "empty memory operand"),
    ("4@8(%rip)", 64, "numeric %rip displacement"),
    ("4@(%rax,%rbx,3)", 64, "scale 3"),
    ("4@(%al)", 64, "cannot address memory"),
    ("4@gvar@GOTOFF(%rbx)", 64, "relocation @GOTOFF is not supported"),
    ("4@tvar@tpoff", 64, "outside a segment-relative operand"),
    ("4@%es:8", 64, "segment %es"),
    ("4@$gvar@GOTOFF", 32, "in an immediate"),
    ("4@gvar@GOTOFF", 32, "without the GOT base register"),
    ("4@-gvar(%rip)", 64, "cannot read displacement"),
    ("4@a+b(%rip)", 64, "cannot read displacement"),
    ("4@[rax]", 64, "cannot read displacement"),
])
def test_unknown_forms_name_the_argument(text, bits, message):
    with pytest.raises(SdtArgError, match=message.replace("(", r"\(").replace("$", r"\$")) as err:
        parse_sdt_args(f"1@%al {text}", bits)
    assert text in str(err.value)


def test_evaluation_needs_what_the_operand_uses():
    (mem,) = parse_sdt_args("4@(%rax)", 64)
    with pytest.raises(SdtArgError, match="pass read"):
        mem.value(REGS64.__getitem__)
    (sym,) = parse_sdt_args("4@gvar(%rip)", 64)
    with pytest.raises(SdtArgError, match="pass resolve_symbol"):
        sym.value(REGS64.__getitem__, memory())
    (reg,) = parse_sdt_args("4@%eax", 64)
    with pytest.raises(SdtArgError, match="not a memory operand"):
        reg.address(REGS64.__getitem__)
    with pytest.raises(SdtArgError, match="short read"):
        mem.value(REGS64.__getitem__, lambda addr, size: b"\0")


@given(value=st.integers(0, (1 << 64) - 1), size=st.sampled_from([1, 2, 4, 8]),
       signed=st.booleans())
def test_register_values_mask_and_sign_extend(value, size, signed):
    names = {1: "al", 2: "ax", 4: "eax", 8: "rax"}
    (arg,) = parse_sdt_args(f"{'-' if signed else ''}{size}@%{names[size]}", 64)
    got = arg.value({"rax": value}.__getitem__)
    expect = int.from_bytes(value.to_bytes(8, "little")[:size], "little", signed=signed)
    assert got == expect
