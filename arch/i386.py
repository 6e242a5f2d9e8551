"""i386: a 32-bit view over the x86_64 user_regs_struct (what GETREGS
returns for a compat tracee), cdecl arguments and ``int 0x80``.

All arithmetic is mod 2**32: the upper halves of the 64-bit fields are
meaningless for a 32-bit tracee and are written as zero.
"""

from __future__ import annotations

import struct

from .x86 import X86

_MASK = (1 << 32) - 1
# user-visible name -> field of the 64-bit struct it lives in
_FIELDS = {"eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx",
           "esi": "rsi", "edi": "rdi", "ebp": "rbp", "esp": "rsp",
           "eip": "rip", "eflags": "eflags", "cs": "cs", "ss": "ss",
           "ds": "ds", "es": "es", "fs": "fs", "gs": "gs", "orig_eax": "orig_rax"}
_SYSCALL_ARG_FIELDS = ("rbx", "rcx", "rdx", "rsi", "rdi", "rbp")
_NR_MMAP2 = 192


class I386Arch(X86):
    name = "i386"
    bits = 32
    word_size = 4
    reg_names = tuple(_FIELDS)
    syscall_insn = b"\xcd\x80"
    syscall_numbers = {"openat": 295, "close": 6, "mmap": 192, "munmap": 91}
    dwarf_reg_names = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "ip")

    def ip(self, regs):
        return regs.rip & _MASK

    def set_ip(self, regs, value):
        regs.rip = value & _MASK

    def sp(self, regs):
        return regs.rsp & _MASK

    def set_sp(self, regs, value):
        regs.rsp = value & _MASK

    def fp(self, regs):
        return regs.rbp & _MASK

    def flags(self, regs):
        return regs.eflags & _MASK

    def tls_base(self, regs):
        return regs.gs_base & _MASK

    def get_reg(self, regs, name):
        try:
            return getattr(regs, _FIELDS[name]) & _MASK
        except KeyError:
            raise KeyError(f"no register {name!r} on {self.name}") from None

    def set_reg(self, regs, name, value):
        try:
            setattr(regs, _FIELDS[name], value & _MASK)
        except KeyError:
            raise KeyError(f"no register {name!r} on {self.name}") from None

    def arg(self, regs, mem, n):
        return self.read_word(mem, (regs.rsp + 4 * (n + 1)) & _MASK)

    def args(self, regs, mem, count):
        if count <= 0:
            return []
        data = mem.read((regs.rsp + 4) & _MASK, 4 * count)
        return list(struct.unpack(f"<{count}I", data))

    def returns_in_memory(self, kind, size):
        """Every struct and union, whatever its size (gcc's default on
        Linux), and a complex number but a float one, which comes back in
        edx:eax."""
        return kind == "other" or kind == "complex" and size > 8

    def param_slots(self, params):
        """Everything is on the stack, each parameter in whole 4-byte
        slots: every place is known, though only scalars are read."""
        out, slot = [], 0
        for kind, size in params:
            count = max(1, -(-size // 4))
            out.append(list(range(slot, slot + count))
                       if kind in ("int", "float") and size <= 8 else None)
            slot += count
        return out

    def retval(self, regs):
        return regs.rax & _MASK

    def retval_wide(self, regs):
        return ((regs.rdx & _MASK) << 32) | (regs.rax & _MASK)

    def set_retval(self, regs, value):
        regs.rax = value & _MASK

    def read_word(self, mem, addr):
        return struct.unpack("<I", mem.read(addr & _MASK, 4))[0]

    def write_word(self, mem, addr, value):
        mem.write(addr & _MASK, struct.pack("<I", value & _MASK))

    def to_signed(self, value):
        value &= _MASK
        return value - (1 << 32) if value >> 31 else value

    def set_syscall(self, regs, nr, *args):
        regs.rax = nr
        regs.orig_rax = (1 << 64) - 1
        for field, value in zip(_SYSCALL_ARG_FIELDS, args):
            setattr(regs, field, value & _MASK)

    def syscall_result(self, regs):
        return self.to_signed(regs.rax)

    def set_mmap(self, regs, addr, length, prot, flags):
        self.set_syscall(regs, _NR_MMAP2, addr, length, prot, flags, _MASK, 0)


I386 = I386Arch()
