"""Instructions and registers of the tracee's architecture; knows no process.

``ptrace_raw`` reaches this package only through the names exported here.
"""

from .base import CS_32, CS_64, Arch, Insn, Memory, UnsupportedInstruction, XolPlan
from .i386 import I386
from .x86_64 import X86_64

__all__ = ["Arch", "Insn", "Memory", "UnsupportedInstruction", "XolPlan",
           "X86_64", "I386", "for_regs", "CS_32", "CS_64"]


def for_regs(regs) -> Arch:
    """The arch a thread is executing in right now, told by its code segment
    (0x33 long mode, 0x23 compat); decided per stop because a far jump can
    switch it."""
    return I386 if regs.cs == CS_32 else X86_64
