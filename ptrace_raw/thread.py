"""One traced thread: its registers for the current stop and how it resumes.

Registers are fetched at most once per stop into a struct allocated once per
thread, and written back only if someone changed them: GETREGS and SETREGS
are each a syscall on the hit path.
"""

from __future__ import annotations

import ctypes

import arch as _arch

from . import binding
from ._libc import ptrace as _ptrace
from .consts import PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS
from .structs import UserRegs


class Thread:
    __slots__ = ("tid", "process", "regs", "_regs_ref", "regs_fresh", "regs_dirty",
                 "stopped", "group_stopped", "pending_sig", "xol", "held_signals",
                 "returns", "__weakref__")

    def __init__(self, tid: int, process):
        self.tid = tid
        self.process = process
        self.regs = UserRegs()
        self._regs_ref = ctypes.byref(self.regs)
        self.regs_fresh = False
        self.regs_dirty = False
        #: in a ptrace-stop we have not resumed from yet
        self.stopped = False
        #: stopped in a group-stop: resume with LISTEN, not CONT
        self.group_stopped = False
        #: signal to deliver when the thread resumes
        self.pending_sig = 0
        #: the probe engine's per-thread step state (None when not stepping)
        self.xol = None
        #: signals that arrived while stepping, delivered after the step
        self.held_signals = []
        #: return-probe instances, innermost last
        self.returns = []

    def get_regs(self) -> UserRegs:
        if not self.regs_fresh:
            if _ptrace(PTRACE_GETREGS, self.tid, None, self._regs_ref) == -1:
                raise binding.failure(PTRACE_GETREGS, self.tid)
            self.regs_fresh = True
        return self.regs

    def release_held(self) -> None:
        """Deliver the signals held while the thread was busy (a step, an
        injected syscall): the first with the next resume, the others queued
        to the thread again."""
        held = self.held_signals
        if not held:
            return
        if not self.pending_sig:
            self.pending_sig = held.pop(0)
        for sig in held:
            binding.tgkill(self.process.pid, self.tid, sig)
        held.clear()

    def mark_regs_dirty(self) -> None:
        self.regs_dirty = True

    @property
    def arch(self) -> _arch.Arch:
        """Decided per stop from the code segment: a far jump can switch it."""
        return _arch.for_regs(self.get_regs())

    def flush_regs(self) -> None:
        """Write changed registers back; the thread stays stopped."""
        if self.regs_dirty:
            binding.setregs(self.tid, self._regs_ref)
            self.regs_dirty = False

    def _flush(self) -> None:
        self.flush_regs()
        self.regs_fresh = False
        self.stopped = False

    def resume(self) -> None:
        """Continue from the current stop, delivering any pending signal.
        The hit path ends here on every hit: calls go to ptrace directly."""
        tid = self.tid
        if self.regs_dirty:
            if _ptrace(PTRACE_SETREGS, tid, None, self._regs_ref) == -1:
                raise binding.failure(PTRACE_SETREGS, tid)
            self.regs_dirty = False
        self.regs_fresh = False
        self.stopped = False
        if self.group_stopped:
            self.group_stopped = False
            binding.listen(tid)
            return
        sig = self.pending_sig
        if sig:
            self.pending_sig = 0
        if _ptrace(PTRACE_CONT, tid, None, sig) == -1:
            raise binding.failure(PTRACE_CONT, tid)

    def singlestep(self) -> None:
        self._flush()
        binding.singlestep(self.tid, 0)

    def __repr__(self):
        return f"<Thread {self.tid} of {self.process.pid}>"
