"""The signals that end a tracer, held by the command line from its start.

``ptrace-raw`` must not die of SIGINT, SIGTERM or SIGHUP (a closed
terminal) with probes set in a process it attached to: their int3s would
stay and kill it.  ``Tracer.run`` handles them itself, between two stops;
at any other time the command line only records them, and acts on them at
its next safe point.  They are held from before its modules load, which
takes a few tenths of a second: a library that catches everything while it
loads (a bare ``except``) swallowed a KeyboardInterrupt raised there.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def catch_stop_signals(handler) -> dict:
    """Set ``handler`` for each stop signal not ignored; returns the
    handlers it replaced.  One the process was started ignoring (nohup's
    SIGHUP, SIGINT in a shell script's background job) stays ignored: the
    user asked for that, and a handler would also end the ignoring in the
    programs it starts, which exec resets to the default."""
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS
            if signal.getsignal(sig) is not signal.SIG_IGN}


class HeldSignals:
    """Records the stop signals that arrive (``signals``) until
    ``restore``; off the main thread, where no handler can be set, it
    records nothing and the signals act as before, and one ignored stays
    so (``catch_stop_signals``)."""

    def __init__(self):
        self.signals = []
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            self._old = catch_stop_signals(self._hold)

    def _hold(self, signum, frame) -> None:
        self.signals.append(signum)

    @property
    def first(self) -> int:
        """The first signal held, or 0."""
        return self.signals[0] if self.signals else 0

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def interruptible(self):
        """Ctrl-C raises KeyboardInterrupt for a while (a user's script runs
        so, and one stuck can be left); the other two stay held, as dying
        of them would leave the probes set."""
        if signal.SIGINT not in self._old:
            yield
            return
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, self._hold)
