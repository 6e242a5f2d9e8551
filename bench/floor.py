"""The floor (``floor``): what a one-stop hit costs a Python tracer that
does nothing but the hit's system calls through the same ctypes bindings.

The issue's one-stop target is a ratio to the C reference, and the
ctypes calls alone take part of it: this runner measures how much, in
the same run as ``py`` and ``ref``.  It sets up exactly as ``py`` does
(``Tracer.spawn``, ``add_probe``, the loader's stops served by the
tracer), then serves the probe's hits in a loop of its own: waitpid,
PEEKUSER of ip, a clock read and a count (what ``py``'s bench handler
does), POKEUSER of the boosted slot's address unless the site goes on in
place, CONT.  Every other stop goes to ``Tracer.dispatch``.  No handler,
no Hit, no thread state: the difference between ``py`` and ``floor`` is
the tracer's own Python, and ``floor`` over ``ref`` what ctypes and the
interpreter cost before a tracer does anything.

It serves one-stop cases that a site's ``goto`` answers (boosted,
skipped or in place) and whose handler reads nothing.
"""

from __future__ import annotations

import ctypes
import os
import time

from bench import harness, pytracer
from ptrace_raw import _libc
from ptrace_raw.consts import PTRACE_CONT, PTRACE_PEEKUSER, PTRACE_POKEUSER, WALL, WNOTHREAD
from ptrace_raw.thread import IP_OFFSET

_SIGTRAP_STOP = 0x57F


def serves(case: harness.Case) -> bool:
    return case.stops == 1 and case.scheme in ("boost", "emulate") and not case.read_args


def run_floor(run: harness.Run) -> harness.Measurement:
    if not serves(run.case):
        raise ValueError(f"floor: no loop of its own for case {run.case.name}")
    hits = first = last = 0
    with pytracer.placed_tracee(run, "floor") as (t, proc, output):
        spec = (f"usdt:{run.argv[0]}:ptrace_raw_bench:tick" if run.symbol is None
                else f"uprobe:{run.argv[0]}:{run.symbol}")
        probe = t.add_probe(spec, None)
        site = next(s for s in proc.probe_state.bps.sites.values() if probe in s.entry)
        if site.goto_arg is None:
            raise RuntimeError(f"floor: {spec} is not boosted, skipped or in place")
        addr, slot = site.addr, None if site.in_place else site.goto_arg
        if run.tracer_cpu is None:
            os.sched_setaffinity(0, {_libc.sched_getcpu()})
        for thread in list(proc.threads.values()):
            if thread.stopped:
                thread.resume()
        status = ctypes.c_int()
        status_ref = ctypes.byref(status)
        wait_any, ptrace, ptrace_rc = _libc.wait_any, _libc.ptrace_small, _libc.ptrace_rc
        monotonic_ns = time.monotonic_ns
        flags = WALL | WNOTHREAD
        while True:
            pid = wait_any(-1, status_ref, flags)
            if pid < 0:
                break
            raw = status.value
            if raw == _SIGTRAP_STOP and ptrace(PTRACE_PEEKUSER, pid, IP_OFFSET, None) - 1 == addr:
                last = monotonic_ns()
                if not hits:
                    first = last
                hits += 1
                if slot is not None:
                    ptrace_rc(PTRACE_POKEUSER, pid, IP_OFFSET, slot)
                ptrace_rc(PTRACE_CONT, pid, None, 0)
            else:
                t.dispatch(pid, raw)
    return harness.Measurement(hits=hits, stops=hits, elapsed_ns=last - first,
                               checksum=output["checksum"])


harness.register_tracer("floor", run_floor, serves)
