"""Byte tables -> plans, for x86_64 and i386: every vector of
xol-reference.md §5 (numbered in the ids) plus our own, each asserting the
strategy and the exact registers and memory an emulation or fixup leaves.

Stories behind some rows: ``41 90``, ``f3 90`` and ``89 ff`` were taken for
NOPs by earlier kernels (xchg r8, PAUSE, a zero-extending mov); FT and
kprobes tested a loop counter before decrementing it; gdb picked rcx as the
scratch register of ``shl %cl``; AMD and Intel disagree on 66-prefixed near
branches.
"""

from __future__ import annotations

import struct

import capstone
import pytest
from capstone import x86 as cs

from arch import I386, X86_64, UnsupportedInstruction

from .xolsim import FakeMemory, make_regs

V = 0x401000
SLOT = 0x40000000               # within +-2 GiB of V: rip-relative copies boost
FAR_SLOT = 0x7ffff7ff0000       # beyond rel32 reach of V
SP = 0x7ffffffde000
V32 = 0x8049000
SLOT32 = 0xf7ff0000
SP32 = 0xffffd000
TF, ZF, SF, OF, CF, PF = 0x100, 0x40, 0x80, 0x800, 0x1, 0x4
M64 = (1 << 64) - 1


def h(text):
    return bytes.fromhex(text)


def stack(sp):
    return FakeMemory((sp - 0x1000, sp + 0x1000))


def emulate(arch, code, addr, sp, **regs):
    plan = arch.analyze(h(code), addr)
    assert plan.strategy == "emulate", plan
    r = make_regs(rip=addr, rsp=sp, **regs)
    mem = stack(sp)
    assert plan.emulate(r, mem) is True
    return r, mem


# -- x86_64 emulation: (id, bytes, registers in, registers out, words on the stack)
EMU64 = [
    ("1-nop", "90", {}, {"rip": V + 1}, {}),
    ("2-xchg-ax-ax", "6690", {}, {"rip": V + 2}, {}),
    ("3-nopl", "0f1f440000", {}, {"rip": V + 5}, {}),
    ("4-nopw-cs", "662e0f1f840000000000", {}, {"rip": V + 10}, {}),
    ("nopl-riprel-operand", "0f1f0500100000", {}, {"rip": V + 7}, {}),
    ("8-mov-rsp-rsp", "4889e4", {}, {"rip": V + 3}, {}),
    ("mov-r9-r9", "4d89c9", {}, {"rip": V + 3}, {}),
    ("lea-0-rbp", "488d6d00", {}, {"rip": V + 4}, {}),
    ("9-endbr64", "f30f1efa", {}, {"rip": V + 4}, {}),
    ("10-jmp8", "eb10", {}, {"rip": V + 0x12}, {}),
    ("jmp8-back", "ebf0", {}, {"rip": V + 2 - 0x10}, {}),
    ("jmp+0", "eb00", {}, {"rip": V + 2}, {}),
    ("11-jmp32", "e900010000", {}, {"rip": V + 5 + 0x100}, {}),
    ("12-je-taken", "7405", {"eflags": 0x202 | ZF}, {"rip": V + 7}, {}),
    ("12-je-not", "7405", {}, {"rip": V + 2}, {}),
    ("13-jl32-taken", "0f8c00010000", {"eflags": 0x202 | SF}, {"rip": V + 0x106}, {}),
    ("13-jl32-not", "0f8c00010000", {"eflags": 0x202 | SF | OF}, {"rip": V + 6}, {}),
    ("14-jg-self-taken", "7ffe", {}, {"rip": V}, {}),
    ("14-jg-self-not", "7ffe", {"eflags": 0x202 | ZF}, {"rip": V + 2}, {}),
    ("15-call-next", "e800000000", {}, {"rip": V + 5, "rsp": SP - 8}, {-8: V + 5}),
    ("call-back", "e8f6ffffff", {}, {"rip": V - 5, "rsp": SP - 8}, {-8: V + 5}),
    ("tls-gd-call", "666648e8f0ffffff", {}, {"rip": V - 8, "rsp": SP - 8}, {-8: V + 8}),
    ("17-ret", "c3", {}, {"rip": 0x1234, "rsp": SP + 8}, {}),
    ("17-repz-ret", "f3c3", {}, {"rip": 0x1234, "rsp": SP + 8}, {}),
    ("17-bnd-ret", "f2c3", {}, {"rip": 0x1234, "rsp": SP + 8}, {}),
    ("18-ret-8", "c20800", {}, {"rip": 0x1234, "rsp": SP + 16}, {}),
    ("19-jrcxz-taken", "e3fe", {"rcx": 0}, {"rip": V}, {}),
    ("19-jrcxz-not", "e3fe", {"rcx": 1 << 32}, {"rip": V + 2}, {}),
    ("20-jecxz-taken", "67e3fe", {"rcx": 1 << 32}, {"rip": V + 1, "rcx": 1 << 32}, {}),
    ("20-jecxz-not", "67e3fe", {"rcx": 7}, {"rip": V + 3}, {}),
    ("21-loop-1", "e2fe", {"rcx": 1}, {"rip": V + 2, "rcx": 0}, {}),
    ("21-loop-0", "e2fe", {"rcx": 0}, {"rip": V, "rcx": M64}, {}),
    ("21-loop-2", "e2fe", {"rcx": 2}, {"rip": V, "rcx": 1}, {}),
    ("loop-ecx-zero-extends", "67e2fe", {"rcx": (5 << 32) | 1}, {"rip": V + 3, "rcx": 0}, {}),
    ("loop-ecx-0", "67e2fe", {"rcx": 5 << 32}, {"rip": V + 1, "rcx": 0xffffffff}, {}),
    ("22-loope-zf", "e1fe", {"rcx": 2, "eflags": 0x202 | ZF}, {"rip": V, "rcx": 1, "eflags": 0x202 | ZF}, {}),
    ("22-loope-nz", "e1fe", {"rcx": 2}, {"rip": V + 2, "rcx": 1, "eflags": 0x202}, {}),
    ("22-loope-1", "e1fe", {"rcx": 1, "eflags": 0x202 | ZF}, {"rip": V + 2, "rcx": 0}, {}),
    ("22-loopne-nz", "e0fe", {"rcx": 2}, {"rip": V, "rcx": 1, "eflags": 0x202}, {}),
    ("22-loopne-zf", "e0fe", {"rcx": 2, "eflags": 0x202 | ZF}, {"rip": V + 2, "rcx": 1}, {}),
    ("23-push-rbp", "55", {"rbp": 0x1111}, {"rip": V + 1, "rsp": SP - 8}, {-8: 0x1111}),
    ("24-push-r13", "4155", {"rbp": 0x1111, "r13": 0x2222}, {"rip": V + 2, "rsp": SP - 8}, {-8: 0x2222}),
    ("25-push-rsp", "54", {}, {"rip": V + 1, "rsp": SP - 8}, {-8: SP}),
    ("26-pushfq", "9c", {"eflags": 0x202 | TF | ZF | 0x10000}, {"rip": V + 1, "rsp": SP - 8}, {-8: 0x202 | ZF}),
    ("44-call-rax", "ffd0", {"rax": 0x5000}, {"rip": 0x5000, "rsp": SP - 8}, {-8: V + 2}),
    ("44-call-r11", "41ffd3", {"rax": 1, "r11": 0x6000}, {"rip": 0x6000, "rsp": SP - 8}, {-8: V + 3}),
    ("call-rsp", "ffd4", {}, {"rip": SP, "rsp": SP - 8}, {-8: V + 2}),
    ("45-notrack-jmp-rax", "3effe0", {"rax": 0x7000}, {"rip": 0x7000}, {}),
    ("jmp-r15", "41ffe7", {"r15": 0x7100}, {"rip": 0x7100}, {}),
]
EMU64 += [(f"push-r{8 + i}", f"41{0x50 + i:02x}", {f"r{8 + i}": 0x800 + i},
           {"rip": V + 2, "rsp": SP - 8}, {-8: 0x800 + i}) for i in range(8)]


@pytest.mark.parametrize("code,regs_in,regs_out,words", [r[1:] for r in EMU64], ids=[r[0] for r in EMU64])
def test_emulation_64(code, regs_in, regs_out, words):
    mem0 = stack(SP)
    mem0.write(SP, struct.pack("<Q", 0x1234))
    plan = X86_64.analyze(h(code), V)
    assert plan.strategy == "emulate"
    r = make_regs(rip=V, rsp=SP, **regs_in)
    before = dict(vars(r))
    assert plan.emulate(r, mem0) is True
    expected = dict(before, **regs_out)
    assert vars(r) == expected
    written = {a - SP: mem0.word(a, 8) for a in range(SP - 64, SP, 8) if mem0.word(a, 8)}
    assert written == words


# -- i386 emulation
EMU32 = [
    ("55-push-ebp", "55", {"rbp": 0x1111}, {"rip": V32 + 1, "rsp": SP32 - 4}, {-4: 0x1111}),
    ("56-call-next", "e800000000", {}, {"rip": V32 + 5, "rsp": SP32 - 4}, {-4: V32 + 5}),
    ("60-jecxz-taken", "e3fe", {"rcx": 0}, {"rip": V32}, {}),
    ("60-jecxz-not", "e3fe", {"rcx": 0x10000}, {"rip": V32 + 2}, {}),
    ("60-jcxz-taken", "67e3fe", {"rcx": 0x10000}, {"rip": V32 + 1}, {}),
    ("60-jcxz-not", "67e3fe", {"rcx": 1}, {"rip": V32 + 3}, {}),
    ("loop-cx-keeps-high", "67e2fe", {"rcx": 0x50000}, {"rip": V32 + 1, "rcx": 0x5ffff}, {}),
    ("loop-cx-1", "67e2fe", {"rcx": 0x50001}, {"rip": V32 + 3, "rcx": 0x50000}, {}),
    ("loop-ecx-0", "e2fe", {"rcx": 0}, {"rip": V32, "rcx": 0xffffffff}, {}),
    ("66-ret-4", "c20400", {}, {"rip": 0x1234, "rsp": SP32 + 8}, {}),
    ("ret", "c3", {}, {"rip": 0x1234, "rsp": SP32 + 4}, {}),
    ("67-endbr32", "f30f1efb", {}, {"rip": V32 + 4}, {}),
    ("mov-edi-edi", "89ff", {}, {"rip": V32 + 2}, {}),
    ("lea-esi-esi", "8db42600000000", {}, {"rip": V32 + 7}, {}),
    ("pushfd", "9c", {"eflags": 0x202 | TF | CF}, {"rip": V32 + 1, "rsp": SP32 - 4}, {-4: 0x203}),
    ("call-eax", "ffd0", {"rax": 0x5000}, {"rip": 0x5000, "rsp": SP32 - 4}, {-4: V32 + 2}),
    ("jmp-edx", "ffe2", {"rdx": 0x5000}, {"rip": 0x5000}, {}),
]


@pytest.mark.parametrize("code,regs_in,regs_out,words", [r[1:] for r in EMU32], ids=[r[0] for r in EMU32])
def test_emulation_32(code, regs_in, regs_out, words):
    mem0 = stack(SP32)
    mem0.write(SP32, struct.pack("<I", 0x1234))
    plan = I386.analyze(h(code), V32)
    assert plan.strategy == "emulate"
    r = make_regs(rip=V32, rsp=SP32, **regs_in)
    before = dict(vars(r))
    assert plan.emulate(r, mem0) is True
    assert vars(r) == dict(before, **regs_out)
    written = {a - SP32: mem0.word(a, 4) for a in range(SP32 - 32, SP32, 4) if mem0.word(a, 4)}
    assert written == words


def test_32bit_wraparound():
    """61: eip arithmetic is mod 2**32, forwards and backwards."""
    r, _ = emulate(I386, "e920000000", 0xfffffff0, SP32)
    assert r.rip == 0x15
    r, _ = emulate(I386, "ebf0", 0x4, SP32)
    assert r.rip == 0xfffffff6
    r, mem = emulate(I386, "e800000000", 0xfffffffc, SP32)
    assert (r.rip, mem.word(SP32 - 4, 4)) == (0x1, 0x1)
    r, _ = emulate(I386, "7405", 0xfffffffe, SP32, eflags=0x202 | ZF)
    assert r.rip == 0x5


# every jcc condition, independently phrased
_TAKEN = {
    0x0: lambda f: f & OF, 0x1: lambda f: not f & OF,
    0x2: lambda f: f & CF, 0x3: lambda f: not f & CF,
    0x4: lambda f: f & ZF, 0x5: lambda f: not f & ZF,
    0x6: lambda f: f & (CF | ZF), 0x7: lambda f: not f & (CF | ZF),
    0x8: lambda f: f & SF, 0x9: lambda f: not f & SF,
    0xa: lambda f: f & PF, 0xb: lambda f: not f & PF,
    0xc: lambda f: bool(f & SF) ^ bool(f & OF), 0xd: lambda f: not bool(f & SF) ^ bool(f & OF),
    0xe: lambda f: f & ZF or bool(f & SF) ^ bool(f & OF),
    0xf: lambda f: not (f & ZF or bool(f & SF) ^ bool(f & OF)),
}
_FLAG_SETS = [0x202 | (bits & 1) * CF | (bits >> 1 & 1) * PF | (bits >> 2 & 1) * ZF
              | (bits >> 3 & 1) * SF | (bits >> 4 & 1) * OF for bits in range(32)]


@pytest.mark.parametrize("cc", range(16))
@pytest.mark.parametrize("arch,addr", [(X86_64, V), (I386, V32)], ids=["x86_64", "i386"])
def test_every_condition_both_ways(arch, addr, cc):
    seen = set()
    for flags in _FLAG_SETS:
        taken = bool(_TAKEN[cc](flags))
        seen.add(taken)
        for code, length in ((bytes([0x70 | cc, 0x10]), 2),
                             (bytes([0x0f, 0x80 | cc]) + (0x100).to_bytes(4, "little"), 6)):
            plan = arch.analyze(code, addr)
            r = make_regs(rip=addr, rsp=SP, eflags=flags)
            assert plan.emulate(r, stack(SP))
            rel = 0x10 if length == 2 else 0x100
            assert r.rip == addr + length + (rel if taken else 0), (hex(flags), code.hex())
            assert r.eflags == flags
    assert seen == {True, False}


# -- copies in a slot
def step(arch, code, addr, slot, regs, hardware):
    """pre_xol, then ``hardware`` plays the CPU on the copy, then post_xol."""
    plan = arch.analyze(h(code), addr)
    mem = stack(regs.rsp)
    token = plan.pre_xol(regs, addr, slot)
    assert regs.rip == slot
    hardware(regs, mem)
    assert plan.post_xol(regs, mem, addr, slot, token) is True
    return plan, mem


def falls_through(length):
    def run(regs, mem):
        regs.rip += length
    return run


@pytest.mark.parametrize("code", ["f390", "4190", "89ff", "9d", "8b042500100000",
                                  "64488b042528000000", "0f31", "0faee8", "48ffc0"],
                         ids=["5-pause", "6-xchg-r8", "7-mov-edi-edi", "27-popf",
                              "41-sib-absolute", "47-fs-load", "53-rdtsc", "52-lfence", "inc"])
def test_plain_copies_64(code):
    """Not NOPs, not rip-relative: copied as is, ip += V - S after the step."""
    plan = X86_64.analyze(h(code), V)
    assert plan.strategy in ("step", "boost")
    assert plan.step_code(V, SLOT) == h(code).ljust(32, b"\xcc")
    r = make_regs(rsp=SP, rsi=0x55)
    step(X86_64, code, V, SLOT, r, falls_through(len(h(code))))
    assert (r.rip, r.rsi) == (V + len(h(code)), 0x55)


@pytest.mark.parametrize("arch", [X86_64, I386], ids=["x86_64", "i386"])
def test_popf_is_a_plain_step_and_never_boosted(arch):
    """Boosted, a TF that popf pops would trap on the slot's jump back, an
    instruction early, and no plan emulates popf: it is the instruction the
    tests of the step path probe (faults.c, stepsignals.c, trapstep.c,
    forkduring.c, vforkstep.c) and the bench's stepped case, since group
    3's neg, which they stepped before, boosts.  Should popf ever boost or
    be emulated, they need another instruction."""
    plan = arch.analyze(h("9d"), V if arch is X86_64 else V32)
    assert (plan.strategy, plan.boostable, plan.plain_step) == ("step", False, True)
    assert plan.boost_code(V, SLOT) is None


def test_27_popf_keeps_tf():
    r = make_regs(rsp=SP)

    def popf(regs, mem):
        regs.eflags = 0x302
        regs.rsp += 8
        regs.rip += 1
    step(X86_64, "9d", V, SLOT, r, popf)
    assert (r.eflags, r.rip, r.rsp) == (0x302, V + 1, SP + 8)


def test_pushf_step_path_clears_tf_in_the_pushed_image():
    r = make_regs(rsp=SP, eflags=0x246)

    def pushf_under_singlestep(regs, mem):
        regs.rsp -= 8
        mem.write(regs.rsp, struct.pack("<Q", 0x346))
        regs.rip += 1
    _, mem = step(X86_64, "9c", V, SLOT, r, pushf_under_singlestep)
    assert (mem.word(SP - 8, 8), r.rsp, r.rip) == (0x246, SP - 8, V + 1)


@pytest.mark.parametrize("arch, code, sp, size", [
    (X86_64, "669c", SP, 2), (X86_64, "f39c", SP, 8), (X86_64, "66489c", SP, 8),
    (I386, "669c", SP32, 2), (I386, "3e9c", SP32, 4)],
    ids=["pushfw", "rep-pushfq", "rexw-pushfq", "pushfw-32", "ds-pushfd"])
def test_a_prefixed_pushf_is_a_push_of_the_flags_and_its_step_clears_tf(arch, code, sp, size):
    """pushf with a prefix (pushfw, 0x66 without REX.W, pushes 2 bytes) was
    a plain copy: boosted it pushed the right image, but its step path,
    every plan's fallback, left the tracer's TF in the pushed word, and
    the popf after it set TF in the program (a signal met as the thread
    entered its boosted copy took that path, and the program died)."""
    addr, slot = (V, SLOT) if arch is X86_64 else (V32, SLOT32)
    n = len(h(code))
    r, mem = emulate(arch, code, addr, sp, eflags=0x246 | TF | 0x10000)
    assert (r.rip, r.rsp, mem.word(sp - size, size)) == (addr + n, sp - size, 0x246)
    r = make_regs(rsp=sp, eflags=0x246)

    def pushf_under_singlestep(regs, mem):
        regs.rsp -= size
        mem.write(regs.rsp, (0x346).to_bytes(size, "little"))
        regs.rip += n
    _, mem = step(arch, code, addr, slot, r, pushf_under_singlestep)
    assert (mem.word(sp - size, size), r.rsp, r.rip) == (0x246, sp - size, addr + n)


# (id, bytes, rewritten copy, scratch)
RIPREL = [
    ("28", "488b0500100000", "488b8600100000", "rsi"),
    ("29", "890d00100000", "898e00100000", "rsi"),
    ("30", "4c8b0500100000", "4c8b8600100000", "rsi"),
    ("31-imm", "c7050010000078563412", "c7860010000078563412", "rsi"),
    ("32-imm8", "48833d0010000000", "4883be0010000000", "rsi"),
    ("33-shl-cl", "d32500100000", "d3a600100000", "rsi"),
    ("34-mulx", "c4e263f60d00100000", "c4e263f68e00100000", "rsi"),
    ("35-vex2", "c5f8280500100000", "c5f8288600100000", "rsi"),
    ("36-evex", "62f17c48280500100000", "62f17c48288600100000", "rsi"),
    ("37-cmpxchg8b", "0fc70d00100000", "0fc78e00100000", "rsi"),
    ("38-lock-cmpxchg", "f00fb10d00100000", "f00fb18e00100000", "rsi"),
    ("39-push-reg6", "ff3500100000", "ffb700100000", "rdi"),
    ("40-pop", "8f0500100000", "8f8600100000", "rsi"),
    ("rex-b-cleared", "498b0500100000", "488b8600100000", "rsi"),
    ("vex3-b-set", "c4c178280500100000", "c4e178288600100000", "rsi"),
    ("evex-bx-set", "62917c48280500100000", "62f17c48288600100000", "rsi"),
    ("reg-rsi", "488b3500100000", "488bb700100000", "rdi"),
    ("vvvv-rsi-reg-rdi", "c4e2c8f23d00100000", "c4e2c8f2bb00100000", "rbx"),
    ("movsd-sse", "f20f100500100000", "f20f108600100000", "rsi"),
    ("lea", "488d0500100000", "488d8600100000", "rsi"),
    ("eip-relative", "678b0500100000", "678b8600100000", "rsi"),
    ("fs-riprel", "64488b0500100000", "64488b8600100000", "rsi"),
    ("palignr-imm", "660f3a0f050010000008", "660f3a0f860010000008", "rsi"),
    # group 3 writes rdx:rax (mul, imul, div, idiv) or its operand alone
    # (not, neg): never a scratch; its /6 and /7 are opcode bits, not rsi
    # and rdi, but are kept out of the choice like any modrm.reg
    ("mul-rdx-rax", "48f72500100000", "48f7a600100000", "rsi"),
    ("imul-ax", "f62d00100000", "f6ae00100000", "rsi"),
    ("div-reg6", "48f73500100000", "48f7b700100000", "rdi"),
    ("idiv-reg7", "f73d00100000", "f7be00100000", "rsi"),
    ("lock-neg", "f0f71d00100000", "f0f79e00100000", "rsi"),
    ("not-16", "66f71500100000", "66f79600100000", "rsi"),
    ("rex-b-div", "49f73500100000", "48f7b700100000", "rdi"),
]


@pytest.mark.parametrize("code,rewritten,scratch", [r[1:] for r in RIPREL], ids=[r[0] for r in RIPREL])
def test_riprel_rewrite(code, rewritten, scratch):
    """Same length, operand moved to the scratch register, which holds V+L
    during the step and its own value after it (and after an abort)."""
    plan = X86_64.analyze(h(code), V)
    n = len(h(code))
    assert plan.step_code(V, FAR_SLOT) == h(rewritten).ljust(32, b"\xcc")
    r = make_regs(rsp=SP, rsi=0x1111, rdi=0x2222, rbx=0x3333)
    token = plan.pre_xol(r, V, FAR_SLOT)
    assert getattr(r, scratch) == V + n and r.rip == FAR_SLOT
    others = {f: getattr(r, f) for f in ("rsi", "rdi", "rbx") if f != scratch}
    assert others == {f: v for f, v in {"rsi": 0x1111, "rdi": 0x2222, "rbx": 0x3333}.items() if f != scratch}
    r.rip += n
    assert plan.post_xol(r, stack(SP), V, FAR_SLOT, token) is True
    assert (r.rsi, r.rdi, r.rbx, r.rip) == (0x1111, 0x2222, 0x3333, V + n)
    plan.pre_xol(r, V, FAR_SLOT)
    plan.abort_xol(r, V, FAR_SLOT, token)
    assert (r.rsi, r.rdi, r.rbx, r.rip) == (0x1111, 0x2222, 0x3333, V)


@pytest.mark.parametrize("code,rewritten,scratch", [r[1:] for r in RIPREL], ids=[r[0] for r in RIPREL])
def test_riprel_rewrite_decodes_to_the_same_instruction(code, rewritten, scratch):
    """capstone reads the copy as the same instruction on [scratch + disp],
    and the scratch is none of the registers the original touches."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    orig = next(md.disasm(h(code), V))
    copy = next(md.disasm(h(rewritten), FAR_SLOT))
    assert (copy.size, copy.mnemonic) == (orig.size, orig.mnemonic)
    mem = [op.mem for op in copy.operands if op.type == cs.X86_OP_MEM]
    assert [copy.reg_name(m.base) in (scratch, "e" + scratch[1:]) for m in mem] == [True]
    assert mem[0].disp == 0x1000
    read, written = orig.regs_access()
    assert not {orig.reg_name(x)[-2:] for x in read + written} & {scratch[-2:]}


def test_boost_reencodes_riprel_for_the_slot():
    plan = X86_64.analyze(h("488b0500100000"), V)
    assert plan.strategy == "boost"
    code = plan.boost_code(V, SLOT)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    load, back = list(md.disasm(code[:12], SLOT))
    assert load.mnemonic == "mov" and load.size == 7
    assert code[:3] == h("488b05")
    assert int.from_bytes(code[3:7], "little", signed=True) + SLOT + 7 == V + 7 + 0x1000
    assert back.mnemonic == "jmp" and int(back.op_str, 16) == V + 7
    assert code[12:] == b"\xcc" * 20
    assert plan.boost_code(V, FAR_SLOT) is None


# group 3 (f6, f7) in every form: (id, arch, bytes)
GROUP_3 = [
    ("test-edi", X86_64, "f7c701000000"), ("test-dl", X86_64, "f6c201"),
    ("test-rdx", X86_64, "48f7c2ff000000"), ("test-f6-1", X86_64, "f6c8ff"),
    ("not-al", X86_64, "f6d0"), ("not-r11", X86_64, "49f7d3"), ("neg-eax", X86_64, "f7d8"),
    ("neg-rdi", X86_64, "48f7df"), ("neg-ax", X86_64, "66f7d8"), ("neg-r8d", X86_64, "41f7d8"),
    ("mul-ecx", X86_64, "f7e1"), ("mul-r8", X86_64, "49f7e0"), ("imul-rcx", X86_64, "48f7e9"),
    ("imul-cl", X86_64, "f6e9"), ("div-rcx", X86_64, "48f7f1"), ("div-cl", X86_64, "f6f1"),
    ("div-cx", X86_64, "66f7f1"), ("idiv-r11", X86_64, "49f7fb"),
    ("neg-mem-rsp", X86_64, "48f75c2408"), ("mul-mem-sib", X86_64, "41f6241b"),
    ("idiv-mem-disp32", X86_64, "f7bc24d0000000"), ("lock-neg-byte", X86_64, "f0f65c2408"),
    ("lock-not-qword", X86_64, "f048f7542408"), ("mul-riprel", X86_64, "48f72500100000"),
    ("div-riprel", X86_64, "48f73500100000"), ("idiv-riprel", X86_64, "f73d00100000"),
    ("lock-neg-riprel", X86_64, "f0f71d00100000"), ("not-riprel-16", X86_64, "66f71500100000"),
    ("i386-test-mem", I386, "f744240401000000"), ("i386-neg-mem", I386, "f75c2404"),
    ("i386-lock-neg-mem", I386, "f0f75c2404"), ("i386-not-byte", I386, "f6542404"),
    ("i386-mul-mem", I386, "f7642404"), ("i386-imul-ecx", I386, "f7e9"),
    ("i386-div-ecx", I386, "f7f1"), ("i386-idiv-ecx", I386, "f7f9"), ("i386-div-cx", I386, "66f7f1"),
    ("i386-div-abs", I386, "f73500100000"), ("i386-idiv-ebx", I386, "f7bb00100000"),
]


@pytest.mark.parametrize("arch, code", [r[1:] for r in GROUP_3], ids=[r[0] for r in GROUP_3])
def test_group_3_boosts_in_every_form(arch, code):
    """test only reads and sets flags; not and neg write their operand (a
    lock's too), mul, imul, div and idiv rdx:rax, as any copy would.  A
    div's #DE, or a memory operand's fault, comes at the copy's start
    with nothing done (no ``boost_fault_at``), and the tracer reports it
    at home as the program's own.  So each is a copy and a jump back, one
    stop where the step took two (1,157 not, neg, mul, imul, div and idiv
    of 64-bit libc, 1,379 of 32-bit libc)."""
    _assert_boosts(arch, code)


# inc and dec (fe/ff /0 and /1: in 64-bit mode 40-4f are REX prefixes, so
# these are its only inc and dec), punpck[lh]qdq, the prefetch hints and
# the bit-test group with an immediate (0f ba /4-/7): plain operations on
# their operand and the flags that kprobes' tables leave out
MORE_COPIES = [
    ("inc-eax", X86_64, "ffc0"), ("dec-rdi", X86_64, "48ffcf"), ("inc-byte-mem", X86_64, "fe4308"),
    ("lock-dec-qword", X86_64, "f048ff4c2408"), ("inc-riprel", X86_64, "ff0500100000"),
    ("dec-r9w", X86_64, "6641ffc9"),
    ("punpcklqdq", X86_64, "660f6cc1"), ("punpckhqdq-mem", X86_64, "660f6d4c2410"),
    ("prefetcht0", X86_64, "0f180c24"), ("prefetchnta-riprel", X86_64, "0f180500100000"),
    ("prefetchw", X86_64, "0f0d0c24"),
    ("bt-imm", X86_64, "0fbae003"), ("bts-mem-imm", X86_64, "480fba6c240805"),
    ("lock-btr-imm", X86_64, "f00fba74240807"), ("btc-riprel-imm", X86_64, "0fba3d0010000001"),
    ("i386-inc-mem", I386, "ff442404"), ("i386-dec-byte", I386, "fec9"),
    ("i386-punpcklqdq", I386, "660f6cc1"), ("i386-prefetcht1", I386, "0f18542404"),
    ("i386-bt-imm", I386, "0fbae11f"),
]


@pytest.mark.parametrize("arch, code", [r[1:] for r in MORE_COPIES],
                         ids=[r[0] for r in MORE_COPIES])
def test_inc_dec_punpckqdq_prefetch_and_bt_imm_boost(arch, code):
    """Each reads and writes its operand and the flags alone (a prefetch
    only hints, and never faults): a copy and a jump back do in one stop
    what the step took two for (492 inc and dec, 141 punpcklqdq of 64-bit
    libc stepped).  The rest of groups 4 and 5 stays as it was: call and
    jmp have their own plans, the far ones are refused."""
    _assert_boosts(arch, code)


def _assert_boosts(arch, code):
    """``code`` is a copy and a jump back: the same instruction on the same
    operand in the slot (a rip-relative one's displacement moved so that
    it names the same address from there; out of reach, it is stepped)."""
    addr, slot = (V, SLOT) if arch is X86_64 else (V32, SLOT32)
    plan = arch.analyze(h(code), addr)
    n = len(h(code))
    assert (plan.strategy, plan.boostable, plan.boost_fault_at, plan.length) == ("boost", True, 0, n)
    boosted = plan.boost_code(addr, slot)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64 if arch is X86_64 else capstone.CS_MODE_32)
    md.detail = True
    copy, back = list(md.disasm(boosted[:n + 5], slot))
    orig = next(md.disasm(h(code), addr))
    # the same instruction on the same operand: a rip-relative one's
    # displacement is moved so that it names the same address from the slot
    assert (copy.size, copy.mnemonic, _operands(copy)) == (n, orig.mnemonic, _operands(orig))
    assert (back.mnemonic, int(back.op_str, 16)) == ("jmp", addr + n)
    if "rip" in orig.op_str:
        assert boosted[:n] != h(code)
        assert plan.boost_code(addr, FAR_SLOT) is None  # out of reach: stepped
    else:
        assert boosted[:n] == h(code)


def _operands(ins):
    """An instruction's operands with a rip-relative address made absolute."""
    out = []
    for op in ins.operands:
        if op.type == cs.X86_OP_MEM and op.mem.base == cs.X86_REG_RIP:
            out.append(("abs", ins.address + ins.size + op.mem.disp))
        elif op.type == cs.X86_OP_MEM:
            out.append((op.mem.base, op.mem.index, op.mem.scale, op.mem.disp, op.size))
        else:
            out.append((op.type, op.reg if op.type == cs.X86_OP_REG else op.imm))
    return out


@pytest.mark.parametrize("arch, code", [(I386, "ff742404"), (I386, "ffb3fcffffff"),
                                        (X86_64, "ff742408"), (X86_64, "41ff7610")],
                         ids=["i386-esp", "i386-ebx", "rsp", "r14"])
def test_a_push_from_memory_boosts(arch, code):
    """push r/m (ff /6) reads its operand and faults, if at all, before
    rsp moves: a copy does it in one stop (7,298 such pushes in 32-bit
    libc, where arguments are pushed from memory, took two)."""
    plan = arch.analyze(h(code), V if arch is X86_64 else V32)
    assert plan.strategy == "boost"
    addr = V if arch is X86_64 else V32
    assert plan.boost_code(addr, SLOT if arch is X86_64 else SLOT32)[:len(h(code))] == h(code)


def test_a_rip_relative_test_boosts_with_its_displacement_moved():
    plan = X86_64.analyze(h("f7050010000001000000"), V)
    assert plan.strategy == "boost"
    code = plan.boost_code(V, SLOT)
    assert code[:2] == h("f705") and code[6:10] == h("01000000")
    assert int.from_bytes(code[2:6], "little", signed=True) + SLOT + 10 == V + 10 + 0x1000


@pytest.mark.parametrize("arch, code", [(X86_64, "55"), (X86_64, "4155"), (X86_64, "9c"),
                                        (I386, "55"), (I386, "9c")],
                         ids=["push-rbp", "push-r13", "pushfq", "push-ebp", "pushfd"])
def test_pushes_emulate_and_also_boost_as_themselves(arch, code):
    """A push needs the registers to emulate, so a tracer prefers to run
    it from a slot: the copy is the push itself and a jump back."""
    addr, slot = (V, SLOT) if arch is X86_64 else (0x1000, 0x5000)
    plan = arch.analyze(h(code), addr)
    assert plan.strategy == "emulate" and plan.boostable and plan.next_ip(addr) is None
    boosted = plan.boost_code(addr, slot)
    n = len(h(code))
    assert boosted[:n] == h(code) and boosted[n] == 0xe9
    assert (slot + n + 5 + int.from_bytes(boosted[n + 1:n + 5], "little", signed=True)) \
        & ((1 << arch.bits) - 1) == addr + n
    assert boosted[n + 5:] == b"\xcc" * (32 - n - 5)
    if arch is X86_64:
        far = plan.boost_code(V, FAR_SLOT)
        assert far[:n + 6] == h(code) + h("ff2500000000")
        assert int.from_bytes(far[n + 6:n + 14], "little") == V + n


@pytest.mark.parametrize("arch, addr, slot", [(X86_64, V, SLOT), (X86_64, V, FAR_SLOT),
                                              (I386, 0x1000, 0x5000), (I386, 0xfffff000, 0x10)],
                         ids=["near", "far", "i386", "i386-wrap"])
def test_a_call_boosts_as_a_push_of_its_return_address_and_a_jump(arch, addr, slot):
    """call rel32 from a slot: the push comes first (a fault there has done
    nothing), the high half of a 64-bit return address is set in the
    word the push wrote, then a jump to the call's own target."""
    plan = arch.analyze(h("e8f0ffffff"), addr)
    assert plan.strategy == "emulate" and plan.boostable
    mask = (1 << arch.bits) - 1
    ret, target = (addr + 5) & mask, (addr + 5 - 0x10) & mask
    code = plan.boost_code(addr, slot)
    assert len(code) == 32 and code[0] == 0x68
    assert int.from_bytes(code[1:5], "little") == ret & 0xffffffff
    at = 5
    if arch is X86_64:
        assert code[5:9] == h("c7442404") and int.from_bytes(code[9:13], "little") == ret >> 32
        at = 13
    assert code[at:] == (arch.encode_jump(slot + at, target)).ljust(32 - at, b"\xcc")


def test_a_call_to_a_non_canonical_target_is_not_boosted():
    """Its #GP must come from the call itself, with nothing pushed."""
    addr = 0x00007ffffffff000
    plan = X86_64.analyze(h("e800100000"), addr)
    assert plan.boost_code(addr, addr - 0x1000) is None


def test_what_only_moves_ip_or_calls_through_sp_is_not_boostable():
    for arch, code in ((X86_64, "f30f1efa"), (X86_64, "90"), (X86_64, "e900000000"),
                       (X86_64, "eb00"), (X86_64, "ffd4"), (I386, "ffd4")):
        plan = arch.analyze(h(code), V if arch is X86_64 else 0x1000)
        assert not plan.boostable and plan.boost_code(V, SLOT) is None, plan
        assert plan.boost_fault_at == 0, plan


@pytest.mark.parametrize("arch, code, jmp", [(X86_64, "ffd6", "ffe6"), (X86_64, "41ffd3", "41ffe3"),
                                             (X86_64, "3effd0", "3effe0"), (I386, "ffd2", "ffe2")],
                         ids=["rsi", "r11", "notrack-rax", "i386-edx"])
def test_a_call_through_a_register_boosts_as_a_push_and_a_jmp_through_it(arch, code, jmp):
    """From any slot: the return address pushed as a call rel32's boost
    pushes it, then a jmp with the call's prefixes and register."""
    addr = V if arch is X86_64 else 0xfffff000
    mask = (1 << arch.bits) - 1
    plan = arch.analyze(h(code), addr)
    assert plan.strategy == "emulate" and plan.boostable
    ret = (addr + len(h(code))) & mask
    push = h("68") + (ret & 0xffffffff).to_bytes(4, "little")
    if arch is X86_64:
        push += h("c7442404") + (ret >> 32).to_bytes(4, "little")
    for slot in ((SLOT, FAR_SLOT) if arch is X86_64 else (SLOT32, 0x10)):
        assert plan.boost_code(addr, slot) == (push + h(jmp)).ljust(32, b"\xcc")
    # Only a 64-bit jmp can fault with the push done (a non-canonical
    # target): undo_boost then takes the push back.
    assert plan.boost_fault_at == (len(push) if arch is X86_64 else 0)
    regs = make_regs(rsp=0x7ff8 if arch is X86_64 else 0xfffffffc)
    plan.undo_boost(regs)
    assert regs.rsp == (0x8000 if arch is X86_64 else 0)


@pytest.mark.parametrize("arch, code", [(X86_64, "c3"), (X86_64, "f3c3"), (X86_64, "c21000"),
                                        (X86_64, "ffe0"), (X86_64, "41ffe3"), (I386, "c3"),
                                        (I386, "ffe2")])
def test_rets_and_register_jumps_boost_as_their_copy_alone(arch, code):
    """They never fall through, so the slot needs no jump back, from any
    slot address."""
    plan = arch.analyze(h(code), 0x1000)
    for slot in ((SLOT, FAR_SLOT) if arch is X86_64 else (SLOT32, 0x1000)):
        assert plan.boostable and plan.boost_code(0x1000, slot) == h(code).ljust(
            arch.xol_slot_size, b"\xcc")


@pytest.mark.parametrize("arch, addr, code, short, rel", [
    (X86_64, V, "7405", "74", 5), (X86_64, V, "0f8c00010000", "7c", 0x100),
    (X86_64, V, "3e7405", "74", 5), (X86_64, V, "e2fe", "e2", -2), (X86_64, V, "67e3fe", "67e3", -2),
    (I386, 0x10, "7405", "74", 5), (I386, 0x10, "0f8500010000", "75", 0x100),
    (I386, 0x10, "67e2e0", "67e2", -0x20)])
def test_conditional_branches_boost_as_their_short_form_between_two_jumps(arch, addr, code, short,
                                                                         rel):
    """short L1; jmp next; L1: jmp target: rel32 jumps from a near slot,
    absolute ones (64-bit) from a far one; i386 wraps."""
    plan = arch.analyze(h(code), addr)
    length = len(h(code))
    assert plan.boostable and plan.next_ip(addr) is None
    target = (addr + length + rel) & ((1 << (8 * arch.word_size)) - 1)
    slots = (SLOT, FAR_SLOT) if arch is X86_64 else (SLOT32,)
    for slot in slots:
        slot_code = plan.boost_code(addr, slot)
        assert len(slot_code) == arch.xol_slot_size
        n = len(h(short))
        assert slot_code[:n] == h(short)
        after = slot + n + 1
        back = arch.encode_jump(after, addr + length)
        assert slot_code[n] == len(back) and slot_code[n + 1:n + 1 + len(back)] == back
        there = after + len(back)
        assert slot_code[n + 1 + len(back):].startswith(arch.encode_jump(there, target))


def test_a_branch_to_a_non_canonical_target_is_not_boosted():
    addr = 0x00007ffffffff000
    assert X86_64.analyze(h("0f8400100000"), addr).boost_code(addr, addr - 0x1000) is None


def test_boost_jump_back_forms():
    plan = X86_64.analyze(h("4889c3"), V)
    near = plan.boost_code(V, SLOT)
    assert near[:3] == h("4889c3") and near[3] == 0xe9
    assert SLOT + 8 + int.from_bytes(near[4:8], "little", signed=True) == V + 3
    far = plan.boost_code(V, FAR_SLOT)
    assert far[:9] == h("4889c3ff2500000000")
    assert int.from_bytes(far[9:17], "little") == V + 3 and far[17:] == b"\xcc" * 15
    assert len(near) == len(far) == 32
    plan32 = I386.analyze(h("89c3"), 0x10)
    code = plan32.boost_code(0x10, 0xfffff000)
    assert code[2] == 0xe9 and (0xfffff007 + int.from_bytes(code[3:7], "little")) & 0xffffffff == 0x12


def test_encode_jump_and_reach():
    assert X86_64.encode_jump(0x1000, 0x1005) == h("e900000000")
    assert X86_64.encode_jump(0x1000, 0x1000) == h("e9fbffffff")
    far = 0x1000 + (1 << 33)
    assert X86_64.encode_jump(0x1000, far) == h("ff2500000000") + far.to_bytes(8, "little")
    assert X86_64.in_rel32_reach(0, (1 << 31) - 1) and not X86_64.in_rel32_reach(0, 1 << 31)
    assert X86_64.in_rel32_reach(0, -(1 << 31)) and not X86_64.in_rel32_reach(0, -(1 << 31) - 1)
    assert I386.in_rel32_reach(0, 0xffffffff)
    assert I386.encode_jump(0xfffffffe, 0x10) == h("e90d000000")


@pytest.mark.parametrize("code,target_fix", [
    ("ff2500100000", "abs"), ("ff1500100000", "call"), ("ff542408", "call"), ("ff20", "abs"),
], ids=["42-jmp-riprel", "43-call-riprel", "46-call-rsp-mem", "jmp-mem"])
def test_indirect_memory_fixups(code, target_fix):
    """No ip fix for an absolute jump; a call gets its return word := V+L."""
    n = len(h(code))
    r = make_regs(rsp=SP, rsi=0x99)

    def hardware(regs, mem):
        if target_fix == "call":
            regs.rsp -= 8
            mem.write(regs.rsp, struct.pack("<Q", FAR_SLOT + n))
        regs.rip = 0xabc000
    plan, mem = step(X86_64, code, V, FAR_SLOT, r, hardware)
    assert r.rip == 0xabc000 and r.rsi == 0x99
    if target_fix == "call":
        assert r.rsp == SP - 8 and mem.word(SP - 8, 8) == V + n
        assert plan.strategy == "step"
    else:
        assert r.rsp == SP and plan.strategy == "boost"
        assert plan.boost_code(V, SLOT)[n:] == b"\xcc" * (32 - n)


def test_48_rep_string_restepped_while_ip_in_slot():
    plan = X86_64.analyze(h("f3a4"), V)
    r = make_regs(rsp=SP, rcx=3)
    token = plan.pre_xol(r, V, FAR_SLOT)
    r.rcx = 2
    assert plan.post_xol(r, stack(SP), V, FAR_SLOT, token) is False
    assert r.rip == FAR_SLOT
    r.rcx, r.rip = 0, FAR_SLOT + 2
    assert plan.post_xol(r, stack(SP), V, FAR_SLOT, token) is True
    assert r.rip == V + 2


# -- emulate plans' step fallback (the tracer steps when emulate fails)
def test_15_call_falls_back_to_a_stepped_call_plus_0():
    plan = X86_64.analyze(h("e810000000"), V)
    full = FakeMemory()
    r = make_regs(rip=V, rsp=SP)
    assert plan.emulate(r, full) is False
    assert vars(r) == vars(make_regs(rip=V, rsp=SP))
    assert plan.step_code(V, FAR_SLOT)[:5] == h("e800000000")

    def call_plus_0(regs, mem):
        regs.rsp -= 8
        mem.write(regs.rsp, struct.pack("<Q", FAR_SLOT + 5))
        regs.rip = FAR_SLOT + 5
    _, mem = step(X86_64, "e810000000", V, FAR_SLOT, r, call_plus_0)
    assert (r.rip, r.rsp, mem.word(SP - 8, 8)) == (V + 0x15, SP - 8, V + 5)


@pytest.mark.parametrize("code,regs_in,rip_after,extra", [
    ("eb10", {}, V + 0x12, {}),
    ("7405", {"eflags": 0x202 | ZF}, V + 7, {}),
    ("7405", {}, V + 2, {}),
    ("e2fe", {"rcx": 1}, V + 2, {"rcx": 0}),
    ("e2fe", {"rcx": 0}, V, {"rcx": M64}),
    ("e3fe", {"rcx": 0}, V, {}),
], ids=["jmp", "je-taken", "je-not", "loop-1", "loop-0", "jrcxz"])
def test_branch_step_path_steps_a_nop_and_branches_from_home(code, regs_in, rip_after, extra):
    """A branch run from a far slot could go non-canonical: the step path
    runs a nop there and applies the branch for the home address."""
    plan = X86_64.analyze(h(code), V)
    assert plan.step_code(V, FAR_SLOT) == b"\x90".ljust(32, b"\xcc")
    r = make_regs(rsp=SP, **regs_in)
    step(X86_64, code, V, FAR_SLOT, r, falls_through(1))
    assert r.rip == rip_after
    for k, v in extra.items():
        assert getattr(r, k) == v


def test_push_and_ret_fail_without_touching_registers():
    for code in ("55", "9c", "c3", "ffd0", "e800000000"):
        plan = X86_64.analyze(h(code), V)
        r = make_regs(rip=V, rsp=SP, rax=0x5000)
        assert plan.emulate(r, FakeMemory()) is False
        assert vars(r) == vars(make_regs(rip=V, rsp=SP, rax=0x5000))


def test_ret_and_indirect_refuse_to_emulate_a_non_canonical_target():
    mem = stack(SP)
    mem.write(SP, struct.pack("<Q", 1 << 63))
    assert X86_64.analyze(h("c3"), V).emulate(make_regs(rip=V, rsp=SP), mem) is False
    assert X86_64.analyze(h("ffe0"), V).emulate(make_regs(rip=V, rsp=SP, rax=1 << 48), mem) is False


def test_ret_and_indirect_emulate_to_a_canonical_high_half_target():
    """0xffff8... is canonical: loading it raises no #GP (a fetch there
    faults at the target, as it would untraced)."""
    high = 0xffff800000001000
    mem = stack(SP)
    mem.write(SP, struct.pack("<Q", high))
    r = make_regs(rip=V, rsp=SP)
    assert X86_64.analyze(h("c3"), V).emulate(r, mem) is True and r.rip == high
    r = make_regs(rip=V, rsp=SP, rax=high)
    assert X86_64.analyze(h("ffe0"), V).emulate(r, mem) is True and r.rip == high
    addr = 0x00007ffffffff000
    assert X86_64.analyze(h("e800100000"), addr).boost_code(addr, addr - 0x1000) is None


def test_indirect_register_call_step_path():
    r = make_regs(rsp=SP, rax=0x5000)

    def call_rax(regs, mem):
        regs.rsp -= 8
        mem.write(regs.rsp, struct.pack("<Q", FAR_SLOT + 2))
        regs.rip = regs.rax
    _, mem = step(X86_64, "ffd0", V, FAR_SLOT, r, call_rax)
    assert (r.rip, mem.word(SP - 8, 8)) == (0x5000, V + 2)


def test_i386_copies():
    """57-59, 62-63: no rip-relative rewrite in 32-bit mode; call fix is 4 bytes."""
    for code in ("8b0500100000", "40", "60", "06", "5b"):
        plan = I386.analyze(h(code), V32)
        assert plan.strategy in ("boost", "step")
        assert plan.step_code(V32, SLOT32)[:len(h(code))] == h(code)
    r = make_regs(rsp=SP32, rsi=7)

    def call_mem(regs, mem):
        regs.rsp -= 4
        mem.write(regs.rsp, struct.pack("<I", SLOT32 + 6))
        regs.rip = 0x8000
    plan, mem = step(I386, "ff1500100000", V32, SLOT32, r, call_mem)
    assert (r.rip, r.rsi, mem.word(SP32 - 4, 4), mem.word(SP32, 4)) == (0x8000, 7, V32 + 6, 0)
    r = make_regs(rsp=SP32)
    step(I386, "ff2500100000", V32, SLOT32, r, lambda regs, mem: setattr(regs, "rip", 0x9000))
    assert r.rip == 0x9000
    r = make_regs(rsp=SP32)
    step(I386, "5b", 0xfffffff0, 0x10, r, falls_through(1))
    assert r.rip == 0xfffffff1


REFUSED64 = ["66e800000000", "66e900000000", "660f8400000000", "66c3", "66ffd0",
             "cc", "cd80", "0f05", "0f0b", "f4", "fa", "fb", "f1", "cf", "48cf", "ec", "6c", "e460",
             "8ed0", "c7f800000000", "0f01d0", "0f01f9", "0f00c0", "ce", "60", "06", "d50a",
             "17", "cb", "48cb", "ca0800", "ff1c24", "ff2c24", "0f34", "0f07", "0f30", "0f20c0",
             "c6f800", "8fe87890c0", "0fb9c0", "0fffc0", "660f388200"]
REFUSED32 = ["17", "1f", "07", "cd80", "0f34", "9a000000002300", "ea000000002300",
             "66e8000000", "66c3", "6667e3fe", "ce", "8ed0", "ff18", "ff28"]


@pytest.mark.parametrize("arch,code", [(X86_64, c) for c in REFUSED64] + [(I386, c) for c in REFUSED32],
                         ids=[f"64-{c}" for c in REFUSED64] + [f"32-{c}" for c in REFUSED32])
def test_refused(arch, code):
    """16, 49-52, 54, 64, 65: refused with a reason a user can read."""
    with pytest.raises(UnsupportedInstruction) as exc:
        arch.analyze(h(code), V32)
    assert len(exc.value.reason) > 10 and exc.value.addr == V32
    assert "cannot probe instruction" in str(exc.value)


@pytest.mark.parametrize("code", ["3effe0", "f00fc10f", "2e488b00", "36488b00", "26488b00",
                                  "f0480fb10d00100000", "f2e900000000"])
def test_not_refused(code):
    """notrack, ignored segment prefixes, lock read-modify-write, bnd jmp."""
    X86_64.analyze(h(code), V)


def test_i386_bytes_are_not_rex():
    """62: 0x40-0x4f are inc/dec in 32-bit mode."""
    plan = I386.analyze(h("4190"), V32)
    assert plan.length == 1 and plan.text == "inc ecx"
    assert I386.analyze(h("488b0500100000"), V32).length == 1


def test_decode_yields_instructions():
    insns = list(X86_64.decode(h("554889e5c3"), 0x1000))
    assert [(i.addr, i.length, i.text) for i in insns] == [
        (0x1000, 1, "push rbp"), (0x1001, 3, "mov rbp, rsp"), (0x1004, 1, "ret")]



@pytest.mark.parametrize("arch, sp, red_zone", [
    (X86_64, 0x7fff_ffff_e00c, 128),
    (X86_64, 0x7fff_ffff_e000, 128),
    (I386, 0xffff_d00c, 0),
    (I386, 0xffff_d000, 0),
])
def test_an_injected_call_starts_as_a_call_would(arch, sp, red_zone):
    """The return address goes below the red zone (x86_64's leaf functions
    keep data in the 128 bytes under rsp) and the stack is aligned as at a
    call's first instruction: sp + word a multiple of 16.  DF and TF are
    cleared, and orig_rax -1 keeps the kernel from restarting an interrupted
    system call at the new ip."""
    word = arch.word_size
    mem = FakeMemory((sp - 4096, sp + 4096))
    regs = make_regs(rsp=sp, rip=0x1234, eflags=0x202 | 0x400 | 0x100, orig_rax=3)
    arch.set_call(regs, mem, 0x5000, 0x6000)
    assert regs.rip == 0x5000 and regs.orig_rax == (1 << 64) - 1
    assert (regs.rsp + word) % 16 == 0 and regs.rsp + word <= sp - red_zone
    assert sp - red_zone - regs.rsp - word < 16
    assert mem.word(regs.rsp, word) == 0x6000
    assert regs.eflags == 0x202
