"""Instructions and registers of the tracee's architecture; knows no process.

``ptrace_raw`` reaches this package only through the names exported here.
"""

from .base import (CS_32, CS_64, INLINE_HIST_BUCKETS, INLINE_RECORD_ARGS, INLINE_RECORD_WORDS,
                   INLINE_RING_HEADER, INLINE_SHADOW_DEPTH, INLINE_SHADOW_SLOT_BYTES,
                   INLINE_SHADOW_SLOTS, Arch, Insn, Memory, UnsupportedInstruction, XolPlan)
from .i386 import I386
from .x86_64 import X86_64
from .x86_inline import HOST_RDTSC

__all__ = ["Arch", "Insn", "Memory", "UnsupportedInstruction", "XolPlan",
           "X86_64", "I386", "for_regs", "CS_32", "CS_64", "HOST_RDTSC",
           "INLINE_HIST_BUCKETS", "INLINE_RECORD_ARGS", "INLINE_RECORD_WORDS",
           "INLINE_RING_HEADER", "INLINE_SHADOW_DEPTH", "INLINE_SHADOW_SLOT_BYTES",
           "INLINE_SHADOW_SLOTS"]


def for_regs(regs) -> Arch:
    """The arch a thread is executing in right now, told by its code segment
    (0x33 long mode, 0x23 compat); decided per stop because a far jump can
    switch it."""
    return I386 if regs.cs == CS_32 else X86_64
