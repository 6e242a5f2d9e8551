"""The C library entry points, bound once with their types.

``use_errno`` makes ctypes save errno right after each call, which is the
only reliable way to tell PEEKDATA's legitimate -1 from a failure.
"""

import ctypes
import ctypes.util

from .structs import IoVec

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

ptrace = _libc.ptrace
ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ptrace.restype = ctypes.c_long

process_vm_readv = _libc.process_vm_readv
process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                             ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]
process_vm_readv.restype = ctypes.c_ssize_t

process_vm_writev = _libc.process_vm_writev
process_vm_writev.argtypes = process_vm_readv.argtypes
process_vm_writev.restype = ctypes.c_ssize_t

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_SYS_TGKILL = 234


def tgkill(tgid: int, tid: int, sig: int) -> int:
    """tgkill(2); glibc before 2.30 has no wrapper, so go through syscall."""
    return _syscall(ctypes.c_long(_SYS_TGKILL), ctypes.c_long(tgid),
                    ctypes.c_long(tid), ctypes.c_long(sig))


get_errno = ctypes.get_errno
set_errno = ctypes.set_errno
