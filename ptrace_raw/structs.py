"""Kernel structures as ctypes layouts, fixed to what a 64-bit kernel hands a
64-bit tracer whatever the tracee's bitness (GETREGS always fills the x86_64
``user_regs_struct``; the i386 arch reads a 32-bit view of it)."""

import ctypes

_u64 = ctypes.c_uint64


class UserRegs(ctypes.Structure):
    """``struct user_regs_struct`` of x86_64 (216 bytes)."""

    _fields_ = [(name, _u64) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
        "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
        "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")]

    def copy(self) -> "UserRegs":
        dup = UserRegs()
        ctypes.pointer(dup)[0] = self
        return dup


class UserFpRegs(ctypes.Structure):
    """``struct user_fpregs_struct`` of x86_64 (512 bytes, the FXSAVE area)."""

    _fields_ = [("cwd", ctypes.c_uint16), ("swd", ctypes.c_uint16),
                ("ftw", ctypes.c_uint16), ("fop", ctypes.c_uint16),
                ("rip", _u64), ("rdp", _u64),
                ("mxcsr", ctypes.c_uint32), ("mxcr_mask", ctypes.c_uint32),
                ("st_space", ctypes.c_uint32 * 32), ("xmm_space", ctypes.c_uint32 * 64),
                ("padding", ctypes.c_uint32 * 24)]


class _SigKill(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_int32), ("uid", ctypes.c_uint32)]


class _SigFault(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint64)]


class _SigChld(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_int32), ("uid", ctypes.c_uint32),
                ("status", ctypes.c_int32)]


class _SigFields(ctypes.Union):
    _fields_ = [("kill", _SigKill), ("fault", _SigFault), ("chld", _SigChld),
                ("raw", ctypes.c_uint8 * 112)]


class SigInfo(ctypes.Structure):
    """``siginfo_t`` (128 bytes) with the union members the tracer reads."""

    _fields_ = [("si_signo", ctypes.c_int32), ("si_errno", ctypes.c_int32),
                ("si_code", ctypes.c_int32), ("_pad", ctypes.c_int32),
                ("fields", _SigFields)]


class _SyscallEntry(ctypes.Structure):
    _fields_ = [("nr", _u64), ("args", _u64 * 6)]


class _SyscallExit(ctypes.Structure):
    _fields_ = [("rval", ctypes.c_int64), ("is_error", ctypes.c_uint8)]


class _SyscallSeccomp(ctypes.Structure):
    _fields_ = [("nr", _u64), ("args", _u64 * 6), ("ret_data", ctypes.c_uint32)]


class _SyscallData(ctypes.Union):
    _fields_ = [("entry", _SyscallEntry), ("exit", _SyscallExit),
                ("seccomp", _SyscallSeccomp)]


class SyscallInfo(ctypes.Structure):
    """``struct ptrace_syscall_info`` (PTRACE_GET_SYSCALL_INFO)."""

    _fields_ = [("op", ctypes.c_uint8), ("_pad", ctypes.c_uint8 * 3),
                ("arch", ctypes.c_uint32), ("instruction_pointer", _u64),
                ("stack_pointer", _u64), ("data", _SyscallData)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]
