"""The public entry point: ``Tracer`` owns the loop, its tracees and probes.

    with Tracer() as t:
        proc = t.spawn(["./app"])
        @t.probe("uprobe:./app:compute")
        def on_compute(hit):
            print(hit.tid, hit.arg(0))
        t.run()

Leaving the ``with`` block (normally, by an exception or Ctrl-C) detaches
from every tracee still alive, or kills the ones it spawned when the exit is
an interruption, so no process is ever left stopped or patched.
"""

from __future__ import annotations

from typing import Optional

from . import process as _process
from .loop import Engine, Loop


class Tracer(Loop):
    """One tracer: one loop on the calling thread, any number of tracees.

    ``follow_forks``: trace children of fork/vfork/clone-without-CLONE_VM
    (like ``strace -f``); off by default, as in strace, and then a forked
    child is cleaned of every probe and detached before it runs.
    ``fatal_errors``: a handler's exception stops tracing instead of being
    reported and ignored.
    ``on_message(text)``: where warnings and notes go (a handler that
    raised, skipped instructions, the sites of a line probe); stderr by
    default, one line each prefixed ``ptrace-raw:``.
    ``pin_cpu``: keep the tracer's thread on one CPU while ``run`` serves
    stops (restored after), which halves the cost of a hit on VMs where
    cross-CPU wake-ups are dear; the tracees' affinity is left alone.
    ``debug_dirs``: where the separate debug files of stripped programs and
    libraries are looked for, by build ID and by .gnu_debuglink (gdb's
    ``set debug-file-directory``): directories, or one string of them
    separated by colons; /usr/lib/debug by default.
    """

    def __init__(self, follow_forks: bool = False, fatal_errors: bool = False,
                 engine: Optional[Engine] = None, pin_cpu: bool = True, on_message=None,
                 debug_dirs=None):
        if engine is None:
            from .probes import ProbeEngine
            engine = ProbeEngine(self, fatal_errors=fatal_errors, on_message=on_message,
                                 debug_dirs=debug_dirs)
        super().__init__(engine, follow_forks, pin_cpu)

    # -- tracees ---------------------------------------------------------------
    def spawn(self, argv, env=None, cwd=None, stdin=None, stdout=None, stderr=None):
        """Start ``argv`` traced; it is stopped before its first instruction
        until ``run``.  stdin/stdout/stderr pass through unless given (a file
        object or descriptor)."""
        proc = self._adopt(_process.spawn(argv, env, cwd, stdin, stdout, stderr))
        self.engine.on_new_process(proc)
        return proc

    def attach(self, pid: int):
        """Trace a running process (every thread, and threads it creates);
        it is stopped until ``run``."""
        proc = self._adopt(_process.attach(pid))
        self.engine.on_new_process(proc)
        return proc

    # -- probes ----------------------------------------------------------------
    def probe(self, spec: str, **options):
        """Decorator form of ``add_probe``."""
        def register(handler):
            self.add_probe(spec, handler, **options)
            return handler
        return register

    def add_probe(self, spec: str, handler=None, **options):
        """Set a probe in every tracee it applies to (now and later); returns
        the probe.  Call before ``run`` or from a handler."""
        return self.engine.add_probe(spec, handler, **options)

    def check_probe(self, spec: str, pids=(), bits: Optional[int] = None) -> None:
        """Raise ProbeError if ``spec`` cannot be set, as far as its file
        tells without touching a tracee; a library it names is also looked
        for among the files mapped by the processes ``pids``, and is the
        one of ``bits`` (32 for a 32-bit program about to be spawned; by
        default the bitness of ``pids``, or 64).  A tool that attaches
        checks every spec first: attaching and setting probes map areas
        for the tracer's code in the process, which stay after detach, so a
        bad spec found then leaves it not quite as it was."""
        self.engine.check_probe(spec, pids, bits)

    def remove_probe(self, probe) -> None:
        """Remove a probe ``add_probe`` made, or a counter, recorder or
        histogram (which keeps what it has gathered)."""
        hook = next((h for h in self.engine.hooks if probe in h.probes), None)
        if hook is not None:
            hook.remove(probe)
        else:
            self.engine.remove_probe(probe)

    @property
    def probes(self):
        return list(self.engine.probes)

    # -- inline probes ---------------------------------------------------------
    def count(self, spec: str):
        """A counter of ``spec``'s hits kept inside the tracee (no stop per
        hit); ``.value`` reads it live."""
        return self._inline().count(spec)

    def record(self, spec: str, args: int = 0, capacity: int = 4096):
        """(tid, first ``args`` arguments) of every hit, written to a ring in
        the tracee; iterate the recorder to take what has arrived, and
        ``.lost`` counts hits that found the ring full."""
        return self._inline().record(spec, args, capacity)

    def latency(self, spec: str):
        """A log2 histogram of a function's duration, timed inside the
        tracee; ``.buckets`` maps each bucket's lower bound in ns to a count."""
        return self._inline().latency(spec)

    def _inline(self):
        from .inline import InlineProbes
        hook = next((h for h in self.engine.hooks if isinstance(h, InlineProbes)), None)
        if hook is None:
            hook = InlineProbes(self)
            self.engine.hooks.append(hook)
        return hook

    # -- lifetime --------------------------------------------------------------
    def close(self, kill_spawned: bool = False) -> None:
        self.detach(kill_spawned=kill_spawned)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(kill_spawned=exc_type is not None and issubclass(exc_type, KeyboardInterrupt))
        return False
