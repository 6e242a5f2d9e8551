"""One traced process: how it is started or attached, its threads, memory
and maps, and syscall injection."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import threading
from typing import Callable, Optional

from . import _libc, binding
from .consts import (
    NT_X86_XSTATE, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC, PTRACE_EVENT_FORK, PTRACE_EVENT_STOP, PTRACE_EVENT_VFORK, PTRACE_O_EXITKILL, PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXEC, PTRACE_O_TRACEFORK, PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEVFORK,
    PTRACE_O_TRACEVFORKDONE, WALL,
)
from .errors import AttachError, PtraceError
from .maps import read_maps
from .memory import Memory
from .thread import Thread
from .waitstatus import StopKind, WaitStatus
from .waker import Waker, install_wake_handler

BASE_OPTIONS = (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD
                | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEVFORKDONE)


class Process:
    """A traced thread group.

    ``exit_code``/``exit_signal`` are set when the thread group leader's
    final status arrives, which the kernel reports after every other thread
    has gone.
    """

    def __init__(self, pid: int, spawned: bool, argv0: str = None):
        self.pid = pid
        self.spawned = spawned
        self.threads = {}
        self.memory = Memory(pid)
        self.exit_code = None
        self.exit_signal = None
        #: the probe engine's per-process state
        self.probe_state = None
        #: a vfork child we do not follow, traced only until it execs: its
        #: probe hits run no handlers
        self.silent = False
        #: started by our spawn(): the tracer's own child, reaped by it
        self.child_of_tracer = False
        self.argv0 = argv0 or _comm(pid)

    @property
    def alive(self) -> bool:
        return self.exit_code is None and self.exit_signal is None

    @property
    def leader(self) -> Thread:
        return self.threads.get(self.pid) or next(iter(self.threads.values()))

    def stopped_thread(self) -> Thread:
        """A thread in a ptrace-stop and not mid-step, to inject syscalls
        through; one inside a fork or clone that has not returned only when
        no other is stopped (``Thread.in_unreturned_syscall``)."""
        stopped = [t for t in self.threads.values() if t.stopped and t.xol is None]
        for thread in stopped:
            if not thread.in_unreturned_syscall():
                return thread
        if stopped:
            return stopped[0]
        raise AttachError(f"no stopped thread in process {self.pid}")

    def add_thread(self, tid: int) -> Thread:
        thread = self.threads.get(tid)
        if thread is None:
            thread = self.threads[tid] = Thread(tid, self)
        return thread

    def maps(self):
        return read_maps(self.pid)

    def read(self, addr: int, size: int) -> bytes:
        return self.memory.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self.memory.write(addr, data)

    def read_cstring(self, addr: int, max_len: int = 256) -> bytes:
        return self.memory.read_cstring(addr, max_len)

    def inject_syscall(self, thread: Thread, insn_addr: int, setup) -> int:
        """Run one syscall in the stopped ``thread`` and return its result.

        ``insn_addr`` must hold the arch's syscall instruction (the caller
        owns that memory); ``setup(arch, regs)`` loads number and arguments.
        Registers are restored afterwards, so a syscall the thread was
        interrupted in restarts as if nothing happened.
        """
        thread.keep_siginfo()
        saved = thread.get_regs().copy()
        arch = thread.arch
        regs = thread.regs
        while True:
            ctypes.memmove(ctypes.addressof(regs), ctypes.addressof(saved), ctypes.sizeof(regs))
            setup(arch, regs)
            arch.set_ip(regs, insn_addr)
            thread.mark_regs_dirty()
            self._step_one(thread)
            # A thread stopped at a syscall exit (the exec stop, an
            # interrupted syscall) reports the step before running any
            # instruction, and the syscall's exit clobbers rax: load the
            # registers again until the syscall has really run.
            if arch.ip(thread.get_regs()) != insn_addr:
                break
        result = arch.syscall_result(thread.get_regs())
        self._put_back(thread, saved)
        return result

    def inject_call(self, thread: Thread, func: int, return_to: int,
                    ours: Optional[Callable[[int], Optional[bytes]]] = None) -> Optional[int]:
        """Call ``func``, a function of no arguments, in the stopped
        ``thread`` and return what it returns.  It returns to ``return_to``,
        which must hold an int3 the caller owns.  None when the call ends
        anywhere else, in a fault or at another trap, or not within
        CALL_TIMEOUT seconds (a resolver that blocks, or loops): it is
        abandoned where it is, and a signal it raised is not delivered.
        The tracer never waits on it for good.  ``ours(addr)``, when
        given, is the bytes an int3 of the tracer's replaced at ``addr``
        (None for none): a call that meets one steps over it, those bytes
        back in place for that step, which only a caller whose other
        threads are all stopped may ask for.  Signals sent
        to the thread meanwhile are held, and registers restored, as for
        ``inject_syscall``, the x87 and vector ones too (the thread may be
        stopped anywhere, with values in registers any function may
        clobber); memory below the stack in use may change."""
        thread.keep_siginfo()
        saved = thread.get_regs().copy()
        vectors = binding.getregset(thread.tid, NT_X86_XSTATE)
        arch = thread.arch
        arch.set_call(thread.regs, self.memory, func, return_to)
        thread.mark_regs_dirty()
        thread.flush_regs()
        binding.cont(thread.tid, 0)
        thread.stopped = False
        while True:
            status = self._run_call(thread)
            at = arch.ip(thread.get_regs()) - 1
            replaced = ours(at) if ours is not None and status.sig == signal.SIGTRAP \
                and at != return_to else None
            if replaced is None or not self._step_over(thread, at, replaced):
                break
        regs = thread.get_regs()
        returned = status.sig == signal.SIGTRAP and arch.ip(regs) == return_to + 1
        result = arch.retval(regs) if returned else None
        binding.setregset(thread.tid, NT_X86_XSTATE, vectors)
        self._put_back(thread, saved)
        return result

    def _run_call(self, thread: Thread) -> WaitStatus:
        """Until the injected call stops on a signal it raised (its return's
        trap, another trap, a fault), or is interrupted when overdue."""
        try:
            return self._await(thread, lambda status: status.kind is StopKind.SIGNAL and
                               status.sig in _CALL_ENDING and _raised(thread.tid),
                               binding.cont, CALL_TIMEOUT)
        except _Overdue:
            binding.interrupt(thread.tid)
            return self._await(thread, _interrupted, binding.cont)

    def _step_over(self, thread: Thread, at: int, replaced: bytes) -> bool:
        """Run the instruction our int3 at ``at`` covers, its bytes put back
        for one step, and go on with the call; False if the step faulted
        (the call is then abandoned there)."""
        thread.arch.set_ip(thread.regs, at)
        thread.mark_regs_dirty()
        thread.flush_regs()
        self.write(at, replaced)
        try:
            binding.singlestep(thread.tid, 0)
            status = self._await(thread, lambda status: status.kind is StopKind.SIGNAL and
                                 status.sig in _CALL_ENDING, binding.singlestep)
        finally:
            self.write(at, thread.arch.breakpoint_insn)
        if status.sig != signal.SIGTRAP:
            return False
        binding.cont(thread.tid, 0)
        thread.stopped = False
        return True

    def _put_back(self, thread: Thread, saved) -> None:
        """The registers an injection saved, and the thread as it was."""
        regs = thread.regs
        ctypes.memmove(ctypes.addressof(regs), ctypes.addressof(saved), ctypes.sizeof(regs))
        thread.mark_regs_dirty()
        thread.stopped = True
        if thread.group_stopped:
            self._regroup(thread)
        thread.release_held()

    def _regroup(self, thread: Thread) -> None:
        """Put back into its group-stop a thread an injection ran out of it
        (a process stopped by SIGSTOP when we attached): an interrupt
        queued now is taken as it resumes, before any instruction, and
        reports the group-stop again, so the process stays stopped as its
        owner left it.  Should a SIGCONT have ended the group-stop
        meanwhile, the interrupt stops the thread all the same, in a plain
        PTRACE_EVENT_STOP, and it resumes as a running thread."""
        binding.interrupt(thread.tid)
        thread.group_stopped = False
        thread.resume()
        stop = self._await(thread, _interrupted, binding.cont)
        thread.group_stopped = stop.kind is StopKind.GROUP_STOP

    def _step_one(self, thread: Thread) -> None:
        thread.singlestep()
        self._await(thread, lambda status: status.kind is StopKind.SIGNAL
                    and status.sig == signal.SIGTRAP, binding.singlestep)

    def _await(self, thread: Thread, done, go_on, timeout: Optional[float] = None) -> WaitStatus:
        """Wait for the stop of ``thread`` that ``done(status)`` accepts,
        going on with ``go_on(tid, 0)`` past others, and return it; signals
        met on the way are held, to be delivered after.  ``_Overdue`` once
        ``timeout`` seconds have passed, the thread still running."""
        waker = None
        if timeout is not None:
            install_wake_handler()
            waker = Waker(threading.get_ident(), timeout)
            waker.start()
        try:
            while True:
                status = WaitStatus(self._wait(thread.tid, waker))
                if not status.is_stop:
                    raise AttachError(f"process {self.pid} died while running code the "
                                      "tracer injected")
                if done(status):
                    break
                if status.kind is StopKind.SIGNAL:
                    thread.hold_signal(status.sig)
                go_on(thread.tid, 0)
        finally:
            if waker is not None:
                waker.cancel()
        thread.stale()
        return status

    def _wait(self, tid: int, waker: Optional[Waker]) -> int:
        """waitpid(tid)'s status, through the binding that returns EINTR
        (os.waitpid retries it): the waker's signal, or one the tracer's
        owner handles (Ctrl-C), makes it look at the time."""
        status = ctypes.c_int()
        while True:
            if _libc.waitpid(tid, ctypes.byref(status), WALL) == tid:
                return status.value
            err = _libc.get_errno()
            if err != errno.EINTR:
                raise OSError(err, f"waitpid({tid})")
            if waker is not None and waker.fired:
                raise _Overdue

    def __repr__(self):
        return f"<Process {self.pid} {self.argv0}>"


#: seconds an injected call may run: glibc's resolvers take microseconds,
#: and one that blocks (reading a pipe, taking a lock another thread holds)
#: must not hang the tracer, which ignores Ctrl-C while it waits
CALL_TIMEOUT = 2.0


class _Overdue(Exception):
    """An injected call ran past its time."""


def _interrupted(status: WaitStatus) -> bool:
    """The stop PTRACE_INTERRUPT asked for (or a group-stop)."""
    return status.kind is StopKind.GROUP_STOP or (
        status.kind is StopKind.EVENT and status.event == PTRACE_EVENT_STOP)


#: signals that end an injected call where it is: the trap of its return,
#: and the faults and traps of code that went wrong
_CALL_ENDING = frozenset((signal.SIGTRAP, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                          signal.SIGFPE, signal.SIGSYS))


def _raised(tid: int) -> bool:
    """Whether the signal this stop reports was raised by the thread's own
    code (the kernel's si_code is positive), not sent to it by someone."""
    try:
        return binding.getsiginfo(tid).si_code > 0
    except PtraceError:
        return False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _fileno(fd) -> int:
    if fd == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return fd if isinstance(fd, int) else fd.fileno()


def _resolve_program(argv0: str, env) -> str:
    if "/" in argv0:
        path = argv0
    else:
        search = (env or os.environ).get("PATH", os.defpath)
        path = shutil.which(argv0, path=search)
        if path is None:
            raise AttachError(f"cannot run '{argv0}': command not found")
    if not os.path.exists(path):
        raise AttachError(f"cannot run '{argv0}': no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise AttachError(f"cannot run '{argv0}': not an executable file")
    return path


def spawn(argv, env=None, cwd=None, stdin=None, stdout=None, stderr=None) -> Process:
    """Start ``argv`` traced, stopped at the exec stop: before the first
    instruction of the new image (the loader's), so probes can be set before
    any of its code runs.

    The child waits on a pipe until PTRACE_SEIZE is done, so the exec is
    always traced (a tracer that died first closed the pipe, and the child
    exits); a second, close-on-exec pipe carries an exec failure back.
    """
    if not argv:
        raise AttachError("nothing to run: empty command")
    argv = [os.fspath(a) for a in argv]
    path = _resolve_program(argv[0], env)
    if cwd is not None and not os.path.isdir(cwd):
        raise AttachError(f"cannot run '{argv[0]}': working directory '{cwd}' does not exist")
    redirects = [(_fileno(fd), target) for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2))
                 if fd is not None]
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    envp = dict(os.environ if env is None else env)
    pid = os.fork()
    if pid == 0:  # child: async-signal-safe work only until exec
        try:
            os.close(go_w)
            os.close(err_r)
            if not os.read(go_r, 1):
                os._exit(127)  # the tracer died before it traced us: never run untraced
            for fd, target in redirects:
                os.dup2(fd, target)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            if cwd is not None:
                os.chdir(cwd)
            os.execve(path, argv, envp)
        except OSError as exc:
            os.write(err_w, str(exc.errno or errno.EINVAL).encode())
        finally:
            os._exit(127)
    os.close(go_r)
    os.close(err_w)
    try:
        binding.seize(pid, BASE_OPTIONS | PTRACE_O_EXITKILL)
    except BaseException as exc:  # a KeyboardInterrupt too: the child must not run
        os.close(go_w)
        os.close(err_r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if isinstance(exc, PtraceError):
            raise AttachError(f"cannot trace '{argv[0]}': {exc}") from None
        raise
    os.write(go_w, b"x")
    os.close(go_w)
    proc = Process(pid, spawned=True, argv0=os.path.basename(path))
    proc.child_of_tracer = True
    thread = proc.add_thread(pid)
    while True:
        _, raw = os.waitpid(pid, WALL)
        status = WaitStatus(raw)
        if not status.is_stop:
            failure = os.read(err_r, 64)
            os.close(err_r)
            reason = os.strerror(int(failure)) if failure else f"exited with status {raw:#x} before exec"
            raise AttachError(f"cannot run '{argv[0]}': {reason}")
        if status.kind is StopKind.EVENT and status.event == PTRACE_EVENT_EXEC:
            break
        if status.kind is StopKind.SIGNAL:
            binding.cont(pid, status.sig)
        elif status.kind is StopKind.GROUP_STOP:
            binding.listen(pid)
        else:
            binding.cont(pid, 0)
    os.close(err_r)
    thread.stopped = True
    return proc


def _tids(pid: int):
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()


def _status_field(pid: int, name: str) -> str:
    """A field of /proc/PID/status ("" if there is none, or no process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def _tracer_of(pid: int) -> int:
    return int(_status_field(pid, "TracerPid") or 0)


def attach(pid: int) -> Process:
    """PTRACE_SEIZE and PTRACE_INTERRUPT every thread of ``pid``, again and
    again until no new thread appears, and wait until each is stopped.

    On any failure every thread already seized is detached again, so a
    failed attach leaves the process as it was.
    """
    if not isinstance(pid, int) or pid <= 0:
        raise AttachError(f"cannot attach to pid {pid!r}: not a process id")
    if pid == os.getpid():
        raise AttachError(f"cannot attach to pid {pid}: that is the tracer itself")
    if not os.path.exists(f"/proc/{pid}"):
        raise AttachError(f"cannot attach to pid {pid}: no such process")
    tgid = int(_status_field(pid, "Tgid") or pid)
    if tgid != pid:
        raise AttachError(f"cannot attach to pid {pid}: it is a thread of process {tgid}, "
                          "which is what can be attached to")
    if _status_field(pid, "State").startswith("Z"):
        if _tids(pid) <= {pid}:
            raise AttachError(f"cannot attach to pid {pid}: it has exited (a zombie its "
                              "parent has not reaped)")
        raise AttachError(f"cannot attach to pid {pid}: its main thread has exited (the "
                          "others run on), and a process is attached through it")
    tracer = _tracer_of(pid)
    if tracer == threading.get_native_id():
        raise AttachError(f"cannot attach to pid {pid}: this tracer traces it already")
    if tracer:
        raise AttachError(f"cannot attach to pid {pid}: already traced by pid {tracer}")
    proc = Process(pid, spawned=False)
    try:
        while True:
            new = _tids(pid) - set(proc.threads)
            if not new:
                break
            for tid in sorted(new):
                try:
                    binding.seize(tid, BASE_OPTIONS)
                except PtraceError as exc:
                    if exc.errno == errno.ESRCH and tid != pid:
                        continue  # the thread exited meanwhile
                    if exc.errno == errno.EPERM and tid != pid and _tracer_of(tid) == threading.get_native_id():
                        proc.add_thread(tid)  # cloned by a seized thread: already ours
                        continue
                    raise
                proc.add_thread(tid)
                binding.interrupt(tid)
        if not proc.threads:
            raise AttachError(f"cannot attach to pid {pid}: no such process")
        while any(not t.stopped for t in proc.threads.values()):
            for thread in [t for t in proc.threads.values() if not t.stopped]:
                _wait_attached(proc, thread)
    except PtraceError as exc:
        _undo_attach(proc)
        if exc.errno == errno.ESRCH:
            raise AttachError(f"cannot attach to pid {pid}: no such process") from None
        if exc.errno == errno.EPERM:
            why = ("already traced" if _tracer_of(pid) else
                   "operation not permitted (another user's process, or kernel.yama.ptrace_scope)")
            raise AttachError(f"cannot attach to pid {pid}: {why}") from None
        raise AttachError(f"cannot attach to pid {pid}: {exc}") from None
    except BaseException:
        _undo_attach(proc)
        raise
    return proc


def _wait_attached(proc: Process, thread: Thread) -> None:
    while not thread.stopped:
        _, raw = os.waitpid(thread.tid, WALL)
        status = WaitStatus(raw)
        if not status.is_stop:
            del proc.threads[thread.tid]
            if thread.tid == proc.pid:
                raise PtraceError(errno.ESRCH, "PTRACE_INTERRUPT", proc.pid)
            return
        if status.kind is StopKind.SIGNAL:
            thread.pending_sig = status.sig
        elif status.kind is StopKind.GROUP_STOP:
            thread.group_stopped = True
        elif status.kind is StopKind.EVENT and status.event != PTRACE_EVENT_STOP:
            _adopt_during_attach(proc, thread, status.event)
            binding.cont(thread.tid, 0)
            continue
        thread.stopped = True


def _adopt_during_attach(proc: Process, thread: Thread, event: int) -> None:
    """A thread cloned while we attach is traced already (TRACECLONE): wait
    for it with the others.  A child forked meanwhile was traced too, with
    nothing of ours in it yet: let it go."""
    new = binding.geteventmsg(thread.tid)
    if event == PTRACE_EVENT_CLONE:
        proc.add_thread(new)
    elif event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK):
        while True:
            _, raw = os.waitpid(new, WALL)
            if WaitStatus(raw).is_stop or not os.path.exists(f"/proc/{new}"):
                break
        try:
            binding.detach(new, 0)
        except PtraceError:
            pass


def _undo_attach(proc: Process) -> None:
    for thread in list(proc.threads.values()):
        try:
            if not thread.stopped:
                binding.interrupt(thread.tid)
                _wait_attached(proc, thread)
            binding.detach(thread.tid, thread.pending_sig)
        except (PtraceError, OSError):
            pass
