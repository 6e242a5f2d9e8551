"""Fixtures for the latency benchmarks, and a summary table at the end.

pytest-benchmark's own table times whole runs, start-up included; the
number the project is judged by is ns/hit, so the session also prints
ns/hit per case, bitness, placement and tracer next to the untraced costs.
"""

from __future__ import annotations

import pytest

from bench import harness

_ROWS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_ROWS] = []


@pytest.fixture(scope="session")
def built():
    """Build every binary once, before the first timed round, so no round pays a compile."""
    for bits in harness.BITS:
        harness.build_target(bits)
    harness.build_ref()


@pytest.fixture
def record(request):
    """``record(row)`` adds a dict to the end-of-session ns/hit table."""
    return request.config.stash[_ROWS].append


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    tr = terminalreporter
    tr.section("ns per probe hit (median of rounds; untraced costs per iteration)")
    head = ("tracer", "case", "bits", "placement", "ns/hit", "min", "max",
            "stops/hit", "call ns", "loop ns")
    tr.write_line("%-6s %-14s %4s %-9s %9s %9s %9s %9s %7s %7s" % head)
    for r in sorted(rows, key=lambda r: (r["tracer"], r["case"], r["bits"], r["placement"])):
        tr.write_line("%-6s %-14s %4d %-9s %9.0f %9.0f %9.0f %9.2f %7.2f %7.2f" % (
            r["tracer"], r["case"], r["bits"], r["placement"], r["ns_per_hit"],
            r["ns_per_hit_min"], r["ns_per_hit_max"], r["stops_per_hit"],
            r["untraced_call_ns"], r["untraced_loop_ns"]))
