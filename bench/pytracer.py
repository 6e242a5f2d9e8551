"""The Python tracer (``py``) as a harness runner, measured like ``ref``.

What is measured matches ``bench/ref_tracer.c``:

* ns/hit: the tracer-side monotonic time of the first hit and of the last,
  taken in the handler (``hit.time_ns`` is ``time.monotonic_ns()`` read when
  the engine builds the Hit, before the handler runs); start-up (spawn, ELF
  loading, probe insertion, the loader's own stops) and exit are outside it.
* hits: handler calls.  For ``return`` a hit is a *return* (the uretprobe
  handler); the entry probe is set too, with no handler, as a user setting
  ``uprobe:F`` + ``uretprobe:F`` without caring about the entry would.
* stops: the ptrace stops of the hit path.  ``t.stops`` counts every
  waitpid report the loop serves, which also includes reports the reference
  does not count (its loop has no loader hook, and it does not count clone
  events, new threads' first stops or exits).  So the runner reports
  ``t.trap_stops`` (SIGTRAP stops: int3 hits, step completions and
  trampoline returns, exactly the set ref counts) from the first hit's on.
  The raw ``t.stops`` total is returned too.
* checksum: parsed from the tracee's stdout (a pipe).
* args: the handler reads a, b (``hit.arg``) and the C string
  (``hit.read_cstring``) and sums a + b + strlen(s) like ref's ``-A``.

Placement: the tracer pins its own thread before spawning (the tracee
inherits it until exec) and then the tracee and every task it has, so
threads the tracee creates inherit the tracee's CPU.  The caller's affinity
is restored afterwards.

USDT: if ``add_probe`` refuses ``usdt:BIN:ptrace_raw_bench:tick`` with
ProbeError, the runner probes ``uprobe:BIN:0xADDR`` at the marker's link-time
address instead; ``LAST_INFO['usdt_fallback']`` says which was used.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from typing import Dict

from bench import harness
from ptrace_raw.errors import ProbeError
from ptrace_raw.tracer import Tracer

_SIGTRAP_STOP = (signal.SIGTRAP << 8) | 0x7F
_U64 = (1 << 64) - 1

#: facts about the last run that are not in a Measurement (raw t.stops, USDT
#: spec used); read by the benchmark for extra_info
LAST_INFO: Dict[str, object] = {}


def _pin_tree(pid: int, cpu: int) -> None:
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        tids = [pid]
    for tid in tids:
        os.sched_setaffinity(tid, {cpu})


class _Counter:
    """Hit count and the first/last hit times; the handler is the hot path,
    so it does only what ref does at a hit: count and stamp."""

    __slots__ = ("hits", "first_ns", "last_ns", "args_sum", "traps_before")

    def __init__(self):
        self.hits = 0
        self.first_ns = 0
        self.last_ns = 0
        self.args_sum = 0
        #: SIGTRAP stops served before the first hit's own (-1: no hit yet)
        self.traps_before = -1


@contextlib.contextmanager
def placed_tracee(run: harness.Run, who: str):
    """A tracer and the run's tracee, spawned with its stdout on a pipe and
    both placed as the run says; yields (tracer, process, output).  Once
    the body is done, the tracee must have exited 0, and ``output`` gets the
    checksum it printed.  The caller's affinity is restored either way."""
    old_affinity = os.sched_getaffinity(0)
    out_r, out_w = os.pipe()
    output: Dict[str, int] = {}
    try:
        if run.tracer_cpu is not None:
            os.sched_setaffinity(0, {run.tracer_cpu})
        with Tracer(fatal_errors=True) as t:
            proc = t.spawn(run.argv, stdout=out_w)
            os.close(out_w)
            out_w = -1
            if run.tracee_cpu is not None:
                _pin_tree(proc.pid, run.tracee_cpu)
            yield t, proc, output
            if proc.exit_code != 0:
                raise RuntimeError(f"{who}: tracee exited with {proc.exit_code} "
                                   f"(signal {proc.exit_signal})")
    finally:
        if out_w >= 0:
            os.close(out_w)
        os.sched_setaffinity(0, old_affinity)
        text = _read_all(out_r)
    m = re.search(r"checksum=(\d+)", text)
    if not m:
        raise RuntimeError(f"{who}: tracee printed no checksum: {text!r}")
    output["checksum"] = int(m.group(1))


def run_py(run: harness.Run) -> harness.Measurement:
    case = run.case
    binary = run.argv[0]
    c = _Counter()

    # The first handler call comes at the entry's trap, or for ``return``
    # at the trap of the first return, one trap after its entry's.
    own_traps = 2 if case.scheme == "return" else 1

    def first_hit(hit):
        c.first_ns = hit.time_ns
        c.traps_before = t.trap_stops - own_traps

    def on_hit(hit):
        c.last_ns = hit.time_ns
        if not c.hits:
            first_hit(hit)
        c.hits += 1

    def on_args(hit):
        c.last_ns = hit.time_ns
        if not c.hits:
            first_hit(hit)
        c.hits += 1
        c.args_sum += hit.arg(0) + hit.arg(1) + len(hit.read_cstring(hit.arg(2), 64))

    info: Dict[str, object] = {}
    with placed_tracee(run, "py") as (t, proc, output):
        handler = on_args if run.read_args else on_hit
        if case.scheme == "return":
            t.add_probe(f"uprobe:{binary}:{run.symbol}", None)
            t.add_probe(f"uretprobe:{binary}:{run.symbol}", handler)
        elif run.symbol is None:
            try:
                t.add_probe(f"usdt:{binary}:ptrace_raw_bench:tick", handler)
                info["usdt_fallback"] = False
            except ProbeError as exc:
                info["usdt_fallback"] = True
                info["usdt_error"] = str(exc)
                t.add_probe(f"uprobe:{binary}:{run.address:#x}", handler)
        else:
            t.add_probe(f"uprobe:{binary}:{run.symbol}", handler)
        t.run()
        if t.engine.errors:
            raise RuntimeError(f"py: handler errors: {t.engine.errors[:3]}")
        info["loop_stops"] = t.stops
        stops = t.trap_stops - c.traps_before if c.traps_before >= 0 else 0
    LAST_INFO.clear()
    LAST_INFO.update(info)
    return harness.Measurement(hits=c.hits, stops=stops, elapsed_ns=c.last_ns - c.first_ns,
                               checksum=output["checksum"], args_sum=c.args_sum & _U64)



def _read_all(fd: int) -> str:
    chunks = []
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


harness.register_tracer("py", run_py)
