"""The ctypes layer against the kernel's own layouts and the wait status
decoder against statuses produced by real processes."""

import ctypes
import os
import signal
import subprocess

import pytest

from ptrace_raw.structs import SigInfo, UserFpRegs, UserRegs
from ptrace_raw.waitstatus import StopKind, WaitStatus
from tests.conftest import build_c


def _c_layout():
    out = subprocess.run([str(build_c("layout.c", 64))], capture_output=True, text=True, check=True)
    return {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}


def test_struct_layouts_match_the_kernel():
    c = _c_layout()
    assert ctypes.sizeof(UserRegs) == c["user_regs_struct"] == 216
    for field in ("r15", "rax", "orig_rax", "rip", "cs", "eflags", "rsp", "fs_base", "gs"):
        assert getattr(UserRegs, field).offset == c[field], field
    assert ctypes.sizeof(UserFpRegs) == c["user_fpregs_struct"] == 512
    for field in ("mxcsr", "st_space", "xmm_space"):
        assert getattr(UserFpRegs, field).offset == c[field], field
    assert ctypes.sizeof(SigInfo) == c["siginfo_t"] == 128
    assert SigInfo.si_signo.offset == c["si_signo"]
    assert SigInfo.si_code.offset == c["si_code"]
    assert SigInfo.fields.offset == c["si_pid"] == c["si_addr"]
    assert SigInfo.fields.offset + 8 == c["si_status"]


def test_wait_status_decodes_exit_and_signal_death():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, raw = os.waitpid(pid, 0)
    st = WaitStatus(raw)
    assert (st.kind, st.code, st.is_stop) == (StopKind.EXITED, 7, False)
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, raw = os.waitpid(pid, 0)
    st = WaitStatus(raw)
    assert (st.kind, st.sig) == (StopKind.KILLED, signal.SIGKILL)


@pytest.mark.parametrize("raw, kind, sig, event", [
    (0x057F, StopKind.SIGNAL, signal.SIGTRAP, 0),
    (0x0B7F, StopKind.SIGNAL, signal.SIGSEGV, 0),
    (0x857F, StopKind.SYSCALL, signal.SIGTRAP, 0),
    (0x3057F, StopKind.EVENT, signal.SIGTRAP, 3),
    (0x4057F, StopKind.EVENT, signal.SIGTRAP, 4),
    (0x80057F, StopKind.EVENT, signal.SIGTRAP, 128),
    (0x80137F, StopKind.GROUP_STOP, signal.SIGSTOP, 0),
    (0x80147F, StopKind.GROUP_STOP, signal.SIGTSTP, 0),
])
def test_wait_status_table(raw, kind, sig, event):
    st = WaitStatus(raw)
    assert (st.kind, st.sig, st.event) == (kind, sig, event)


def _reap(pid: int) -> None:
    """Kill and reap a forked tracee the test may have left alive."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def test_every_request_on_a_live_tracee():
    """The requests the tracer does not use on its hot path, each once on a
    real tracee: TRACEME, PEEK/POKEDATA, PEEK/POKEUSER, GETFPREGS,
    GETSIGINFO, SYSCALL with GET_SYSCALL_INFO, KILL."""
    from ptrace_raw import binding
    from ptrace_raw.consts import PTRACE_SYSCALL_INFO_ENTRY, WALL
    pid = os.fork()
    if pid == 0:
        binding.traceme()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.getppid()
        os._exit(0)
    try:
        _, raw = os.waitpid(pid, WALL)
        assert WaitStatus(raw).sig == signal.SIGUSR1
        info = binding.getsiginfo(pid)
        assert (info.si_signo, info.fields.kill.pid) == (signal.SIGUSR1, pid)
        info.fields.kill.pid = 12345
        binding.setsiginfo(pid, info)
        assert binding.getsiginfo(pid).fields.kill.pid == 12345
        sp = binding.peekuser(pid, UserRegs.rsp.offset)
        word = binding.peekdata(pid, sp)
        binding.pokedata(pid, sp, 0xFFFFFFFFFFFFFFFF)
        assert binding.peekdata(pid, sp) == 0xFFFFFFFFFFFFFFFF  # -1 is data, not an error
        binding.pokedata(pid, sp, word)
        rip = binding.peekuser(pid, binding.RIP_OFFSET)
        binding.pokeuser(pid, binding.RIP_OFFSET, rip)
        assert binding.getfpregs(pid).mxcsr & 0x1F80 == 0x1F80  # exceptions masked by default
        assert binding.vm_write(pid, sp, word.to_bytes(8, "little")) == 8
        binding.setoptions(pid, 0x1)  # TRACESYSGOOD
        binding.syscall(pid, 0)
        _, raw = os.waitpid(pid, WALL)
        assert WaitStatus(raw).kind is StopKind.SYSCALL
        sc = binding.get_syscall_info(pid)
        assert sc.op == PTRACE_SYSCALL_INFO_ENTRY and sc.data.entry.nr == 110  # getppid
        binding.kill(pid)
        _, raw = os.waitpid(pid, WALL)
        assert WaitStatus(raw).kind is StopKind.KILLED
    finally:
        _reap(pid)


def test_hit_path_failures_name_the_request_and_the_kernels_reason():
    """The hit path's calls save no errno; a failure is made again to learn
    why.  It must report the request and the kernel's errno (EIO for a bad
    signal, ESRCH for a thread that is not stopped), and change nothing: the
    thread stays stopped with its registers, and later calls work."""
    import errno
    from ptrace_raw import binding
    from ptrace_raw.consts import PTRACE_PEEKUSER, WALL
    from ptrace_raw.errors import PtraceError
    from ptrace_raw.thread import Thread
    pid = os.fork()
    if pid == 0:
        binding.traceme()
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(7)
    try:
        os.waitpid(pid, WALL)
        thread = Thread(pid, None)
        thread.stopped = True
        rip = thread.get_ip()
        assert binding.redo(PTRACE_PEEKUSER, pid, binding.RIP_OFFSET) == rip
        thread.pending_sig = 1000
        with pytest.raises(PtraceError) as bad_signal:
            thread.resume()
        assert (bad_signal.value.errno, bad_signal.value.request) == (errno.EIO, "PTRACE_CONT")
        assert thread.get_regs().rip == rip
        thread.pending_sig = 0
        thread.resume()
        with pytest.raises(PtraceError) as running:
            thread.resume()
        assert running.value.gone and running.value.request == "PTRACE_CONT"
        with pytest.raises(PtraceError) as peek:
            thread.get_ip()
        assert peek.value.gone and peek.value.request == "PTRACE_PEEKUSER"
        _, raw = os.waitpid(pid, 0)
        assert os.WIFEXITED(raw) and os.WEXITSTATUS(raw) == 7
    finally:
        _reap(pid)
