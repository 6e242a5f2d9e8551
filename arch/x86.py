"""Shared x86 instruction analysis, parametrized by mode (64 or 32 bit).

Placeholder until the analysis lands: decode only.
"""

from __future__ import annotations

import capstone

from .base import Arch, Insn


class X86(Arch):
    """x86 in one mode; subclasses add register roles and the ABI."""

    def __init__(self):
        self._cs = capstone.Cs(capstone.CS_ARCH_X86,
                               capstone.CS_MODE_64 if self.bits == 64 else capstone.CS_MODE_32)
        self._cs.detail = True

    def decode(self, code, addr):
        for ins in self._cs.disasm(code, addr):
            yield Insn(ins.address, ins.size, f"{ins.mnemonic} {ins.op_str}".strip())
