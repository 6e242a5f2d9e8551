"""The raw waitpid status as a typed value (after rr's WaitStatus).

Decoding once, here, keeps bit-twiddling out of the loop and gives each kind
of stop a name the loop can dispatch on.
"""

from __future__ import annotations

import signal
from enum import Enum

from .consts import PTRACE_EVENT_STOP


class StopKind(Enum):
    EXITED = "exited"
    KILLED = "killed by signal"
    SIGNAL = "signal-delivery stop"
    GROUP_STOP = "group-stop"
    EVENT = "ptrace event stop"
    SYSCALL = "syscall stop"


_GROUP_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})


class WaitStatus:
    """One waitpid result for one thread.

    ``kind`` says what happened; ``sig`` is the stop or killing signal,
    ``event`` the PTRACE_EVENT_* of an event stop (PTRACE_EVENT_STOP for a
    PTRACE_INTERRUPT stop), ``code`` the exit code.
    """

    __slots__ = ("raw", "kind", "sig", "event", "code")

    def __init__(self, raw: int):
        self.raw = raw
        self.sig = 0
        self.event = 0
        self.code = 0
        low = raw & 0x7F
        if low == 0:
            self.kind = StopKind.EXITED
            self.code = (raw >> 8) & 0xFF
        elif (raw & 0xFF) == 0x7F:
            sig = (raw >> 8) & 0xFF
            event = raw >> 16
            if event == PTRACE_EVENT_STOP and sig in _GROUP_STOP_SIGNALS:
                self.kind = StopKind.GROUP_STOP
            elif event:
                self.kind = StopKind.EVENT
                self.event = event
            elif sig == (signal.SIGTRAP | 0x80):
                self.kind = StopKind.SYSCALL
                sig = signal.SIGTRAP
            else:
                self.kind = StopKind.SIGNAL
            self.sig = sig
        else:
            self.kind = StopKind.KILLED
            self.sig = low

    @property
    def is_stop(self) -> bool:
        return self.kind not in (StopKind.EXITED, StopKind.KILLED)

    def __repr__(self):
        extra = {StopKind.EXITED: f" code={self.code}",
                 StopKind.EVENT: f" event={self.event} sig={self.sig}"}.get(
            self.kind, f" sig={self.sig}")
        return f"<WaitStatus {self.kind.value}{extra}>"
