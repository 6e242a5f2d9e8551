"""The floor (``floor``): what a hit costs a Python tracer that does
nothing but the hit's system calls, through the same ctypes bindings.

The issue's targets are ratios to the C reference, and the ctypes calls
alone take part of them: this runner measures how much, in the same run
as ``py`` and ``ref``.  It sets up exactly as ``py`` does (``Tracer.spawn``,
``add_probe``, the loader's stops served by the tracer), then serves the
probe's hits in a loop of its own: waitpid, PEEKUSER of ip, a clock read
and a count (what ``py``'s bench handler does), POKEUSER of the slot's
address unless the site goes on in place, CONT; or for a stepped
instruction SINGLESTEP, and at the step's trap PEEKUSER, POKEUSER of the
address after the instruction, CONT.  Every other stop goes to
``Tracer.dispatch``.  No handler, no Hit, no thread state: the difference
between ``py`` and ``floor`` is the tracer's own Python, and ``floor``
over ``ref`` what ctypes and the interpreter cost before a tracer does
anything.

It serves the cases whose handler reads nothing, but for the return
probes (a second scheme) and threads stepping (a slot each).
"""

from __future__ import annotations

import ctypes
import os
import time

from bench import harness, pytracer
from ptrace_raw import _libc
from ptrace_raw.consts import (
    PTRACE_CONT, PTRACE_PEEKUSER, PTRACE_POKEUSER, PTRACE_SINGLESTEP, WALL, WNOTHREAD,
)
from ptrace_raw.thread import IP_OFFSET

_SIGTRAP_STOP = 0x57F


def serves(case: harness.Case) -> bool:
    return (case.stops == 1 and case.scheme in ("boost", "emulate")
            or case.scheme == "step" and case.threads == 1) and not case.read_args


def _plan(t, proc, site, spec: str, scheme: str):
    """(request at the trap, ip to write there or None, ip a step ends
    at, ip to write then)."""
    if scheme == "step":
        if not site.plain_step:
            raise RuntimeError(f"floor: {spec} is not plainly stepped")
        (thread,) = proc.threads.values()
        slot = t.engine._step_slot(thread, proc.probe_state, site)
        return (PTRACE_SINGLESTEP, proc.probe_state.xol.step_args[slot],
                slot + site.plan.length, site.step_end_arg)
    if site.goto_arg is None:
        raise RuntimeError(f"floor: {spec} is not boosted, skipped or in place")
    return PTRACE_CONT, None if site.in_place else site.goto_arg, None, None


def run_floor(run: harness.Run) -> harness.Measurement:
    if not serves(run.case):
        raise ValueError(f"floor: no loop of its own for case {run.case.name}")
    hits = first = last = 0
    with pytracer.placed_tracee(run, "floor") as (t, proc, output):
        spec = (f"usdt:{run.argv[0]}:ptrace_raw_bench:tick" if run.symbol is None
                else f"uprobe:{run.argv[0]}:{run.symbol}")
        probe = t.add_probe(spec, None)
        site = next(s for s in proc.probe_state.bps.sites.values() if probe in s.entry)
        addr = site.addr
        request, slot, stepped, home = _plan(t, proc, site, spec, run.case.scheme)
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
            ip = ptrace(PTRACE_PEEKUSER, pid, IP_OFFSET, None) if raw == _SIGTRAP_STOP else 0
            if ip - 1 == addr:
                last = monotonic_ns()
                if not hits:
                    first = last
                hits += 1
                if slot is not None:
                    ptrace_rc(PTRACE_POKEUSER, pid, IP_OFFSET, slot)
                ptrace_rc(request, pid, None, 0)
            elif ip == stepped:
                ptrace_rc(PTRACE_POKEUSER, pid, IP_OFFSET, home)
                ptrace_rc(PTRACE_CONT, pid, None, 0)
            else:
                t.dispatch(pid, raw)
    return harness.Measurement(hits=hits, stops=hits * run.case.stops, elapsed_ns=last - first,
                               checksum=output["checksum"])


harness.register_tracer("floor", run_floor, serves)
