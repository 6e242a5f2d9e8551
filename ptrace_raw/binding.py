"""One function per ptrace request, with typed results and PtraceError.

Names follow the kernel's requests so that ptrace(2) documents them.  These
are called only from the loop's thread: ptrace binds a tracee to the thread
that attached it.
"""

from __future__ import annotations

import ctypes
import os

from . import _libc
from .consts import (
    PTRACE_ATTACH, PTRACE_CONT, PTRACE_DETACH, PTRACE_GET_SYSCALL_INFO, PTRACE_GETEVENTMSG,
    PTRACE_GETFPREGS, PTRACE_GETREGS, PTRACE_GETREGSET, PTRACE_GETSIGINFO, PTRACE_INTERRUPT,
    PTRACE_KILL, PTRACE_LISTEN, PTRACE_PEEKDATA, PTRACE_PEEKUSER, PTRACE_POKEDATA, PTRACE_POKEUSER,
    PTRACE_SEIZE, PTRACE_SETOPTIONS, PTRACE_SETREGS, PTRACE_SETREGSET, PTRACE_SETSIGINFO,
    PTRACE_SINGLESTEP, PTRACE_SYSCALL, PTRACE_TRACEME, REQUEST_NAMES,
)
from .errors import PtraceError
from .structs import IoVec, SigInfo, SyscallInfo, UserFpRegs, UserRegs

_ptrace = _libc.ptrace
_ptrace_rc = _libc.ptrace_rc
_get_errno = _libc.get_errno
_set_errno = _libc.set_errno

#: byte offset of rip in user_regs_struct (PEEKUSER/POKEUSER of one register)
RIP_OFFSET = UserRegs.rip.offset
#: more than any register set takes (an XSAVE area with AMX tiles is 11 KiB)
_REGSET_ROOM = 1 << 15


def failure(request: int, pid: int) -> PtraceError:
    """The PtraceError for a call that just returned -1 (reads errno)."""
    return PtraceError(_get_errno(), REQUEST_NAMES.get(request, str(request)), pid)


def redo(request: int, pid: int, addr=None, data=None) -> int:
    """A hit-path request returned -1 through ``ptrace_small`` or
    ``ptrace_rc``, which save no errno: make it again through the binding
    that does, to say why.  A failed request changed nothing (a SETREGS
    that fails rewrites the same registers again), so the second call fails
    the same way and raises its PtraceError; should it succeed, its result
    is returned."""
    _set_errno(0)
    res = _ptrace(request, pid, addr, data)
    if res == -1 and _get_errno():
        raise failure(request, pid)
    return res


def _call(request: int, pid: int, addr=None, data=None) -> int:
    res = _ptrace(request, pid, addr, data)
    if res == -1:
        raise failure(request, pid)
    return res


def traceme() -> None:
    _call(PTRACE_TRACEME, 0)


def seize(pid: int, options: int) -> None:
    _call(PTRACE_SEIZE, pid, None, options)


def attach(pid: int) -> None:
    _call(PTRACE_ATTACH, pid)


def interrupt(pid: int) -> None:
    _call(PTRACE_INTERRUPT, pid)


def setoptions(pid: int, options: int) -> None:
    _call(PTRACE_SETOPTIONS, pid, None, options)


def cont(pid: int, sig: int = 0) -> None:
    if _ptrace_rc(PTRACE_CONT, pid, None, sig) == -1:
        redo(PTRACE_CONT, pid, None, sig)


def singlestep(pid: int, sig: int = 0) -> None:
    if _ptrace_rc(PTRACE_SINGLESTEP, pid, None, sig) == -1:
        redo(PTRACE_SINGLESTEP, pid, None, sig)


def syscall(pid: int, sig: int = 0) -> None:
    _call(PTRACE_SYSCALL, pid, None, sig)


def listen(pid: int) -> None:
    _call(PTRACE_LISTEN, pid)


def detach(pid: int, sig: int = 0) -> None:
    _call(PTRACE_DETACH, pid, None, sig)


def kill(pid: int) -> None:
    _call(PTRACE_KILL, pid)


def getregs(pid: int, regs_ref) -> None:
    """Fill a UserRegs passed as ``ctypes.byref(regs)`` (prebuilt by the
    caller so the hit path allocates nothing)."""
    if _ptrace_rc(PTRACE_GETREGS, pid, None, regs_ref) == -1:
        redo(PTRACE_GETREGS, pid, None, regs_ref)


def setregs(pid: int, regs_ref) -> None:
    if _ptrace_rc(PTRACE_SETREGS, pid, None, regs_ref) == -1:
        redo(PTRACE_SETREGS, pid, None, regs_ref)


def getfpregs(pid: int) -> UserFpRegs:
    fp = UserFpRegs()
    _call(PTRACE_GETFPREGS, pid, None, ctypes.addressof(fp))
    return fp


def getregset(pid: int, note: int) -> bytes:
    """The register set ``note`` (an NT_ type) as the kernel lays it out,
    as long as the kernel says it is."""
    buf = ctypes.create_string_buffer(_REGSET_ROOM)
    iov = IoVec(ctypes.addressof(buf), len(buf))
    _call(PTRACE_GETREGSET, pid, note, ctypes.addressof(iov))
    return buf.raw[:iov.iov_len]


def setregset(pid: int, note: int, data: bytes) -> None:
    """Load the register set ``note`` from what ``getregset`` returned."""
    buf = ctypes.create_string_buffer(data, len(data))
    iov = IoVec(ctypes.addressof(buf), len(data))
    _call(PTRACE_SETREGSET, pid, note, ctypes.addressof(iov))


def peekuser(pid: int, offset: int) -> int:
    _set_errno(0)
    res = _ptrace(PTRACE_PEEKUSER, pid, offset, None)
    if res == -1 and _get_errno():
        raise failure(PTRACE_PEEKUSER, pid)
    return res & 0xFFFFFFFFFFFFFFFF


def pokeuser(pid: int, offset: int, value: int) -> None:
    if _ptrace(PTRACE_POKEUSER, pid, offset, value) == -1:
        raise failure(PTRACE_POKEUSER, pid)


def peekdata(pid: int, addr: int) -> int:
    """One word of tracee memory; -1 is a valid word, so errno decides."""
    _set_errno(0)
    res = _ptrace(PTRACE_PEEKDATA, pid, addr, None)
    if res == -1 and _get_errno():
        raise failure(PTRACE_PEEKDATA, pid)
    return res & 0xFFFFFFFFFFFFFFFF


def pokedata(pid: int, addr: int, value: int) -> None:
    if _ptrace(PTRACE_POKEDATA, pid, addr, value & 0xFFFFFFFFFFFFFFFF) == -1:
        raise failure(PTRACE_POKEDATA, pid)


def geteventmsg(pid: int) -> int:
    msg = ctypes.c_ulong()
    _call(PTRACE_GETEVENTMSG, pid, None, ctypes.addressof(msg))
    return msg.value


def getsiginfo(pid: int) -> SigInfo:
    info = SigInfo()
    _call(PTRACE_GETSIGINFO, pid, None, ctypes.addressof(info))
    return info


def setsiginfo(pid: int, info: SigInfo) -> None:
    """Replace the siginfo of the signal the stopped thread is about to
    get: resumed with that signal's number, it arrives with this info."""
    _call(PTRACE_SETSIGINFO, pid, None, ctypes.addressof(info))


def get_syscall_info(pid: int) -> SyscallInfo:
    info = SyscallInfo()
    _call(PTRACE_GET_SYSCALL_INFO, pid, ctypes.sizeof(info), ctypes.addressof(info))
    return info


def tgkill(tgid: int, tid: int, sig: int) -> None:
    if _libc.tgkill(tgid, tid, sig) == -1:
        err = _get_errno()
        raise OSError(err, f"tgkill({tgid}, {tid}, {sig}): {os.strerror(err)}")


_SI_TKILL = -6


def resend(tgid: int, tid: int, sig: int, info=None) -> None:
    """Send ``sig`` to one thread again: with its original siginfo when
    the kernel allows it (SI_QUEUE and the other codes a process could
    have made), else as from tgkill."""
    if info is not None and info.si_code < 0 and info.si_code != _SI_TKILL:
        if _libc.rt_tgsigqueueinfo(tgid, tid, sig, info) != -1:
            return
    tgkill(tgid, tid, sig)


def vm_read(pid: int, addr: int, size: int) -> bytes:
    """process_vm_readv of one range; short reads come back short."""
    buf = ctypes.create_string_buffer(size)
    local = IoVec(ctypes.addressof(buf), size)
    remote = IoVec(addr, size)
    got = _libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        err = _get_errno()
        raise OSError(err, f"process_vm_readv({pid}, {addr:#x}, {size}): {os.strerror(err)}")
    return buf.raw[:got]


def vm_write(pid: int, addr: int, data: bytes) -> int:
    """process_vm_writev of one range (writable pages only); bytes written."""
    buf = ctypes.create_string_buffer(data, len(data))
    local = IoVec(ctypes.addressof(buf), len(data))
    remote = IoVec(addr, len(data))
    got = _libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        err = _get_errno()
        raise OSError(err, f"process_vm_writev({pid}, {addr:#x}): {os.strerror(err)}")
    return got
