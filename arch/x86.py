"""Shared x86 instruction analysis, parametrized by mode (64 or 32 bit).

``analyze`` refuses what cannot run away from home (``x86_refuse``), then
asks a chain of analyzers, cheapest plan first; each returns a plan or None
for "not mine", and the last one, a copy in a slot, takes everything left.
"""

from __future__ import annotations

import struct

import capstone
from capstone import x86 as cs

from .base import Arch, Insn, UnsupportedInstruction
from .x86_inline import inline_handler
from .x86_insn import MAP_0F, MAP_0F38, MAP_0F3A, ONE_BYTE, Encoding, scan
from .x86_plans import (FIX_CALL, FIX_IP, FIX_NONE, CallPlan, CondJumpPlan, CopyPlan,
                        IndirectPlan, JumpPlan, LoopPlan, Mode, NopPlan, PushPlan, RetPlan,
                        encode_jump, value_mask_without_trap_flags)
from .x86_refuse import refusal
from .x86_reloc import branch_targets, call_returns, relocate

#: user_regs_struct fields by x86 register number (REX.B/R extend to 8-15)
GPR_FIELDS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")

#: scratch registers for a rip-relative operand, in order of preference,
#: as (register number, field, names capstone may report for it).  Never
#: rax/rcx/rdx/rsp: too many instructions use them implicitly (div, shifts
#: by %cl, cmpxchg, mulx, pcmpestri...); si comes before bx for cmpxchg8b.
SCRATCH = (
    (6, "rsi", frozenset(("rsi", "esi", "si", "sil"))),
    (7, "rdi", frozenset(("rdi", "edi", "di", "dil"))),
    (3, "rbx", frozenset(("rbx", "ebx", "bx", "bl", "bh"))),
)

_WORD16 = struct.Struct("<H")
_DF = 0x400  # string instructions count down while set; the ABI wants it clear
_LOOPS = {0xe0: "loopne", 0xe1: "loope", 0xe2: "loop", 0xe3: "jrcxz"}
_STRING_OPS = frozenset((0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf))


def _opcode_set(spec: str) -> frozenset:
    """Opcodes from a list like "02 20-23 31"."""
    out = set()
    for item in spec.split():
        lo, _, hi = item.partition("-")
        out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return frozenset(out)


# kprobes ``can_boost``: one-byte opcodes that never boost (branches, calls,
# traps, x87 whose FPU ip would record the slot, group 4/5 with group 5's
# calls, prefixes-as-opcodes) ...  Not group 3 (f6, f7), which
# kprobes lists whole: test, not, neg, mul, imul, div and idiv read and
# write only their operand, rax, rdx and the flags, like an add; div's #DE,
# like a memory operand's fault, comes at the copy's start with nothing
# done, and is reported as the program's own fault at home.
_NO_BOOST_1 = _opcode_set("62 70-7f 9a cc-ce d6 d8-df e0-e3 e8 e9 eb f0-f4 fe ff")
# ... and its ``twobyte_is_boostable`` bitmap, as the set of 0f xx that
# boost.  That bitmap dates from when most SSE opcodes were undefined and
# marks them unboostable; they are plain data operations (like the 0f 38 and
# 0f 3a maps and VEX/EVEX), so the SSE rows are added: a function entry's
# ``movsd 0x..(%rip),%xmm0`` then boosts instead of taking two stops.  So
# are punpck[lh]qdq (6c, 6d), the prefetch hints (0d, 18) and the bit tests
# with an immediate (ba), operations on their operand like their neighbours.
_BOOST_0F = _opcode_set(
    "02 03 06 08 09 0d 18 20-23 31 40-4f 60-6d 6e 6f 74-77 7e 7f 90-9f ba"
    " a0 a1 a3-a5 a8 a9 ab-ad af b0-b7 bb-bf c0 c1 c8-cf"
    " d1-d3 d5 d8 d9 db-dd df e1 e2 e5 e8 e9 eb-ed ef f1-f3 f5 f8-fa fc-fe"
    " 10-17 28-2f 50-5f 70-73 7c 7d c2-c6 d0-fe")
_SHIFT_GROUPS = frozenset((0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3))


def _boostable(enc: Encoding, op: int) -> bool:
    """Whether a copy followed by a jump back behaves like the original
    (kprobes ``can_boost``, with the SIMD maps added).  popf does not boost:
    a popped TF would trap inside the slot."""
    if 0x67 in enc.prefixes or 0x2e in enc.prefixes:
        return False
    if enc.kind != "legacy" or enc.map in (MAP_0F38, MAP_0F3A):
        return True
    if enc.map == MAP_0F:
        return op in _BOOST_0F
    if op == 0xff:
        # inc and dec (0, 1), jmp r/m (4), and push r/m (6): its memory
        # operand is read, and any fault raised, before rsp moves, at the
        # copy's start.
        return enc.reg in (0, 1, 4, 6)
    if op == 0xfe:
        return enc.reg in (0, 1)  # inc and dec of a byte; the rest is undefined
    if op in _SHIFT_GROUPS:
        return enc.reg != 6
    return op not in _NO_BOOST_1 and op != 0x9d


class X86(Arch):
    """x86 in one mode; subclasses add register roles and the ABI."""

    step_flag = 0x100  # TF
    #: bytes below sp a leaf function may use without moving sp
    red_zone = 0

    def __init__(self):
        self._cs = capstone.Cs(capstone.CS_ARCH_X86,
                               capstone.CS_MODE_64 if self.bits == 64 else capstone.CS_MODE_32)
        self._cs.detail = True
        mask = (1 << self.bits) - 1
        self._mode = Mode(self.bits, mask, struct.Struct("<Q" if self.bits == 64 else "<I"),
                          self.xol_slot_size)
        self._analyzers = (self._nop, self._push, self._branch, self._indirect, self._copy)

    def set_flags(self, regs, value):
        regs.eflags = value & self._mode.mask

    def set_call(self, regs, mem, func, return_to):
        sp = ((self.sp(regs) - self.red_zone) & ~15) - self.word_size
        self.write_word(mem, sp, return_to)
        self.set_sp(regs, sp)
        self.set_ip(regs, func)
        regs.eflags &= ~(_DF | self.step_flag)
        regs.orig_rax = (1 << 64) - 1

    def decode(self, code, addr):
        for ins in self._cs.disasm(code, addr):
            yield Insn(ins.address, ins.size, _text(ins))

    def encode_jump(self, at, target):
        return encode_jump(self._mode, at, target)

    def in_rel32_reach(self, at, target):
        """``at`` is where the displacement counts from (the end of the
        jump or of a rip-relative instruction)."""
        if self.bits == 32:
            return True
        return -(1 << 31) <= target - at < (1 << 31)

    def relocate(self, code, addr, new_addr):
        return relocate(self, code, addr, new_addr)

    def branch_targets(self, code, addr):
        return branch_targets(self, code, addr)

    def call_returns(self, code, addr):
        return call_returns(self, code, addr)

    def inline_handler(self, kind, values):
        return inline_handler(self.bits, kind, values)

    # -- analysis ----------------------------------------------------------
    def analyze(self, code, addr):
        code = bytes(code[:self.max_insn_len])
        ins = next(self._cs.disasm(code, addr, 1), None)
        text = _text(ins) if ins is not None else code.hex(" ")
        enc = scan(code, self.bits)
        if enc is None:
            raise UnsupportedInstruction("the bytes end inside the instruction", text, addr)
        reason = refusal(enc, self.bits)
        if reason is not None:
            raise UnsupportedInstruction(reason, text, addr)
        if ins is None:
            raise UnsupportedInstruction(
                f"not a valid instruction in {self.bits}-bit mode (capstone cannot decode it)",
                text, addr)
        if enc.op_at >= ins.size:
            raise UnsupportedInstruction(
                "the decoder and the prefix scan disagree on this instruction's layout",
                text, addr)
        code = code[:ins.size]
        for analyzer in self._analyzers:
            plan = analyzer(ins, enc, code, text, addr)
            if plan is not None:
                return plan
        raise AssertionError("the copy analyzer takes every instruction")

    def _nop(self, ins, enc, code, text, addr):
        """The NOP family, strictly: ``41 90`` is xchg, ``f3 90`` pause, and
        ``89 ff`` zero-extends in 64-bit mode, so none of those."""
        if enc.kind != "legacy":
            return None
        op, pfx, rex = enc.op, set(enc.prefixes), enc.rex
        native = bool(rex & 8) if self.bits == 64 else 0x66 not in pfx
        if enc.map == ONE_BYTE:
            if op == 0x90 and not rex & 1 and pfx <= {0x66}:
                return NopPlan(self._mode, code, text)
            if op in (0x89, 0x8b) and enc.mod == 3 and not pfx and native and \
                    enc.reg | (rex & 4) << 1 == enc.rm | (rex & 1) << 3:
                return NopPlan(self._mode, code, text)
            if op == 0x8d and native and pfx <= {0x3e} and _lea_to_itself(ins):
                return NopPlan(self._mode, code, text)
        elif enc.map == MAP_0F:
            if op == 0x1f and enc.reg == 0 and not pfx & {0xf2, 0xf3} and ins.id == cs.X86_INS_NOP:
                return NopPlan(self._mode, code, text)
            if op == 0x1e and enc.modrm in (0xfa, 0xfb) and pfx == {0xf3} and not rex:
                return NopPlan(self._mode, code, text)
        return None

    def _push(self, ins, enc, code, text, addr):
        """push reg, and pushf in every form: a pushf stepped as a plain
        copy would save the tracer's TF, so none is left to the copy plan
        (pushfw, 0x66 without REX.W, pushes 2 bytes; other prefixes do
        nothing to it)."""
        if enc.kind != "legacy" or enc.map != ONE_BYTE:
            return None
        if 0x50 <= enc.op <= 0x57 and not enc.prefixes:
            field = GPR_FIELDS[(enc.op & 7) | (enc.rex & 1) << 3]
            return PushPlan(self._mode, code, text, field, self._mode.mask)
        if enc.op == 0x9c:
            word = _WORD16 if 0x66 in enc.prefixes and not enc.rex & 8 else None
            return PushPlan(self._mode, code, text, "eflags",
                            value_mask_without_trap_flags(self._mode.mask), word)
        return None

    def _branch(self, ins, enc, code, text, addr):
        """Relative branches and ret; the 0x66 forms were refused already."""
        if enc.kind != "legacy":
            return None
        op, n, mode = enc.op, len(code), self._mode
        if enc.map == ONE_BYTE:
            if op in (0xeb, 0xe9):
                return JumpPlan(mode, code, text, n + _rel(code, op == 0xe9))
            if 0x70 <= op <= 0x7f:
                return CondJumpPlan(mode, code, text, n + _rel(code, False), op & 0xf)
            if op == 0xe8:
                return CallPlan(mode, code, text, n + _rel(code, True))
            if op in (0xc3, 0xc2):
                pop = int.from_bytes(code[-2:], "little") if op == 0xc2 else 0
                return RetPlan(mode, code, text, pop)
            if op in _LOOPS:
                short = 0x67 in enc.prefixes
                cmask = (1 << (self.bits // 2 if short else self.bits)) - 1
                keep = mode.mask & ~cmask if self.bits == 32 else 0
                return LoopPlan(mode, code, text, n + _rel(code, False), _LOOPS[op], cmask, keep)
        elif enc.map == MAP_0F and 0x80 <= enc.op <= 0x8f:
            return CondJumpPlan(mode, code, text, n + _rel(code, True), op & 0xf)
        return None

    def _indirect(self, ins, enc, code, text, addr):
        """call/jmp through a register (notrack and bnd prefixes are fine)."""
        if enc.kind == "legacy" and enc.map == ONE_BYTE and enc.op == 0xff and \
                enc.mod == 3 and enc.reg in (2, 4):
            field = GPR_FIELDS[enc.rm | (enc.rex & 1) << 3]
            return IndirectPlan(self._mode, code, text, field, enc.reg == 2)
        return None

    def _copy(self, ins, enc, code, text, addr):
        op = enc.op
        fix = FIX_IP
        if enc.kind == "legacy" and enc.map == ONE_BYTE and op == 0xff:
            fix = {2: FIX_CALL, 4: FIX_NONE}.get(enc.reg, FIX_IP)
        rep = (enc.kind == "legacy" and enc.map == ONE_BYTE and op in _STRING_OPS
               and bool({0xf2, 0xf3} & set(enc.prefixes)))
        step, scratch, disp_at = code, None, None
        if self.bits == 64 and _is_rip_relative(ins):
            step, scratch, disp_at = self._rewrite(ins, enc, code, text, addr)
        return CopyPlan(self._mode, code, text, step=step, fix=fix, scratch=scratch,
                        disp_at=disp_at, boost=_boostable(enc, op), rep=rep)

    def _rewrite(self, ins, enc, code, text, addr):
        """Move a rip-relative operand to a scratch register: modrm
        ``00 reg 101`` becomes ``10 reg scratch`` with the same disp32, so
        the length (and the ip fix) stays; REX.B is cleared and VEX3/EVEX's
        inverted B/X bits are set so the scratch is a low register."""
        at = ins.modrm_offset
        # capstone's disp_size reads 2 for 66-prefixed 0f 38/0f 3a forms;
        # a rip-relative disp is always 4 bytes, right after modrm
        if at != enc.op_at + 1 or code[at] & 0xc7 != 0x05 or ins.disp_offset != at + 1:
            raise UnsupportedInstruction(
                "the decoder and the prefix scan disagree on this rip-relative operand",
                text, addr)
        used = {enc.reg}
        if enc.vvvv is not None:
            used.add(enc.vvvv & 7)
        try:
            read, written = ins.regs_access()
        except capstone.CsError:
            read, written = (), ()
        names = {ins.reg_name(r) for r in (*read, *written)}
        for number, field, aliases in SCRATCH:
            if number not in used and not names & aliases:
                break
        else:
            raise UnsupportedInstruction(
                "no scratch register (rsi, rdi, rbx) is free for the rip-relative operand",
                text, addr)
        step = bytearray(code)
        step[at] = 0x80 | (code[at] & 0x38) | number
        if enc.rex_at >= 0:
            step[enc.rex_at] &= 0xfe
        if enc.kind in ("vex3", "evex"):
            step[enc.vex_at + 1] |= 0x60
        return bytes(step), field, at + 1


def _text(ins) -> str:
    return f"{ins.mnemonic} {ins.op_str}".strip()


def _rel(code: bytes, wide: bool) -> int:
    """The branch displacement, the last bytes of a relative branch."""
    return int.from_bytes(code[-4:] if wide else code[-1:], "little", signed=True)


def _is_rip_relative(ins) -> bool:
    return any(op.type == cs.X86_OP_MEM and op.mem.base in (cs.X86_REG_RIP, cs.X86_REG_EIP)
               for op in ins.operands)


def _lea_to_itself(ins) -> bool:
    """``lea 0(%r),%r``: no index, zero displacement, base == destination."""
    if len(ins.operands) != 2:
        return False
    dst, src = ins.operands
    return (dst.type == cs.X86_OP_REG and src.type == cs.X86_OP_MEM
            and src.mem.base == dst.reg and src.mem.index == 0 and src.mem.disp == 0)
