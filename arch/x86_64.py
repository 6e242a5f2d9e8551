"""x86_64: register roles over user_regs_struct, the SysV ABI and the
``syscall`` instruction for injection."""

from __future__ import annotations

import struct

from .x86 import X86

_MASK = (1 << 64) - 1
_ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
#: xmm0-xmm7 carry floating-point arguments
_XMM_ARGS = 8
_SYSCALL_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
_REG_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
              "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
              "fs_base", "gs_base", "orig_rax")
_NR_MMAP = 9


class X86_64Arch(X86):
    name = "x86_64"
    bits = 64
    word_size = 8
    reg_names = _REG_NAMES
    arg_registers = _ARG_REGS
    red_zone = 128
    syscall_insn = b"\x0f\x05"
    syscall_numbers = {"openat": 257, "close": 3, "mmap": 9, "munmap": 11}
    dwarf_reg_names = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
                       "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "ip")

    def ip(self, regs):
        return regs.rip

    def set_ip(self, regs, value):
        regs.rip = value & _MASK

    def sp(self, regs):
        return regs.rsp

    def set_sp(self, regs, value):
        regs.rsp = value & _MASK

    def fp(self, regs):
        return regs.rbp

    def flags(self, regs):
        return regs.eflags

    def tls_base(self, regs):
        return regs.fs_base

    def get_reg(self, regs, name):
        if name not in _REG_NAMES:
            raise KeyError(f"no register {name!r} on {self.name}")
        return getattr(regs, name)

    def set_reg(self, regs, name, value):
        if name not in _REG_NAMES:
            raise KeyError(f"no register {name!r} on {self.name}")
        setattr(regs, name, value & _MASK)

    def arg(self, regs, mem, n):
        if n < len(_ARG_REGS):
            return getattr(regs, _ARG_REGS[n])
        return self.read_word(mem, regs.rsp + 8 * (n - len(_ARG_REGS) + 1))

    def args(self, regs, mem, count):
        out = [getattr(regs, name) for name in _ARG_REGS[:count]]
        if count > len(_ARG_REGS):
            extra = count - len(_ARG_REGS)
            out += struct.unpack(f"<{extra}Q", mem.read(regs.rsp + 8, 8 * extra))
        return out

    def returns_in_memory(self, kind, size):
        """An aggregate of more than 16 bytes; a smaller one comes back in
        rax:rdx or xmm0:xmm1 (one whose content classifies as memory, a
        packed struct say, cannot be told from here), a complex number in
        xmm0:xmm1 or the x87 stack."""
        return kind == "other" and size > 16

    def param_slots(self, params):
        """The SysV ABI gives integers the six integer registers and floats
        the eight xmm registers, each in turn; one that finds its registers
        taken goes on the stack, in order, so a float there (read from it
        as the integers there are) moves the stack arguments after it.  A
        complex float is one xmm eightbyte, a complex double two: one that
        finds a single xmm register left goes whole on the stack, and the
        register is the next float's.  A 16-byte float is a long double
        (always on the stack, 16-byte aligned) or a __float128 (in xmm),
        which a size cannot tell: after one, or a complex long double, the
        stack is unknown, though the registers are not.  An aggregate is
        classified by its content, which is past telling here, and may take
        registers or stack slots the parameters after it would have had."""
        out, ints, xmms, stack = [], 0, 0, 0
        for kind, size in params:
            if kind == "int" and size <= 8:
                if ints < len(_ARG_REGS):
                    out.append([ints])
                    ints += 1
                else:
                    out.append(None if stack is None else [len(_ARG_REGS) + stack])
                    stack = None if stack is None else stack + 1
                continue
            out.append(None)
            words = -(-size // 8)
            if kind == "complex" and size <= 16 or kind == "float" and size <= 8:
                if xmms + words <= _XMM_ARGS:
                    xmms += words
                elif stack is not None:
                    if kind == "float":
                        out[-1] = [len(_ARG_REGS) + stack]
                    stack += words
            elif kind in ("float", "complex"):
                stack = None
            else:
                out += [None] * (len(params) - len(out))
                break
        return out

    def retval(self, regs):
        return regs.rax

    retval_wide = retval

    def set_retval(self, regs, value):
        regs.rax = value & _MASK

    def read_word(self, mem, addr):
        return struct.unpack("<Q", mem.read(addr, 8))[0]

    def write_word(self, mem, addr, value):
        mem.write(addr, struct.pack("<Q", value & _MASK))

    def to_signed(self, value):
        value &= _MASK
        return value - (1 << 64) if value >> 63 else value

    def set_syscall(self, regs, nr, *args):
        regs.rax = nr
        regs.orig_rax = _MASK
        for name, value in zip(_SYSCALL_ARG_REGS, args):
            setattr(regs, name, value & _MASK)

    def syscall_result(self, regs):
        return self.to_signed(regs.rax)

    def set_mmap(self, regs, addr, length, prot, flags):
        self.set_syscall(regs, _NR_MMAP, addr, length, prot, flags, _MASK, 0)


X86_64 = X86_64Arch()
