"""System calls per hit, each tracer against the other: the Python tracer
must make the calls of the C reference's scheme, one for one (ns/hit then
compares the cost of making them, not a different plan)."""

from __future__ import annotations

import shutil

import pytest

from bench import harness, syscalls

pytestmark = pytest.mark.skipif(
    shutil.which("strace") is None or not syscalls.usable(),
    reason="strace 5.6 or later counts the system calls (apt-get install strace)")


@pytest.mark.parametrize("bits", harness.BITS, ids=lambda b: f"m{b}")
@pytest.mark.parametrize("case", list(harness.CASES))
def test_syscalls_per_hit(benchmark, fact, built, case, bits):
    got = {}
    benchmark.pedantic(lambda: got.update({t: syscalls.per_hit(t, case, bits)
                                           for t in ("ref", "py")}), rounds=1, iterations=1)
    fact(f"system calls per hit, {case} m{bits}, ref / py",
         f"{syscalls.describe(got['ref'])} / {syscalls.describe(got['py'])}")
    assert sum(got["py"].values()) == pytest.approx(sum(got["ref"].values()), abs=0.1)
