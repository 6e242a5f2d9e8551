"""Waking the tracer's thread out of a blocking waitpid.

The run loop blocks in waitpid until a tracee stops; so does an injected
call until the code it runs returns.  A timeout (``run(timeout=)``, a
resolver that never returns), or ``stop`` called from another thread, has
to reach that thread where it waits: a signal with a handler that does
nothing makes the waitpid fail with EINTR, and the waiter looks at why.
"""

from __future__ import annotations

import signal
import threading

from . import _libc
from .held_signals import STOP_SIGNALS

#: the signal that wakes the tracer's thread blocked in waitpid
WAKE_SIGNAL = signal.SIGRTMAX - 3
_wake_installed = False


def install_wake_handler() -> None:
    """WAKE_SIGNAL interrupts waitpid on whichever thread waits;
    Python's own handlers cannot be installed from other threads."""
    global _wake_installed
    if not _wake_installed:
        _libc.set_harmless_handler(WAKE_SIGNAL)
        _wake_installed = True


class Waker(threading.Thread):
    """Wakes the thread ``owner`` blocked in waitpid once ``timeout``
    seconds have passed, and again every 50 ms until it notices and
    ``cancel``s (a wake-up that lands while it is busy between two waits
    is lost); ``fired`` says the time is up.  It blocks SIGINT, SIGTERM
    and SIGHUP so that the kernel hands those to a thread that can act on
    them, never to this one."""

    def __init__(self, owner: int, timeout: float):
        super().__init__(name="ptrace-raw waker", daemon=True)
        self.owner = owner
        self.timeout = timeout
        self.done = threading.Event()
        self.fired = False

    def run(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
        if self.done.wait(self.timeout):
            return
        self.fired = True
        while True:
            signal.pthread_kill(self.owner, WAKE_SIGNAL)
            if self.done.wait(0.05):
                return

    def cancel(self):
        self.done.set()
