"""Fixtures for the latency benchmarks, and a summary table at the end.

pytest-benchmark's own table times whole runs, start-up included; the
number the project is judged by is ns/hit, so the session also prints
ns/hit per case, bitness, placement and tracer next to the untraced costs,
and the Python tracer's ns/hit as a ratio to the reference's.
"""

from __future__ import annotations

import pytest

from bench import harness
from bench import floor, pytracer  # noqa: F401  register "floor" and "py" before collection

_ROWS = pytest.StashKey[list]()
_FACTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_ROWS] = []
    config.stash[_FACTS] = []


def pytest_collection_modifyitems(session, config, items):
    """Run the tracers of one configuration back to back, ``ref`` first, so
    the table's rows for one configuration come from the same minutes (the
    ratios themselves pair each round with a ref run of its own)."""
    order = {name: k for k, name in enumerate(harness.tracers())}

    def key(item):
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "tracer" not in params:
            return (item.nodeid,)
        rest = tuple(str(v) for k, v in sorted(params.items()) if k != "tracer")
        return (item.originalname, rest, order.get(params["tracer"], len(order)))

    first = {}
    for pos, item in enumerate(items):
        first.setdefault(key(item)[:2], pos)
    items.sort(key=lambda item: (first[key(item)[:2]], key(item)))


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


@pytest.fixture
def fact(request):
    """``fact(what, value)`` adds a line to the end-of-session summary."""
    return lambda what, value: request.config.stash[_FACTS].append((what, value))


def pytest_terminal_summary(terminalreporter, config):
    tr = terminalreporter
    facts = config.stash.get(_FACTS, [])
    if facts:
        tr.section("start-up, memory, system calls and the command line")
        for what, value in facts:
            tr.write_line(f"{what}: {value}")
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    tr.section("ns per probe hit (median of rounds; untraced costs per iteration)")
    head = ("tracer", "case", "bits", "placement", "N", "ns/hit", "min", "max",
            "stops/hit", "vs ref", "call ns", "loop ns")
    tr.write_line("%-6s %-14s %4s %-9s %6s %9s %9s %9s %9s %6s %7s %7s" % head)
    for r in sorted(rows, key=lambda r: (r["tracer"], r["case"], r["bits"], r["placement"])):
        ratio = r.get("ratio_to_ref")
        tr.write_line("%-6s %-14s %4d %-9s %6d %9.0f %9.0f %9.0f %9.2f %6s %7.2f %7.2f" % (
            r["tracer"], r["case"], r["bits"], r["placement"], r["hits"], r["ns_per_hit"],
            r["ns_per_hit_min"], r["ns_per_hit_max"], r["stops_per_hit"],
            "-" if ratio is None else "%.2f" % ratio,
            r["untraced_call_ns"], r["untraced_loop_ns"]))

    others = sorted({r["tracer"] for r in rows} - {"ref"})
    by_key = {(r["tracer"], r["case"], r["bits"], r["placement"]): r for r in rows}
    for tracer in others:
        tr.section(f"{tracer} / ref: ns per hit, medians of rounds each paired with a ref run")
        tr.write_line("%-14s %4s %-9s %9s %9s %7s %12s" % (
            "case", "bits", "placement", "ref", tracer, "ratio", f"{tracer} stops/hit"))
        for (t, case, bits, placement), r in sorted(by_key.items(),
                                                     key=lambda kv: (kv[0][3], kv[0][2], kv[0][1])):
            if t != tracer:
                continue
            ref_ns, ratio = r.get("ref_ns_per_hit"), r.get("ratio_to_ref")
            tr.write_line("%-14s %4d %-9s %9s %9.0f %7s %12.2f" % (
                case, bits, placement, "-" if ref_ns is None else "%.0f" % ref_ns,
                r["ns_per_hit"], "-" if ratio is None else "%.2f" % ratio, r["stops_per_hit"]))
