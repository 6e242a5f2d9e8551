"""The C library entry points, bound once with their types.

``use_errno`` makes ctypes save errno right after each call, which is the
only reliable way to tell PEEKDATA's legitimate -1 from a failure.
"""

import ctypes
import ctypes.util

from .structs import IoVec

_LIBC_NAME = ctypes.util.find_library("c") or "libc.so.6"
_libc = ctypes.CDLL(_LIBC_NAME, use_errno=True)

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

# The hit path's calls are bound a second time without argtypes: converting
# arguments through argtypes costs about 1 us per call here, as much as the
# system call itself.  Untyped, ctypes passes a Python int as a C int that
# libffi sign-extends to the register width, None as NULL and a byref()
# object as its pointer, and refuses (ArgumentError) an int that does not
# fit, so only small ints (request, tid, signal) and byref() go through
# these.  ptrace_small is on a PyDLL handle, which keeps the GIL across the
# call: the requests it serves never block.  That handle saves no errno
# either (use_errno costs about 280 instructions a call, a tenth of the
# call): a request that fails there is made again through ``ptrace`` to
# learn why (binding.redo).  waitpid blocks, so it stays on a CDLL handle,
# which releases the GIL for the waker thread.
_pydll = ctypes.PyDLL(_LIBC_NAME)
ptrace_small = _pydll.ptrace
ptrace_small.restype = ctypes.c_long


def _int_result(dll, name: str):
    """``dll.name`` returning C int, the default result type, as a function
    pointer type with no ``_restype_`` of its own: ctypes then converts the
    result without looking up a result type, which an explicit c_int costs
    at every call (about 270 instructions, a hit's seventieth)."""
    class IntResult(dll._FuncPtr):
        _flags_ = dll._func_flags_
    return IntResult((name, dll))


#: ptrace for requests whose result is only 0 or -1 (POKEUSER, CONT,
#: SINGLESTEP, GETREGS, SETREGS), on the same handle as ptrace_small.
ptrace_rc = _int_result(_pydll, "ptrace")

waitpid = _libc.waitpid
waitpid.restype = ctypes.c_int
# The run loop's blocking waitpid(-1) saves no errno either: when it fails,
# the loop asks again without blocking through ``waitpid`` (Loop._wait_failed).
wait_any = _int_result(ctypes.CDLL(_LIBC_NAME), "waitpid")

# process_vm_readv/writev of one iovec pair for emulated instructions,
# untyped like ptrace_small: only byref() and small ints are passed.
vm_readv_small = _pydll.process_vm_readv
vm_readv_small.restype = ctypes.c_ssize_t
vm_writev_small = _pydll.process_vm_writev
vm_writev_small.restype = ctypes.c_ssize_t

_ANCHOR = ctypes.c_char()


def word_arg(value: int):
    """A ready-made argument that passes ``value`` as a full machine word
    through the untyped bindings, for a value passed on every hit (a
    boosted slot's address).  An int passes as a C int, which truncates an
    address; a c_ulong passes whole, but ctypes converts it afresh at each
    call (about 300 instructions, a hit's seventieth).  A byref() object is
    passed as it stands, and byref's offset makes its pointer any value."""
    return ctypes.byref(_ANCHOR, value - ctypes.addressof(_ANCHOR))


sched_getcpu = _libc.sched_getcpu
sched_getcpu.argtypes = []
sched_getcpu.restype = ctypes.c_int

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_SYS_TGKILL = 234
_SYS_RT_TGSIGQUEUEINFO = 297


def tgkill(tgid: int, tid: int, sig: int) -> int:
    """tgkill(2); glibc before 2.30 has no wrapper, so go through syscall."""
    return _syscall(ctypes.c_long(_SYS_TGKILL), ctypes.c_long(tgid),
                    ctypes.c_long(tid), ctypes.c_long(sig))


def rt_tgsigqueueinfo(tgid: int, tid: int, sig: int, info) -> int:
    """Queue ``sig`` with a siginfo_t (a ctypes structure) to one thread.
    The kernel accepts only infos a process could have made itself (a
    negative si_code other than SI_TKILL, e.g. SI_QUEUE)."""
    return _syscall(ctypes.c_long(_SYS_RT_TGSIGQUEUEINFO), ctypes.c_long(tgid),
                    ctypes.c_long(tid), ctypes.c_long(sig), ctypes.byref(info))


class _SigAction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def set_harmless_handler(sig: int) -> None:
    """Install, without SA_RESTART, a C handler for ``sig`` that does
    nothing, so the signal interrupts a blocking call on the thread it is
    sent to.  libc's getpid is async-signal-safe and ignores its argument."""
    action = _SigAction()
    action.handler = ctypes.cast(_libc.getpid, ctypes.c_void_p).value
    _libc.sigaction(sig, ctypes.byref(action), None)


get_errno = ctypes.get_errno
set_errno = ctypes.set_errno
