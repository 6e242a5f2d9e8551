"""The errors a user of the tracer can meet.

Every error a user can cause (a bad pid, a bad probe spec, a program that is
not there) is a ``TracerError`` whose message is one line naming the input,
so the CLI prints it as is and never a traceback.
"""

from __future__ import annotations

import errno as _errno
import os


class TracerError(Exception):
    """Base of every error the tracer reports to a user."""


class PtraceError(TracerError, OSError):
    """A ptrace-family call failed; names the request, the pid and errno."""

    def __init__(self, err: int, request: str, pid: int):
        OSError.__init__(self, err, f"{request}({pid}): {os.strerror(err)}")
        self.request = request
        self.pid = pid

    def __str__(self):
        return f"{self.request} on pid {self.pid} failed: {os.strerror(self.errno)}"

    @property
    def gone(self) -> bool:
        """The thread no longer exists (or is no longer ours to stop)."""
        return self.errno == _errno.ESRCH


class ProcessGone(TracerError):
    """The traced process or thread died while we worked on it."""


class AttachError(TracerError):
    """A process cannot be spawned or attached; the message says why."""


class ProbeError(TracerError):
    """A probe spec cannot be set: bad syntax, unknown symbol, refused site."""


class SpecError(ProbeError):
    """A probe spec that does not parse: a usage error, whatever the files."""
