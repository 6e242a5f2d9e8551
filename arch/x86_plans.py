"""x86 plans: what happens to the displaced instruction on each probe hit.

Everything is decided by the analyzers; these methods run on every hit and
only do precomputed arithmetic on registers.  Emulation takes the probe
address from ``ip``: the tracer has put ip back to the probe address before
it calls ``emulate``, which keeps a plan independent of where its code is
mapped.  Every plan also carries a step path (the contract's fallback): a
plain copy with ``ip += V - S`` unless a subclass says otherwise.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Optional

from .base import XolPlan

_NOP = b"\x90"
_INT3 = b"\xcc"
_TF = 1 << 8
_RF = 1 << 16
_VM = 1 << 17
_S32_MIN, _S32_END = -(1 << 31), 1 << 31


class Mode(NamedTuple):
    """Width facts shared by every plan of one mode."""

    bits: int
    mask: int
    word: struct.Struct
    slot_size: int


def encode_jump(mode: Mode, at: int, target: int) -> bytes:
    """``jmp target`` placed at ``at``: e9 rel32 when it reaches, else (64-bit
    only) ``jmp *0(%rip)`` followed by the absolute target."""
    rel = (target - (at + 5)) & mode.mask
    if mode.bits == 32:
        return b"\xe9" + rel.to_bytes(4, "little")
    if rel >> 63:
        rel -= 1 << 64
    if _S32_MIN <= rel < _S32_END:
        return b"\xe9" + rel.to_bytes(4, "little", signed=True)
    return b"\xff\x25\x00\x00\x00\x00" + (target & mode.mask).to_bytes(8, "little")


def _canonical(mode: Mode, value: int) -> bool:
    """Whether ``value`` (masked to the mode) can be loaded into ip without
    a #GP: bits 63..47 all equal.  A far-off target is left to a real step
    so the fault is the hardware's."""
    return mode.bits == 32 or value >> 47 in (0, 0x1FFFF)


def _push_return(mode: Mode, ret: int) -> bytes:
    """A call's push of its return address, for a boosted copy: ``push
    $imm32`` (on x86_64 the low half sign-extended, then a mov into the
    word it wrote sets the high half).  A push that faults does so at its
    start with nothing done."""
    code = b"\x68" + (ret & 0xFFFFFFFF).to_bytes(4, "little")
    if mode.bits == 64:
        code += b"\xc7\x44\x24\x04" + (ret >> 32).to_bytes(4, "little")
    return code


class X86Plan(XolPlan):
    """Common state and the plain-copy step path."""

    strategy = "step"

    def __init__(self, mode: Mode, code: bytes, text: str, step: Optional[bytes] = None):
        self.length = len(code)
        self.text = text
        self._mode = mode
        self._mask = mode.mask
        #: the stack word's size and packer, read on every emulated push
        self._word_size = mode.word.size
        self._pack_word = mode.word.pack
        self._step = (code if step is None else step).ljust(mode.slot_size, _INT3)

    def __repr__(self):
        return f"<{type(self).__name__} {self.strategy} '{self.text}' len={self.length}>"

    def step_code(self, addr, slot):
        return self._step

    def pre_xol(self, regs, addr, slot):
        regs.rip = slot
        return None

    def post_xol(self, regs, mem, addr, slot, token):
        regs.rip = (regs.rip + addr - slot) & self._mask
        return True

    def abort_xol(self, regs, addr, slot, token):
        regs.rip = addr

    def _push(self, regs, mem, value) -> bool:
        """Store ``value`` as the instruction's own push would, through
        ``mem``; False, regs untouched, where it refuses (a guard page, a
        stack not grown that far yet: the step path's real push then
        faults or grows it)."""
        mask = self._mask
        sp = (regs.rsp - self._word_size) & mask
        try:
            mem.write(sp, self._pack_word(value & mask))
        except OSError:
            return False
        regs.rsp = sp
        return True


class NopPlan(X86Plan):
    """Architectural no-ops (the NOP family, endbr): skip them."""

    strategy = "emulate"

    def emulate(self, regs, mem):
        regs.rip = (regs.rip + self.length) & self._mask
        return True

    def next_ip(self, addr):
        return (addr + self.length) & self._mask


class PushPlan(X86Plan):
    """push reg / pushf.  ``push %rsp`` stores the old value, which falls
    out of reading the register before moving sp.  pushf stores the flags
    without TF/RF/VM: a stepped pushf would leak the tracer's TF.  Boosted,
    the copy pushes for itself (no tracer TF is set when it runs), and a
    push that hits a guard page faults as the program's own would.
    ``word`` is the pushed word's packer when it is not the stack word's
    (pushfw, a 0x66-prefixed pushf, pushes 2 bytes)."""

    strategy = "emulate"
    boostable = True

    def __init__(self, mode, code, text, field: str, value_mask: int,
                 word: Optional[struct.Struct] = None):
        super().__init__(mode, code, text)
        self._field = field
        self._word = word or mode.word
        self._word_size, self._pack_word = self._word.size, self._word.pack
        self._value_mask = value_mask & mode.mask & ((1 << 8 * self._word.size) - 1)
        self._clear_tf = value_mask != mode.mask

    def emulate(self, regs, mem):
        value = getattr(regs, self._field) & self._value_mask
        if not self._push(regs, mem, value):
            return False
        regs.rip = (regs.rip + self.length) & self._mask
        return True

    def boost_code(self, addr, slot):
        code = self._step[:self.length] + encode_jump(self._mode, slot + self.length,
                                                      addr + self.length)
        return code.ljust(self._mode.slot_size, _INT3)

    def post_xol(self, regs, mem, addr, slot, token):
        if self._clear_tf:
            sp = regs.rsp & self._mask
            word = self._word
            value = word.unpack(mem.read(sp, word.size))[0]
            mem.write(sp, word.pack(value & self._value_mask))
        return super().post_xol(regs, mem, addr, slot, token)


class _BranchPlan(X86Plan):
    """Relative branches.  Run from a slot, ``slot + L + rel`` may be
    non-canonical (the slot sits far from the code), so even the step path
    never executes the branch: it steps a nop and applies the branch in
    ``post_xol`` from the home address."""

    strategy = "emulate"

    def __init__(self, mode, code, text, offset: int):
        super().__init__(mode, code, text, step=_NOP)
        self._offset = offset

    def emulate(self, regs, mem):
        self._go(regs, regs.rip & self._mask)
        return True

    def post_xol(self, regs, mem, addr, slot, token):
        self._go(regs, addr)
        return True

    def _go(self, regs, ip):
        raise NotImplementedError

    def _boost_target(self, addr) -> Optional[int]:
        """Where a boosted copy jumps to, or None when it is non-canonical:
        a slot's jump would fault there, not at the branch's own address."""
        target = (addr + self._offset) & self._mask
        return target if _canonical(self._mode, target) else None

    def _boost_branch(self, short: bytes, addr, slot):
        """A conditional branch boosted: ``short`` (its prefixes and short
        opcode) jumps over a jmp back to the next instruction, to a jmp to
        its target, each rel32 where it reaches, else absolute:

            short L1; jmp next; L1: jmp target

        The branch itself runs (it tests the flags or counts rcx down), so a
        hit writes ip alone."""
        mode = self._mode
        target = self._boost_target(addr)
        if target is None:
            return None
        after = slot + len(short) + 1
        back = encode_jump(mode, after, (addr + self.length) & self._mask)
        code = short + bytes([len(back)]) + back + encode_jump(mode, after + len(back), target)
        if len(code) > mode.slot_size:
            return None
        return code.ljust(mode.slot_size, _INT3)


class JumpPlan(_BranchPlan):
    """jmp rel8/rel32."""

    def _go(self, regs, ip):
        regs.rip = (ip + self._offset) & self._mask

    def next_ip(self, addr):
        return (addr + self._offset) & self._mask


# taken-predicates of the even condition codes (70, 72, ... 7e); the odd
# code right after each is its negation
_OF, _CF, _ZF, _SF, _PF = 1 << 11, 1, 1 << 6, 1 << 7, 1 << 2
_CONDITIONS = (
    lambda f: f & _OF,                                     # o
    lambda f: f & _CF,                                     # b
    lambda f: f & _ZF,                                     # e
    lambda f: f & (_CF | _ZF),                             # be
    lambda f: f & _SF,                                     # s
    lambda f: f & _PF,                                     # p
    lambda f: bool(f & _SF) != bool(f & _OF),              # l
    lambda f: f & _ZF or bool(f & _SF) != bool(f & _OF),   # le
)


class CondJumpPlan(_BranchPlan):
    """jcc rel8/rel32, all sixteen conditions; boosted as the short form
    (its prefixes, branch hints or bnd, do nothing a slot needs)."""

    boostable = True

    def __init__(self, mode, code, text, offset, cc: int):
        super().__init__(mode, code, text, offset)
        self._test = _CONDITIONS[cc >> 1]
        self._negate = bool(cc & 1)
        self._short = bytes([0x70 | cc])

    def boost_code(self, addr, slot):
        return self._boost_branch(self._short, addr, slot)

    def _go(self, regs, ip):
        taken = bool(self._test(regs.eflags)) != self._negate
        regs.rip = (ip + (self._offset if taken else self.length)) & self._mask


class LoopPlan(_BranchPlan):
    """loop/loope/loopne/jrcxz.  The counter is rcx, ecx or cx by address
    size; loops decrement it first (flags untouched) and then test the new
    value.  ``keep`` holds the bits of rcx a 16-bit counter leaves alone (a
    32-bit counter in 64-bit mode zero-extends like any 32-bit write)."""

    boostable = True

    def __init__(self, mode, code, text, offset, kind: str, counter_mask: int, keep: int):
        super().__init__(mode, code, text, offset)
        self._kind = kind
        self._cmask = counter_mask
        self._keep = keep
        #: boosted with its own prefixes: 0x67 picks the counter's size
        self._short = code[:-1]

    def boost_code(self, addr, slot):
        return self._boost_branch(self._short, addr, slot)

    def _go(self, regs, ip):
        rcx = regs.rcx & self._mask
        kind = self._kind
        if kind == "jrcxz":
            taken = not rcx & self._cmask
        else:
            count = (rcx - 1) & self._cmask
            regs.rcx = (rcx & self._keep) | count
            taken = count != 0
            if kind == "loope":
                taken = taken and bool(regs.eflags & _ZF)
            elif kind == "loopne":
                taken = taken and not regs.eflags & _ZF
        regs.rip = (ip + (self._offset if taken else self.length)) & self._mask


class CallPlan(_BranchPlan):
    """call rel32.  When the push faults, the step path runs ``call +0`` in
    the slot, so the hardware pushes (growing the stack or faulting for
    real), and post_xol corrects the pushed word and the target.

    Boosted, the slot pushes the return address itself and jumps to the
    target: ``push $imm32`` first (on x86_64 it pushes the low half
    sign-extended, then a mov into the word it wrote sets the high half),
    so a push that faults does so at the slot's start with nothing done,
    which the tracer reports at the call's own address."""

    boostable = True

    def __init__(self, mode, code, text, offset):
        super().__init__(mode, code, text, offset)
        self._step = b"\xe8\x00\x00\x00\x00".ljust(mode.slot_size, _INT3)

    def boost_code(self, addr, slot):
        target = self._boost_target(addr)
        if target is None:
            return None
        code = _push_return(self._mode, (addr + self.length) & self._mask)
        code += encode_jump(self._mode, slot + len(code), target)
        return code.ljust(self._mode.slot_size, _INT3)

    def emulate(self, regs, mem):
        ip = regs.rip & self._mask
        if not self._push(regs, mem, ip + self.length):
            return False
        regs.rip = (ip + self._offset) & self._mask
        return True

    def post_xol(self, regs, mem, addr, slot, token):
        word = self._mode.word
        mem.write(regs.rsp & self._mask, word.pack((addr + self.length) & self._mask))
        regs.rip = (addr + self._offset) & self._mask
        return True


class RetPlan(X86Plan):
    """ret / ret imm16 (any rep/bnd prefix).  A stack that cannot be read
    leaves it to the stepped copy, which sets its own absolute ip.

    Boosted, the copy alone is the slot: the ip it leaves is absolute and it
    never falls through, so it needs no jump back and no register written
    but ip.  A fault (a stack it cannot read, a non-canonical target) is
    raised by the copy with nothing done, and reported at the ret's own
    address; on a CET shadow stack it pops the shadow copy as the program's
    own ret does, which an emulation would not."""

    strategy = "emulate"
    boostable = True

    def __init__(self, mode, code, text, pop: int):
        super().__init__(mode, code, text)
        self._pop = mode.word.size + pop

    def boost_code(self, addr, slot):
        return self._step

    def emulate(self, regs, mem):
        sp = regs.rsp & self._mask
        word = self._mode.word
        try:
            target = word.unpack(mem.read(sp, word.size))[0]
        except OSError:
            return False
        if not _canonical(self._mode, target):
            return False
        regs.rip = target
        regs.rsp = (sp + self._pop) & self._mask
        return True

    def post_xol(self, regs, mem, addr, slot, token):
        return True


class IndirectPlan(X86Plan):
    """call/jmp through a register.  The step path runs the copy as is: the
    target is absolute; a call then has its pushed word corrected.  A jmp is
    boosted as its copy alone, like a ret.  A call is boosted as the push
    of its return address (``_push_return``) and a jmp through the same
    register, except through sp, which the push moves first.  That jmp
    faults (#GP) on a non-canonical target with the push done, where the
    call would have pushed nothing: ``undo_boost`` takes the push back."""

    strategy = "emulate"

    def __init__(self, mode, code, text, field: str, is_call: bool):
        super().__init__(mode, code, text)
        self._field = field
        self._is_call = is_call
        self.boostable = not is_call or field != "rsp"
        if is_call and self.boostable and mode.bits == 64:
            self.boost_fault_at = len(_push_return(mode, 0))

    def boost_code(self, addr, slot):
        if not self._is_call:
            return self._step
        if not self.boostable:
            return None
        # The same prefixes, REX and opcode; ModRM's reg field 2 (call)
        # becomes 4 (jmp).  A register operand makes ModRM the last byte.
        code = self._step[:self.length]
        jmp = code[:-1] + bytes([code[-1] & 0xC7 | 4 << 3])
        return (_push_return(self._mode, (addr + self.length) & self._mask) + jmp).ljust(
            self._mode.slot_size, _INT3)

    def undo_boost(self, regs):
        regs.rsp = (regs.rsp + self._word_size) & self._mask

    def emulate(self, regs, mem):
        target = getattr(regs, self._field) & self._mask
        if not _canonical(self._mode, target):
            return False
        if self._is_call and not self._push(regs, mem, regs.rip + self.length):
            return False
        regs.rip = target
        return True

    def post_xol(self, regs, mem, addr, slot, token):
        if self._is_call:
            word = self._mode.word
            mem.write(regs.rsp & self._mask, word.pack((addr + self.length) & self._mask))
        return True


# how CopyPlan.post_xol repairs ip
FIX_IP, FIX_NONE, FIX_CALL = "ip", "none", "call"


class CopyPlan(X86Plan):
    """Run a copy in a slot: stepped, or boosted (copy + jump back).

    ``fix`` is FIX_IP (fall-through: ip += V - S), FIX_NONE (the copy set
    an absolute ip: indirect jmp) or FIX_CALL (an indirect call: the pushed
    word becomes V+L).  A rip-relative copy is stepped with its operand moved
    to ``scratch`` (loaded with V+L, restored after), and boosted with its
    displacement re-encoded for the slot instead, so a boosted slot holds no
    thread state.  ``rep`` string copies leave ip at the slot after each
    iteration; post_xol then asks for another step.
    """

    def __init__(self, mode, code, text, *, step: bytes, fix: str, scratch: Optional[str],
                 disp_at: Optional[int], boost: bool, rep: bool):
        super().__init__(mode, code, text, step=step)
        self.strategy = "boost" if boost else "step"
        self.boostable = boost
        self._code = code
        self._fix = fix
        self._scratch = scratch
        self._disp_at = disp_at
        self._disp = (int.from_bytes(code[disp_at:disp_at + 4], "little", signed=True)
                      if disp_at is not None else 0)
        self._rep = rep
        self.plain_step = fix == FIX_IP and scratch is None and not rep

    def boost_code(self, addr, slot):
        if not self.boostable:
            return None
        code = self._code
        at = self._disp_at
        if at is not None:
            disp = self._disp + addr - slot
            if not _S32_MIN <= disp < _S32_END:
                return None
            code = code[:at] + disp.to_bytes(4, "little", signed=True) + code[at + 4:]
        if self._fix == FIX_IP:
            code += encode_jump(self._mode, slot + self.length, addr + self.length)
        return code.ljust(self._mode.slot_size, _INT3)

    def pre_xol(self, regs, addr, slot):
        regs.rip = slot
        scratch = self._scratch
        if scratch is None:
            return None
        saved = getattr(regs, scratch)
        setattr(regs, scratch, (addr + self.length) & self._mask)
        return saved

    def post_xol(self, regs, mem, addr, slot, token):
        if self._rep and regs.rip & self._mask == slot:
            return False
        if self._scratch is not None:
            setattr(regs, self._scratch, token)
        fix = self._fix
        if fix == FIX_IP:
            regs.rip = (regs.rip + addr - slot) & self._mask
        elif fix == FIX_CALL:
            word = self._mode.word
            mem.write(regs.rsp & self._mask, word.pack((addr + self.length) & self._mask))
        return True

    def abort_xol(self, regs, addr, slot, token):
        regs.rip = addr
        if self._scratch is not None:
            setattr(regs, self._scratch, token)


def value_mask_without_trap_flags(mask: int) -> int:
    """What a pushf image keeps of the flags register."""
    return mask & ~(_TF | _RF | _VM)
