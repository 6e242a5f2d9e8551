"""The command line's --count path end to end, as a user runs it.

``ptrace-raw trace --count uprobe:TARGET:bench_push -- TARGET push N`` in a
subprocess, unpinned: by default the count is kept by an inline probe in
the tracee (no stop per hit); with ``--no-inline`` every hit is an int3
stop served in Python.  Per-hit cost is the tracee's own loop time (it
prints ``loop_ns``, start-up excluded) over N, minus the untraced call.
The count the CLI prints must equal N.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import harness

N = {"inline": 1_000_000, "int3": 20_000}


def cli_count(target, n: int, inline: bool) -> float:
    """ns per call of the traced loop, and a check of the count."""
    cmd = [sys.executable, "-m", "ptrace_raw", "trace", "--count", "--json",
           *([] if inline else ["--no-inline"]),
           f"uprobe:{target}:bench_push", "--", str(target), "push", str(n)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    counts = [o for o in map(json.loads, res.stderr.splitlines()) if o["type"] == "count"]
    if [o["hits"] for o in counts] != [n]:
        raise AssertionError(f"CLI counted {counts}, not {n} hits")
    kv = harness.kv_pairs(res.stdout)
    return int(kv["loop_ns"]) / n


@pytest.mark.parametrize("how", list(N))
def test_cli_count(benchmark, fact, built, how):
    target = harness.build_target(64)
    got = []
    benchmark.pedantic(lambda: got.append(cli_count(target, N[how], how == "inline")),
                       rounds=3, iterations=1)
    got.sort()
    base = harness.baseline(64, harness.CASES["boost-push"]).call_ns
    per_hit = got[1] - base
    fact(f"CLI --count end to end, {how} (ns/hit over the untraced call, median of 3)",
         f"{per_hit:,.0f}")
    benchmark.extra_info.update({"ns_per_call": got, "untraced_call_ns": base})
