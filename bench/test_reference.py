"""Probe-hit latency of every case, per tracer, bitness and CPU placement.

Each benchmark round is one traced run of N calls.  pytest-benchmark times
the whole run; the tracer's own first-to-last-hit time gives ns/hit, which
goes to ``extra_info`` (and the summary table) with the stop count and the
untraced loop and call costs, so a reader can subtract them knowingly.
"""

from __future__ import annotations

import pytest

from bench import harness, pytracer

ROUNDS = 5
#: calls per run by tracer: the Python tracer is several times slower per
#: hit, and 5000 hits already give it a per-hit figure stable to a few %
N = {"py": 5000}


def _measure(benchmark, record, tracer, case, bits, placement, rounds):
    """Each round of a tracer other than ``ref`` is paired with a ``ref``
    run made just before it (untimed, in pedantic's setup), and the ratio is
    the median of the rounds' ratios: the VM's speed drifts by tens of
    percent within minutes, much less between two runs a second apart."""
    results, paired = [], []
    n = N.get(tracer, harness.N_DEFAULT)

    def pair():
        paired.append(harness.run_case(case, bits, placement, "ref", harness.N_DEFAULT))

    benchmark.pedantic(lambda: results.append(
        harness.run_case(case, bits, placement, tracer, n)), setup=None if tracer == "ref" else pair,
        rounds=rounds, iterations=1)
    ns = sorted(r.ns_per_hit for r in results)
    base = harness.baseline(bits, harness.CASES[case], harness.placement_cpus(placement)[1])
    row = {
        "tracer": tracer, "case": case, "bits": bits, "placement": placement,
        "ns_per_hit": ns[len(ns) // 2], "ns_per_hit_min": ns[0], "ns_per_hit_max": ns[-1],
        "ns_per_hit_samples": ns, "stops_per_hit": results[0].stops_per_hit,
        "hits": results[0].hits, "untraced_call_ns": base.call_ns,
        "untraced_loop_ns": base.loop_ns,
    }
    if tracer == "py":
        row.update({f"py_{k}": v for k, v in pytracer.LAST_INFO.items()})
    if paired:
        ratios = sorted(r.ns_per_hit / p.ns_per_hit for r, p in zip(results, paired))
        refs = sorted(p.ns_per_hit for p in paired)
        row["ref_ns_per_hit"] = refs[len(refs) // 2]
        row["ratio_to_ref"] = ratios[len(ratios) // 2]
        row["ratio_samples"] = ratios
    benchmark.extra_info.update(row)
    record(row)


@pytest.mark.parametrize("placement", harness.placements())
@pytest.mark.parametrize("bits", harness.BITS, ids=lambda b: f"m{b}")
@pytest.mark.parametrize("case", list(harness.CASES))
@pytest.mark.parametrize("tracer", harness.tracers())
def test_pinned(benchmark, record, built, tracer, case, bits, placement):
    if not harness.serves(tracer, case):
        pytest.skip(f"{tracer} does not serve {case}")
    _measure(benchmark, record, tracer, case, bits, placement, ROUNDS)


@pytest.mark.parametrize("bits", harness.BITS, ids=lambda b: f"m{b}")
@pytest.mark.parametrize("tracer", harness.tracers())
def test_unpinned(benchmark, record, built, tracer, bits):
    """Unpinned, what a user sees: a spread, so more rounds and min/median/max."""
    _measure(benchmark, record, tracer, "boost-push", bits, "none", 7)
