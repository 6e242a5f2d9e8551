"""Instructions x86 refuses to probe, each with the reason a user reads.

The tables are keyed by opcode (in its map) so tests can iterate over every
entry; Linux uprobes' ``good_insns`` tables decide the same questions, but
its two-byte exclusions are unreachable as written (the 0x0f bit of the
one-byte table is set), so here each map has its own explicit table.
"""

from __future__ import annotations

from typing import Optional

from .x86_insn import MAP_0F, MAP_0F38, ONE_BYTE, Encoding

_IO = "port I/O is privileged in user space"
_SEGMENT_LOAD = ("popping a segment register is refused, as Linux uprobes does "
                 "(a segment load can mask the single-step trap)")
_INVALID_64 = "not a valid instruction in 64-bit mode"

#: one-byte opcodes refused in both modes
ONE_BYTE_REFUSED = {
    0xcc: "int3 is the breakpoint instruction: it belongs to the program or another debugger",
    0xf1: "int1 raises a debug trap that would be taken for the tracer's own",
    0xcd: ("int n enters the kernel, which resumes after the instruction: that is "
           "inside an out-of-line slot another hit may already have reused"),
    0xce: "into traps to the kernel, which resumes inside the out-of-line slot",
    0xcf: "iret reloads the code and stack segments",
    0xca: "a far return changes the code segment",
    0xcb: "a far return changes the code segment",
    0x9a: "a far call changes the code segment",
    0xea: "a far jump changes the code segment",
    0xf4: "hlt is privileged",
    0xfa: "cli is privileged",
    0xfb: "sti is privileged",
    0x17: "pop %ss delays the single-step trap past the next instruction",
    **{op: _IO for op in (0x6c, 0x6d, 0x6e, 0x6f, 0xe4, 0xe5, 0xe6, 0xe7,
                          0xec, 0xed, 0xee, 0xef)},
}

#: one-byte opcodes that exist only outside 64-bit mode
ONE_BYTE_REFUSED_64 = {
    **{op: _INVALID_64 for op in (0x06, 0x07, 0x0e, 0x16, 0x1e, 0x1f, 0x27, 0x2f,
                                  0x37, 0x3f, 0x60, 0x61, 0x82, 0xd4, 0xd6)},
    0xd5: "not a valid instruction in 64-bit mode (or an APX REX2 prefix, which is not supported)",
}

#: one-byte opcodes refused only in 32-bit mode
ONE_BYTE_REFUSED_32 = {0x07: _SEGMENT_LOAD, 0x1f: _SEGMENT_LOAD}

#: (one-byte opcode, modrm.reg) of group members refused in both modes
GROUP_REFUSED = {
    (0x8e, 2): "mov to %ss delays the single-step trap past the next instruction",
    (0xff, 3): "a far indirect call changes the code segment",
    (0xff, 5): "a far indirect jump changes the code segment",
    (0xc7, 7): ("its abort target is relative, and a single-step aborts "
                "the transaction"),
    (0xc6, 7): "transactional memory instructions are refused",
}

#: two-byte opcodes (0f xx) refused in both modes
TWO_BYTE_REFUSED = {
    0x00: "system instruction group 0f 00 (sldt, str, lldt, ltr, verr, verw)",
    0x01: ("system instruction group 0f 01 (descriptor tables, swapgs, xgetbv, "
           "rdtscp, monitor/mwait, xend/xtest) is refused as a whole"),
    0x05: ("the kernel returns to the instruction after it, inside an "
           "out-of-line slot, and may report the step late"),
    0x06: "clts is privileged",
    0x07: "sysret is privileged",
    0x08: "invd is privileged",
    0x09: "wbinvd is privileged",
    0x0b: "ud2 raises SIGILL on purpose",
    0x20: "moves from a control register are privileged",
    0x21: "moves from a debug register are privileged",
    0x22: "moves to a control register are privileged",
    0x23: "moves to a debug register are privileged",
    0x30: "wrmsr is privileged",
    0x32: "rdmsr is privileged",
    0x34: "the kernel returns to a fixed address, not after the copy",
    0x35: "sysexit is privileged",
    0x37: "getsec is privileged",
    0x78: "vmread is privileged (AMD extrq shares the opcode and is refused with it)",
    0x79: "vmwrite is privileged (AMD insertq shares the opcode and is refused with it)",
    0xaa: "rsm is privileged",
    0xb9: "ud1 raises SIGILL on purpose",
    0xff: "ud0 raises SIGILL on purpose",
}

#: three-byte opcodes (0f 38 xx) refused in both modes
THREE_BYTE_38_REFUSED = {
    0x80: "invept is privileged",
    0x81: "invvpid is privileged",
    0x82: "invpcid is privileged",
}

#: near branches, where a 0x66 prefix means rel16/ip16 on AMD and is ignored
#: on Intel: no single behaviour to emulate or relocate.  Unless REX.W is
#: there too, which takes precedence on both: ``66 66 48 e8`` is the padded
#: ``call __tls_get_addr`` of every general-dynamic TLS access in -fPIC code.
#: Not ``ret imm16`` though: capstone 5 reads a 4-byte immediate for
#: ``66 48 c2`` (7 bytes where the CPU and objdump see 5)
_NEAR_BRANCHES_1 = frozenset([*range(0x70, 0x80), 0xe0, 0xe1, 0xe2, 0xe3,
                              0xe8, 0xe9, 0xeb, 0xc2, 0xc3])
_NEAR_BRANCHES_2 = frozenset(range(0x80, 0x90))
OPSIZE_BRANCH = ("a 0x66 operand-size prefix on a near branch means 16-bit on AMD "
                 "and is ignored on Intel")


def refusal(enc: Encoding, bits: int) -> Optional[str]:
    """The reason to refuse ``enc``, or None."""
    if enc.kind == "xop":
        return "AMD XOP instructions are not supported"
    if enc.kind != "legacy":
        return None
    op = enc.op
    if enc.map == ONE_BYTE:
        reason = (ONE_BYTE_REFUSED.get(op)
                  or (ONE_BYTE_REFUSED_64 if bits == 64 else ONE_BYTE_REFUSED_32).get(op)
                  or GROUP_REFUSED.get((op, enc.reg)))
        if reason is None and 0x66 in enc.prefixes and (not enc.rex & 8 or op == 0xc2) and (
                op in _NEAR_BRANCHES_1 or (op == 0xff and enc.reg in (2, 4))):
            reason = OPSIZE_BRANCH
        return reason
    if enc.map == MAP_0F:
        reason = TWO_BYTE_REFUSED.get(op)
        if reason is None and 0x66 in enc.prefixes and not enc.rex & 8 and op in _NEAR_BRANCHES_2:
            reason = OPSIZE_BRANCH
        return reason
    if enc.map == MAP_0F38:
        return THREE_BYTE_38_REFUSED.get(op)
    return None
