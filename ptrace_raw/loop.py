"""The one blocking waitpid loop, serving every tracee and thread at once.

All ptrace calls happen on the thread that runs this loop (ptrace binds a
tracee to the thread that attached it).  Each stop is decoded once;
breakpoint traps and step completions go to the probe engine (``Engine``)
straight from the loop, as they are the hits; everything else is
dispatched here so that signals, group-stops, clones and exits behave
exactly as without a tracer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import sys
import threading
import time

from . import binding
from . import _libc
from ._libc import get_errno, wait_any as _wait_any, waitpid as _waitpid
from .consts import (
    PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC, PTRACE_EVENT_FORK, PTRACE_EVENT_STOP,
    PTRACE_EVENT_VFORK, PTRACE_EVENT_VFORK_DONE, PTRACE_SINGLESTEP, WALL, WNOTHREAD,
)
from .errors import PtraceError, TracerError
from .held_signals import catch_stop_signals  # end a run on the main thread, each tracee detached
from .process import Process
from .waitstatus import StopKind, WaitStatus
from .waker import Waker, install_wake_handler

_SIGTRAP_STOP = (signal.SIGTRAP << 8) | 0x7F
#: waitpid(-1) flags: every thread of every tracee (__WALL), but only the
#: tracees and children of the loop's own thread (__WNOTHREAD), so that a
#: program embedding the tracer keeps the exit statuses of the subprocesses
#: its other threads run
_ANY_OURS = WALL | WNOTHREAD


def _sigtrap_pending(tid: int) -> bool:
    """An unblocked SIGTRAP pending for the thread: an int3's trap not
    reported yet (the kernel unblocks the SIGTRAP it forces).  One the
    program blocks stays pending, and is no trap of ours to wait for."""
    fields = {}
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("SigPnd", "SigBlk"):
                    fields[key] = int(value, 16)
    except OSError:
        return False
    bit = 1 << (signal.SIGTRAP - 1)
    return bool(fields.get("SigPnd", 0) & bit and not fields.get("SigBlk", 0) & bit)


class Engine:
    """What the loop asks of the probe layer; this base does nothing, so a
    tracer without probes is a plain, transparent tracer."""

    @staticmethod
    def say(message: str) -> None:
        """Tell the user something that does not stop tracing."""
        print(f"ptrace-raw: {message}", file=sys.stderr)

    def on_new_process(self, proc: Process) -> None:
        """``proc`` is stopped (all threads) and traced: set its probes."""

    def on_exec(self, proc: Process) -> None:
        """The old image is gone; ``proc`` is stopped at its new entry."""

    def on_trap(self, thread) -> bool:
        """A SIGTRAP stop outside a step; True if it was ours and handled
        (the engine resumes the thread or leaves it stopped).  The loop
        marks the thread stopped and nothing more: the engine drops what
        the last stop read (``thread.stale()``, or as ``ProbeEngine.on_trap``
        does) before reading registers, so that a hit reads ip once."""
        thread.stale()
        return False

    def on_step(self, thread, resume: bool = True) -> None:
        """A single-step of ``thread.xol`` completed; with ``resume`` False
        (while detaching) the thread is left stopped once its instruction is
        done."""

    def on_signal(self, thread, sig: int) -> None:
        """A signal is about to be delivered to a thread that is not
        stepping (it stays pending in ``thread.pending_sig``)."""

    def on_signal_in_step(self, thread, sig: int) -> None:
        """A signal arrived while the thread was stepping a slot."""

    def on_trap_detaching(self, thread) -> bool:
        """A SIGTRAP stop met while detaching: if it is a probe hit, rewind
        the thread to the probe address (the original instruction will run
        once the int3 is gone) and return True."""
        return False

    def on_fork(self, forker, child: Process, follow: bool, vfork: bool) -> None:
        """``forker`` (a thread) forked ``child``, which is stopped;
        unfollowed children must be left exactly as if untraced before they
        are detached (a vfork child is traced silently until it execs)."""

    def on_vfork_done(self, thread) -> None:
        """``thread`` vforked, and its child no longer borrows its memory
        (it exec'd or exited); the thread has not returned from vfork yet."""

    def on_thread_gone(self, thread) -> None:
        """A thread exited or was killed."""

    def on_process_gone(self, proc: Process) -> None:
        """The whole process is gone, or no longer traced (detached, a
        child not followed, an image we cannot trace): forget it, as its
        pid may come back as another process."""

    def on_detach(self, proc: Process) -> None:
        """Every thread of ``proc`` is stopped: undo every change made to it."""

    def settle(self, thread) -> None:
        """During detach, a thread stopped by something else in the middle
        of its step: finish the step."""


class Loop:
    def __init__(self, engine: Engine = None, follow_forks: bool = False, pin_cpu: bool = True):
        self.engine = engine or Engine()
        self.follow_forks = follow_forks
        self.pin_cpu = pin_cpu
        self.processes = {}
        self.finished = []
        self._threads = {}
        self._early = {}
        self._silent = set()
        #: our own children we no longer trace (their setup failed): run()
        #: still waits for them, to reap them and record how they ended
        self._orphans = {}
        #: threads resumed during detach to take an int3 trap already pending
        self._awaiting_trap = set()
        #: while not None, followed children born stay stopped here
        #: (``children_held``)
        self._held_children = None
        self._status = ctypes.c_int()
        self._status_ref = ctypes.byref(self._status)
        self._stop_signal = 0
        self._stop_requested = False
        self._running = False
        #: wakers started by stop() from other threads, ended with the run;
        #: the lock makes "running" and "has a waker" change together
        self._stop_wakers = []
        self._run_lock = threading.Lock()
        self._owner = None
        #: waitpid reports served, and how many were SIGTRAP stops (int3
        #: hits, finished steps, returns through the trampoline)
        self.stops = 0
        self.trap_stops = 0

    # -- registry ------------------------------------------------------------
    def _adopt(self, proc: Process) -> Process:
        self.processes[proc.pid] = proc
        for tid, thread in proc.threads.items():
            self._threads[tid] = thread
        return proc

    # -- the loop --------------------------------------------------------------
    def _wait_failed(self) -> int:
        """After a blocking waitpid(-1) returned -1, through the binding that
        saves no errno: ask again, without blocking, through the one that
        does.  EINTR is how Ctrl-C and the timeout reach a loop blocked in
        waitpid (ctypes returns it to us; os.waitpid would retry); asked
        again, it finds nothing (0) or a stop come meanwhile (its pid,
        status in ``_status``).  ECHILD: every tracee is gone (0)."""
        while True:
            pid = _waitpid(-1, self._status_ref, _ANY_OURS | os.WNOHANG)
            if pid >= 0:
                return pid
            err = get_errno()
            if err == errno.ECHILD:
                self._forget_all()
                return 0
            if err != errno.EINTR:
                raise OSError(err, "waitpid")

    def run(self, timeout=None) -> bool:
        """Serve stops until every tracee is gone, ``timeout`` seconds pass,
        ``stop`` is called (then True is returned), or SIGINT/SIGTERM/SIGHUP
        arrives (then every tracee is detached, or killed if we spawned it,
        before returning)."""
        self._owner = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._stop_signal = 0
        restore = self._install_signals()
        unpin = self._pin() if self.pin_cpu else None
        timer = None
        if timeout is not None:
            install_wake_handler()
            timer = Waker(self._owner, timeout)
            timer.start()
        with self._run_lock:
            self._running = True
        status, status_ref = self._status, self._status_ref
        threads, on_trap, on_step = self._threads, self.engine.on_trap, self.engine.on_step
        try:
            for proc in list(self.processes.values()):
                for thread in list(proc.threads.values()):
                    if thread.stopped and thread.xol is None:
                        self._resume(thread)
            # ``while True`` with the test inside: CPython 3.11 specialises
            # a loop's body only once it has taken an unconditional
            # backward jump, and a test at the bottom compiles to a
            # conditional one, which left every hit's bytecode generic.
            while True:
                if not (self.processes or self._orphans) or self._stop_signal \
                        or self._stop_requested:
                    break
                pid = _wait_any(-1, status_ref, _ANY_OURS)
                if pid < 0:
                    pid = self._wait_failed()
                    if pid == 0:
                        if deadline is not None and time.monotonic() >= deadline:
                            break
                        continue
                self.stops += 1
                raw = status.value
                try:
                    thread = threads.get(pid)
                    if raw == _SIGTRAP_STOP and thread is not None:
                        # dispatch's first case, written out: every probe
                        # hit and every step completion comes here.
                        self.trap_stops += 1
                        if thread.xol is None:
                            thread.stopped = True
                            if not on_trap(thread):
                                self._foreign_trap(thread)
                        else:
                            thread.stale()
                            on_step(thread)
                    else:
                        self.dispatch(pid, raw)
                except OSError:
                    if not self._vanished(pid):
                        raise
                    # Killed mid-hit (SIGKILL does not wait for us): its
                    # exit status is on its way; nothing to undo in a
                    # process that no longer runs.
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            with self._run_lock:
                # under the lock: a stop() from another thread after it is
                # for the next run
                self._running = False
                stopped = self._stop_requested
                self._stop_requested = False
                for waker in self._stop_wakers:
                    waker.cancel()
                self._stop_wakers.clear()
            if timer is not None:
                timer.cancel()
            if unpin is not None:
                unpin()
            restore()
        if self._stop_signal:
            self.detach(kill_spawned=True)
        return stopped

    def stop(self) -> None:
        """End the current ``run`` (or the next one, if none is running)
        after the stop being served; the tracees stay traced until
        ``detach``.  Callable from a handler, or from another thread: a loop
        blocked in waitpid is woken, as ``run(timeout)`` wakes it."""
        self._stop_requested = True
        with self._run_lock:
            if not self._running or self._owner == threading.get_ident():
                return
            install_wake_handler()
            waker = Waker(self._owner, 0)
            self._stop_wakers.append(waker)
            waker.start()

    @property
    def stopped_by(self) -> int:
        """The signal (SIGINT/SIGTERM/SIGHUP) that ended the last ``run``, or 0."""
        return self._stop_signal

    @staticmethod
    def _pin():
        """Keep the loop's thread on the CPU it runs on now.  Each stop wakes
        the tracer and each resume wakes the tracee; on a VM a wake-up across
        CPUs costs several times one on the same CPU, and a tracer that stays
        put lets the scheduler wake a single-threaded tracee next to it.
        The tracee's own affinity is never touched."""
        try:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {_libc.sched_getcpu()})
        except OSError:
            return None
        return lambda: os.sched_setaffinity(0, before)

    def _install_signals(self):
        """On the main thread, SIGINT, SIGTERM and SIGHUP (a closed
        terminal) end the loop cleanly: the handler only records the
        signal, the interrupted waitpid returns EINTR, and the loop detaches
        between two stops, never mid-hit.  One ignored stays ignored: under
        nohup, a closed terminal ended the trace."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum, frame):
            self._stop_signal = signum

        old = catch_stop_signals(on_signal)

        def restore():
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return restore

    def dispatch(self, tid: int, raw: int) -> None:
        thread = self._threads.get(tid)
        if raw == _SIGTRAP_STOP and thread is not None:
            self.trap_stops += 1
            if thread.xol is not None:
                thread.stale()
                self.engine.on_step(thread)
                return
            thread.stopped = True
            if not self.engine.on_trap(thread):
                self._foreign_trap(thread)
            return
        if thread is None:
            orphan = self._orphans.pop(tid, None)
            if orphan is None:
                self._early[tid] = raw
                return
            status = WaitStatus(raw)
            if status.kind is StopKind.EXITED:
                orphan.exit_code = status.code
            else:
                orphan.exit_signal = status.sig
            self.finished.append(orphan)
            return
        status = WaitStatus(raw)
        kind = status.kind
        if kind is StopKind.EXITED or kind is StopKind.KILLED:
            self._thread_gone(thread, status)
            return
        thread.stale()
        if kind is StopKind.SIGNAL:
            if thread.xol is not None:
                self.engine.on_signal_in_step(thread, status.sig)
                return
            thread.signal_stop(status.sig)
            self.engine.on_signal(thread, status.sig)
            self._resume(thread)
        elif kind is StopKind.GROUP_STOP:
            thread.group_stopped = True
            self._resume(thread)
        elif kind is StopKind.EVENT:
            self._event(thread, status.event)
        else:
            self._resume(thread)

    def _foreign_trap(self, thread) -> None:
        """A SIGTRAP that is not ours (the program's own int3, or a kill):
        the program gets it, as it would untraced."""
        thread.signal_stop(signal.SIGTRAP)
        self._resume(thread)

    def _vanished(self, tid: int) -> bool:
        """Whether ``tid`` can no longer be ptraced: it died under us."""
        thread = self._threads.get(tid)
        if thread is None:
            return True
        try:
            binding.peekuser(tid, 0)
        except PtraceError as exc:
            if exc.gone:
                thread.stopped = False
                thread.xol = None
                return True
        return False

    def _resume(self, thread) -> None:
        """Resume a thread after a stop the engine had no part in.  One in
        the middle of a step (a group-stop came, then SIGCONT) takes the
        step up again: continued, it would run on out of its slot.  Unless
        the step ran before the group-stop took the thread: its trap is
        queued, and comes at once when the thread is continued.  Stepped
        again, it has the trap flag set anew, which the kernel clears at
        the next continue only if it set the flag itself; when the step
        that ran was a popf, it did not (a popf may set the flag for the
        program, ``is_setting_trap_flag``), so the flag stayed: the thread
        trapped after the step, and the program died of that SIGTRAP."""
        try:
            if thread.xol is not None and not thread.group_stopped \
                    and not _sigtrap_pending(thread.tid):
                thread.resume(request=PTRACE_SINGLESTEP)
            else:
                thread.resume()
        except PtraceError as exc:
            if not exc.gone:
                raise

    def _event(self, thread, event: int) -> None:
        if event == PTRACE_EVENT_EXEC:
            self._exec(thread)
            return
        new = self._birth(thread, event)
        if new is not None and new.stopped:
            self._resume(new)
        self._resume(thread)

    def _birth(self, thread, event: int):
        """Take in the thread or process a CLONE/FORK/VFORK event announces
        (or the end of a vfork); returns the new thread of a CLONE
        (stopped), None otherwise."""
        if event == PTRACE_EVENT_VFORK_DONE:
            self.engine.on_vfork_done(thread)
            return None
        if event == PTRACE_EVENT_CLONE:
            new_tid = binding.geteventmsg(thread.tid)
            new = thread.process.add_thread(new_tid)
            self._threads[new_tid] = new
            self._start_child(new_tid)
            return new
        if event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK):
            self._fork(thread, binding.geteventmsg(thread.tid), event == PTRACE_EVENT_VFORK)
        return None

    def _start_child(self, tid: int) -> None:
        """A new thread or process starts in a stop of its own, which may
        have been reported before its parent's event; collect it, then run."""
        raw = self._early.pop(tid, None)
        if raw is None:
            while True:
                got = _waitpid(tid, self._status_ref, WALL)
                if got == tid or get_errno() != errno.EINTR:
                    break
            raw = self._status.value if got == tid else None
        child = self._threads[tid]
        if raw is None:
            self._thread_gone(child, None)
            return
        status = WaitStatus(raw)
        if not status.is_stop:
            self._thread_gone(child, status)
            return
        child.stopped = True
        if status.kind is StopKind.SIGNAL and status.sig != signal.SIGSTOP:
            child.pending_sig = status.sig
        if not (status.kind is StopKind.EVENT and status.event == PTRACE_EVENT_STOP) \
                and status.kind is not StopKind.SIGNAL:
            child.pending_sig = 0

    def _fork(self, parent_thread, child_pid: int, vfork: bool) -> None:
        parent = parent_thread.process
        child = Process(child_pid, spawned=parent.spawned, argv0=parent.argv0)
        thread = child.add_thread(child_pid)
        self._threads[child_pid] = thread
        self.processes[child_pid] = child
        self._start_child(child_pid)
        if child_pid not in self._threads:
            return
        follow = self.follow_forks
        if vfork and not follow:
            # The child borrows the parent's memory, int3s included, until it
            # execs or exits: trace it silently for that window.
            self._silent.add(child_pid)
            child.silent = True
        self.engine.on_fork(parent_thread, child, follow, vfork)
        if follow or vfork:
            if self._held_children is not None:
                self._held_children.append(thread)
            else:
                self._resume(thread)
        else:
            self._release(child)

    @contextlib.contextmanager
    def children_held(self):
        """Followed children forked meanwhile stay stopped until the end.
        For a change to the probes: stopping a process to change it serves
        the forks its threads have pending, and such a child, which copies
        its parent's probes as they were, must get the change before it
        runs."""
        outer = self._held_children is not None
        if not outer:
            self._held_children = []
        try:
            yield
        finally:
            if not outer:
                held, self._held_children = self._held_children, None
                for thread in held:
                    if self._threads.get(thread.tid) is thread and thread.stopped:
                        self._resume(thread)

    def _exec(self, thread) -> None:
        proc = thread.process
        # Whichever thread called execve now carries the leader's tid; every
        # other thread is gone.
        for tid in list(proc.threads):
            if tid != proc.pid:
                self._threads.pop(tid, None)
                del proc.threads[tid]
        leader = proc.add_thread(proc.pid)
        self._threads[proc.pid] = leader
        leader.new_image()
        proc.memory.reopen()
        if proc.pid in self._silent:
            self._silent.discard(proc.pid)
            self._release(proc)
            return
        try:
            self.engine.on_exec(proc)
        except TracerError as exc:
            # One image we cannot trace (a seccomp filter refusing our
            # mmap, say) must not end the tracing of the others.
            self.engine.say(f"pid {proc.pid} runs on untraced: {exc}")
            self._release(proc)
            if proc.child_of_tracer:
                self._orphans[proc.pid] = proc
            return
        self._resume(leader)

    def _release(self, proc: Process) -> None:
        """Detach a stopped process we do not follow."""
        for thread in list(proc.threads.values()):
            try:
                thread.flush_regs()
                thread.release_held()
                binding.detach(thread.tid, thread.take_signal())
            except PtraceError as exc:
                if not exc.gone:
                    raise
            self._threads.pop(thread.tid, None)
        proc.memory.close()
        self.processes.pop(proc.pid, None)
        self.engine.on_process_gone(proc)

    def _thread_gone(self, thread, status) -> None:
        proc = thread.process
        self._threads.pop(thread.tid, None)
        proc.threads.pop(thread.tid, None)
        self.engine.on_thread_gone(thread)
        if thread.tid == proc.pid:
            if status is not None and status.kind is StopKind.EXITED:
                proc.exit_code = status.code
            elif status is not None:
                proc.exit_signal = status.sig
            else:
                proc.exit_code = -1
            for tid in list(proc.threads):
                self._threads.pop(tid, None)
            proc.threads.clear()
            proc.memory.close()
            self.processes.pop(proc.pid, None)
            self._silent.discard(proc.pid)
            self.finished.append(proc)
            self.engine.on_process_gone(proc)

    def _forget_all(self) -> None:
        for proc in list(self.processes.values()):
            for thread in list(proc.threads.values()):
                self._thread_gone(thread, None)

    # -- stopping and detaching ----------------------------------------------------
    def stop_all(self, proc: Process) -> None:
        """Bring every thread of ``proc`` into a ptrace-stop at an
        instruction boundary of the original program, serving whatever
        stops arrive meanwhile."""
        while True:
            waiting = [t for t in proc.threads.values() if not t.stopped or t.xol is not None]
            if not waiting:
                return
            for thread in waiting:
                if thread.stopped and thread.xol is not None:
                    self.engine.settle(thread)
            waiting = [t for t in proc.threads.values() if not t.stopped]
            if not waiting:
                continue
            for thread in waiting:
                # A stepping thread's step ends with a stop of its own,
                # unless a group-stop holds it (LISTEN) until SIGCONT.
                if (thread.xol is None or thread.listening) \
                        and thread.tid not in self._awaiting_trap:
                    # Repeated interrupts coalesce; one may have been used
                    # up by a stop that resumed the thread again.
                    try:
                        binding.interrupt(thread.tid)
                    except PtraceError as exc:
                        if not exc.gone:
                            raise
            thread = waiting[0]
            got = _waitpid(thread.tid, self._status_ref, WALL)
            if got != thread.tid:
                if get_errno() == errno.EINTR:
                    continue
                self._thread_gone(thread, None)
                continue
            self._settle_stop(thread, self._status.value)
            if proc.pid not in self.processes:
                return

    def _settle_stop(self, thread, raw: int) -> None:
        self._awaiting_trap.discard(thread.tid)
        status = WaitStatus(raw)
        if not status.is_stop:
            self._thread_gone(thread, status)
            return
        thread.stale()
        if status.kind is StopKind.SIGNAL:
            if thread.xol is not None and status.sig == signal.SIGTRAP:
                self.engine.on_step(thread, resume=False)
            elif thread.xol is not None:
                self.engine.on_signal_in_step(thread, status.sig)
            elif status.sig == signal.SIGTRAP and self.engine.on_trap_detaching(thread):
                pass
            else:
                thread.signal_stop(status.sig)
                self.engine.on_signal(thread, status.sig)
        elif status.kind is StopKind.GROUP_STOP:
            thread.group_stopped = True
        elif status.kind is StopKind.EVENT and status.event == PTRACE_EVENT_STOP:
            if _sigtrap_pending(thread.tid):
                # The interrupt overtook an int3 that already trapped: ip is
                # one byte into the probed instruction.  Let the trap come
                # so it can be rewound before the int3 goes away.
                self._awaiting_trap.add(thread.tid)
                self._resume(thread)
        elif status.kind is StopKind.EVENT:
            if status.event == PTRACE_EVENT_EXEC:
                self._exec(thread)
                return
            self._birth(thread, status.event)

    def detach(self, kill_spawned: bool = False) -> None:
        """Leave every tracee running untraced, exactly where it was, with
        pending signals delivered (or kill the ones we spawned)."""
        while self.processes:
            # A fork met while stopping one process adds another: go on
            # until none is left.
            proc = next(iter(self.processes.values()))
            if kill_spawned and proc.spawned:
                self._kill(proc)
            else:
                self.detach_process(proc)

    def detach_process(self, proc: Process) -> None:
        self.stop_all(proc)
        if proc.pid not in self.processes:
            return
        self.engine.on_detach(proc)
        self._release(proc)

    def _kill(self, proc: Process) -> None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while proc.pid in self.processes:
            pid = _wait_any(-1, self._status_ref, _ANY_OURS)
            if pid < 0:
                pid = self._wait_failed()
            if pid > 0:
                thread = self._threads.get(pid)
                if thread is not None and thread.process is proc:
                    status = WaitStatus(self._status.value)
                    if not status.is_stop:
                        self._thread_gone(thread, status)
                else:
                    self.dispatch(pid, self._status.value)
