"""Start-up and staying power, the two targets that are not per-hit times.

* spawn to the first hit of a libc probe, ELF parsing of the target and
  libc included (the parsed-ELF cache is emptied before each round), and
  again with the cache warm, as for a second process of one program;
* the tracer's resident memory over many hits: read at the 10,000th hit
  and at the last, so start-up allocations are not counted as growth.
"""

from __future__ import annotations

import os
import subprocess
import time

from bench import harness
from ptrace_raw import elf
from ptrace_raw.tracer import Tracer

#: hits of the memory run (about 25 us each here)
MEMORY_HITS = 400_000
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


def spawn_to_first_libc_hit(target) -> float:
    start = time.monotonic()
    at = []
    with Tracer() as t:
        t.spawn([str(target), "push", "1"], stdout=subprocess.DEVNULL)

        def first(hit):
            if not at:
                at.append(time.monotonic())
                t.stop()

        t.add_probe("uprobe:libc:strtol", first)
        t.run()
        t.detach()
    return at[0] - start


def test_spawn_to_first_libc_hit(benchmark, fact, built):
    target = harness.build_target(64)
    cold, warm = [], []

    def both():
        elf._cache.clear()
        cold.append(spawn_to_first_libc_hit(target))
        warm.append(spawn_to_first_libc_hit(target))

    benchmark.pedantic(both, rounds=5, iterations=1)
    cold.sort()
    warm.sort()
    fact("spawn to the first hit of uprobe:libc:strtol (s, median of 5), ELF parsed / cached",
         f"{cold[2]:.3f} / {warm[2]:.3f}")
    benchmark.extra_info.update({"cold_s": cold, "warm_s": warm})


def rss_over_hits(target, hits: int, early: int = 10_000):
    """The tracer's RSS (KiB) at hit ``early`` and at hit ``hits`` of a
    probe on the boosted function, one process running ``hits`` calls."""
    rss = {}
    count = [0]
    with Tracer() as t:
        t.spawn([str(target), "riprel", str(hits)], stdout=subprocess.DEVNULL)

        def on_hit(hit):
            count[0] += 1
            if count[0] in (early, hits):
                rss[count[0]] = _rss_kib()

        t.add_probe(f"uprobe:{target}:bench_riprel", on_hit)
        t.run()
    return rss[early], rss[hits]


def test_tracer_memory_over_many_hits(benchmark, fact, built):
    target = harness.build_target(64)
    got = []
    benchmark.pedantic(lambda: got.append(rss_over_hits(target, MEMORY_HITS)),
                       rounds=1, iterations=1)
    early, late = got[0]
    fact(f"tracer RSS at hit 10,000 / {MEMORY_HITS:,} (KiB)", f"{early} / {late} ({late - early:+d})")
    benchmark.extra_info.update({"rss_kib_early": early, "rss_kib_late": late})
