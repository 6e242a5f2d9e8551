"""Relocating whole instructions for inline probes.

An inline probe moves the first instructions of a site into a trampoline
that runs them at another address and jumps back.  Unlike a boosted copy
(one instruction, always followed by a jump home), a relocated block may
hold several instructions, and branches: each instruction is rewritten so
it does at ``new_addr`` what it did at ``addr``:

* rip-relative operands keep their target: the disp32 is adjusted by the
  distance moved (refused when it no longer fits);
* relative jumps, conditional jumps and loop/jrcxz are re-encoded with a
  rel32 to the same target (an absolute indirect jump past a 32-bit reach);
* a call that ends the block becomes "push the original return address,
  jump": the callee returns straight to the original code, and code that
  reads its own return address (i386 ``__x86.get_pc_thunk``) sees the
  address it was built for; a call inside the block keeps returning into
  the copy, which then runs the rest (inline probes refuse such a block,
  as a thread already in the callee when the patch goes in would return
  into the patch: ``call_returns`` finds them);
* everything the probe analysis refuses is refused here too, and any other
  relative branch (xbegin) because its target moves with it.
"""

from __future__ import annotations

import struct

from capstone import x86 as cs

from .base import UnsupportedInstruction
from .x86_insn import MAP_0F, ONE_BYTE, scan
from .x86_plans import encode_jump
from .x86_refuse import refusal

_S32 = range(-(1 << 31), 1 << 31)


def relocate(x86, code: bytes, addr: int, new_addr: int) -> bytes:
    """``code`` (whole instructions from ``addr``) rewritten to run at
    ``new_addr``; raises UnsupportedInstruction naming the instruction."""
    out = bytearray()
    pos, end = 0, addr + len(code)
    while pos < len(code):
        at, new_at = addr + pos, new_addr + len(out)
        chunk = code[pos:pos + x86.max_insn_len]
        ins = next(x86._cs.disasm(chunk, at, 1), None)
        enc = scan(chunk, x86.bits)
        text = f"{ins.mnemonic} {ins.op_str}".strip() if ins is not None else chunk.hex(" ")
        if ins is None or enc is None or pos + ins.size > len(code):
            raise UnsupportedInstruction("the bytes end inside an instruction", text, at)
        reason = refusal(enc, x86.bits)
        if reason is not None:
            raise UnsupportedInstruction(reason, text, at)
        insn = code[pos:pos + ins.size]
        out += _relocate_one(x86, ins, enc, insn, at, new_at, at + ins.size == end, text)
        pos += ins.size
    return bytes(out)


def _relocate_one(x86, ins, enc, insn, at, new_at, last, text) -> bytes:
    mode, n = x86._mode, len(insn)
    # Branches are legacy encodings only: a VEX or EVEX instruction of map
    # 0F shares its opcode bytes with none of them.
    legacy = enc.kind == "legacy"
    op = enc.op if legacy else None
    one, two = legacy and enc.map == ONE_BYTE, legacy and enc.map == MAP_0F
    if one and op in (0xeb, 0xe9):
        return encode_jump(mode, new_at, _target(insn, at, op == 0xe9))
    if (one and 0x70 <= op <= 0x7f) or (two and 0x80 <= op <= 0x8f):
        return _cond_jump(mode, new_at, op & 0xf, _target(insn, at, two))
    if one and op == 0xe8:
        target = _target(insn, at, True)
        if last:
            push = _push(x86, at + n)
            return push + encode_jump(mode, new_at + len(push), target)
        rel = (target - (new_at + 5)) if x86.bits == 64 else (target - (new_at + 5)) & mode.mask
        if x86.bits == 64 and rel not in _S32:
            raise UnsupportedInstruction("the call's target is out of rel32 reach of the trampoline",
                                         text, at)
        return b"\xe8" + struct.pack("<i" if x86.bits == 64 else "<I", rel)
    if one and 0xe0 <= op <= 0xe3:
        # loop/jrcxz have only a rel8 form: branch over a jump that skips
        # a jump to the target
        head = insn[:-1]
        far = encode_jump(mode, new_at + len(head) + 3, _target(insn, at, False))
        return head + b"\x02" + bytes((0xeb, len(far))) + far
    if ins.group(cs.X86_GRP_BRANCH_RELATIVE):
        raise UnsupportedInstruction("a relative branch whose target cannot be re-encoded", text, at)
    if x86.bits == 64 and _rip_relative(ins):
        off = ins.disp_offset
        if off <= 0 or off + 4 > n:
            raise UnsupportedInstruction("unexpected rip-relative encoding", text, at)
        disp = struct.unpack_from("<i", insn, off)[0] + at - new_at
        if disp not in _S32:
            raise UnsupportedInstruction(
                "its rip-relative operand is out of reach of the trampoline", text, at)
        return insn[:off] + struct.pack("<i", disp) + insn[off + 4:]
    return insn


def _target(insn: bytes, at: int, wide: bool) -> int:
    rel = int.from_bytes(insn[-4:] if wide else insn[-1:], "little", signed=True)
    return at + len(insn) + rel


def _cond_jump(mode, new_at: int, cc: int, target: int) -> bytes:
    rel = target - (new_at + 6)
    if mode.bits == 32:
        return bytes((0x0f, 0x80 | cc)) + struct.pack("<I", rel & mode.mask)
    if rel in _S32:
        return bytes((0x0f, 0x80 | cc)) + struct.pack("<i", rel)
    far = encode_jump(mode, new_at + 2, target)
    return bytes((0x70 | (cc ^ 1), len(far))) + far


def _push(x86, value: int) -> bytes:
    """Push a word-sized immediate without touching flags."""
    if x86.bits == 32:
        return b"\x68" + struct.pack("<I", value)
    return (b"\x48\x8d\x64\x24\xf8"                                # lea -8(%rsp),%rsp
            + b"\xc7\x04\x24" + struct.pack("<I", value & 0xffffffff)  # movl $lo,(%rsp)
            + b"\xc7\x44\x24\x04" + struct.pack("<I", value >> 32))    # movl $hi,4(%rsp)


def _rip_relative(ins) -> bool:
    return any(op.type == cs.X86_OP_MEM and op.mem.base == cs.X86_REG_RIP for op in ins.operands)


def branch_targets(x86, code: bytes, addr: int) -> set:
    """Targets of the direct branches and calls in ``code`` (a function
    from ``addr``), decoded linearly; decoding stops at the first byte that
    is not an instruction."""
    out = set()
    for ins in x86._cs.disasm(code, addr):
        if ins.group(cs.X86_GRP_BRANCH_RELATIVE) or ins.group(cs.X86_GRP_JUMP) and \
                ins.operands and ins.operands[0].type == cs.X86_OP_IMM:
            for op in ins.operands:
                if op.type == cs.X86_OP_IMM:
                    out.add(op.imm & x86._mode.mask)
    return out


def call_returns(x86, code: bytes, addr: int) -> set:
    """Return addresses of the calls in ``code``, direct or indirect."""
    return {(ins.address + ins.size) & x86._mode.mask
            for ins in x86._cs.disasm(code, addr) if ins.group(cs.X86_GRP_CALL)}
