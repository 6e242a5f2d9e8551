"""Where the Python tracer's time per hit goes: a profiling driver.

    python -m bench.profile_hit [--case boost-push] [--bits 64]
                                [--placement same] [-n 20000]
                                [--mode plain|split|cprofile]

``plain``     one run of the ``py`` runner, as the benchmark does (for
              ``py-spy record -- python -m bench.profile_hit``).
``split``     wraps each system call the hit path makes (waitpid, ptrace
              GETREGS/SETREGS/CONT/..., the /proc/PID/mem pread and pwrite,
              the process_vm_readv reads) with a perf_counter_ns pair, and
              prints µs per hit in each; what is left is Python.  The
              wrappers add ~0.2 µs per call of their own, which lands in
              the "Python" share, so that share is an upper bound.
``cprofile``  cProfile of the run, top functions by own time, per hit
              (cProfile inflates Python's share several times; use it for
              call counts and structure, not for the split).

Nothing under ptrace_raw/ is changed on disk: ``split`` replaces module
attributes for the length of the run only.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import time

from bench import harness, pytracer


def _run(args):
    return harness.run_case(args.case, args.bits, args.placement, "py", args.n)


def split(args):
    """Run the case with every system call of the hit path timed: (the
    run's result, ns spent per call name, calls per call name)."""
    import ptrace_raw.binding as binding
    import ptrace_raw.loop as loop
    import ptrace_raw.memory as memory
    import ptrace_raw.probes as probes
    import ptrace_raw.thread as thread
    from ptrace_raw.consts import REQUEST_NAMES

    spent = collections.Counter()
    calls = collections.Counter()
    clock = time.perf_counter_ns

    def timed(name, fn):
        def wrapper(*a):
            t0 = clock()
            try:
                return fn(*a)
            finally:
                spent[name] += clock() - t0
                calls[name] += 1
        return wrapper

    real_ptrace = binding._ptrace

    def ptrace(request, pid, addr, data, _name=REQUEST_NAMES.get):
        t0 = clock()
        try:
            return real_ptrace(request, pid, addr, data)
        finally:
            name = "ptrace " + str(_name(request, request))
            spent[name] += clock() - t0
            calls[name] += 1

    real_pwrite, real_pread = os.pwrite, os.pread
    saved = (binding._ptrace, binding._ptrace_rc, thread._ptrace, thread._ptrace_rc, probes._ptrace,
             probes._ptrace_rc, loop._waitpid, loop._wait_any, os.pwrite, os.pread, memory.vm_read)
    binding._ptrace = binding._ptrace_rc = thread._ptrace = thread._ptrace_rc = ptrace
    probes._ptrace = probes._ptrace_rc = ptrace
    loop._waitpid = timed("waitpid", loop._waitpid)
    loop._wait_any = timed("waitpid", loop._wait_any)
    memory.vm_read = timed("process_vm_readv", memory.vm_read)
    os.pwrite = timed("pwrite /proc/PID/mem", real_pwrite)
    os.pread = timed("pread /proc/PID/mem", real_pread)
    try:
        r = _run(args)
    finally:
        (binding._ptrace, binding._ptrace_rc, thread._ptrace, thread._ptrace_rc, probes._ptrace,
         probes._ptrace_rc, loop._waitpid, loop._wait_any, os.pwrite, os.pread, memory.vm_read) = saved
    return r, spent, calls


def _split(args) -> None:
    r, spent, calls = split(args)
    # Only the hits' share: the run also holds start-up and exit, but with
    # N hits these add a handful of calls; report per hit over all calls.
    total = r.elapsed_ns
    hits = r.hits - 1
    print(f"{args.case} m{args.bits} {args.placement}: {r.hits} hits, "
          f"{total / hits / 1000:.2f} µs/hit first to last, stops/hit {r.stops_per_hit:.2f}")
    accounted = 0
    for name, ns in spent.most_common():
        accounted += ns
        print(f"  {name:28s} {ns / hits / 1000:8.2f} µs/hit  {calls[name] / r.hits:6.2f} calls/hit")
    print(f"  {'Python (the rest)':28s} {(total - accounted) / hits / 1000:8.2f} µs/hit")


def _cprofile(args) -> None:
    prof = cProfile.Profile()
    prof.enable()
    r = _run(args)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    print(f"{r.hits} hits, {r.ns_per_hit / 1000:.2f} µs/hit under cProfile")
    print(out.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default="boost-push", choices=list(harness.CASES))
    p.add_argument("--bits", type=int, default=64, choices=harness.BITS)
    p.add_argument("--placement", default="same")
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--mode", default="plain", choices=("plain", "split", "cprofile"))
    args = p.parse_args()
    if args.mode == "split":
        _split(args)
    elif args.mode == "cprofile":
        _cprofile(args)
    else:
        r = _run(args)
        print(f"{r.hits} hits, {r.ns_per_hit:.0f} ns/hit, stops/hit {r.stops_per_hit:.2f}, "
              f"{pytracer.LAST_INFO}")


if __name__ == "__main__":
    main()
