"""Every benchmark case, traced once with a small N by every tracer.

The benchmarks (``pytest bench/ --benchmark-only``) are not part of the
normal test run; this keeps them from rotting: each case must still build,
trace, and check exactly, for the C reference, for the Python tracer, and
for the floor (a hit's system calls alone, from Python) where it serves.
``harness.run_case`` raises unless the tracer reports exactly one hit per
call, the case's stops per hit, the untraced run's checksum and (for
``args``) the exact sum of the arguments read.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from bench import harness, profile_hit, syscalls
from bench import floor, pytracer  # noqa: F401  register the "floor" and "py" tracers
from bench import test_cli as cli
from bench import test_startup as startup

N = 200

_HAVE_SDT = any((Path(d) / "sdt.h").exists() for d in harness._SDT_HEADER_DIRS)

# bench/target.c includes <sys/sdt.h> for its USDT marker, so without the
# header no case's tracee builds, not only the usdt case's.
pytestmark = pytest.mark.skipif(
    not _HAVE_SDT, reason="<sys/sdt.h> is missing (install systemtap-sdt-dev): "
                          "bench/target.c needs it for the usdt case's marker")


@pytest.mark.parametrize("placement", harness.placements())
@pytest.mark.parametrize("bits", harness.BITS, ids=lambda b: f"m{b}")
@pytest.mark.parametrize("tracer, case", [(tracer, case) for tracer in ("ref", "py", "floor")
                                          for case in harness.CASES if harness.serves(tracer, case)])
def test_bench_case(tracer, case, bits, placement):
    result = harness.run_case(case, bits, placement, tracer, N)
    assert result.hits == N
    assert result.stops == harness.CASES[case].stops * N
    assert result.elapsed_ns > 0


def test_py_and_floor_are_registered():
    assert {"ref", "py", "floor"} <= set(harness.tracers())


def test_floor_serves_the_cases_whose_handler_reads_nothing_but_return_probes():
    assert [case for case in harness.CASES if harness.serves("floor", case)] == [
        "boost-push", "emulate-endbr", "boost-call", "boost-ret", "boost-icall",
        "boost-riprel", "step", "threads4", "usdt"]
    with pytest.raises(ValueError, match="floor: no loop of its own for case return"):
        harness.run_case("return", 64, "same", "floor", N)


def test_startup_and_memory_benchmarks_run():
    target = harness.build_target(64)
    assert startup.spawn_to_first_libc_hit(target) > 0
    early, late = startup.rss_over_hits(target, 300, early=100)
    assert early > 0 and late > 0


def test_profile_split_sees_every_call_of_a_boosted_hit():
    """The split times the calls where the hit path makes them: one that
    moved (into on_trap, or the loop's own waitpid) went unseen, and its
    time was counted as Python's."""
    args = argparse.Namespace(case="boost-push", bits=64, placement="same", n=N)
    result, _, calls = profile_hit.split(args)
    per_hit = {name: round(calls[name] / result.hits) for name in
               ("waitpid", "ptrace PTRACE_PEEKUSER", "ptrace PTRACE_POKEUSER", "ptrace PTRACE_CONT")}
    assert per_hit == dict.fromkeys(per_hit, 1)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "int3"])
def test_cli_count_benchmark_runs(inline):
    assert cli.cli_count(harness.build_target(64), 50, inline) > 0


@pytest.mark.skipif(shutil.which("strace") is None or not syscalls.usable(),
                    reason="strace 5.6 or later counts the system calls")
@pytest.mark.parametrize("case, calls", [
    ("boost-push", {"ptrace": 3, "wait4": 1}),
    ("emulate-endbr", {"ptrace": 3, "wait4": 1}),
    ("usdt", {"ptrace": 2, "wait4": 1}),
    ("return", {"ptrace": 6, "wait4": 2, "pread64": 1, "pwrite64": 1}),
])
def test_a_hit_makes_only_the_system_calls_its_scheme_needs(case, calls):
    """A boosted or skipped entry: the trap's wait, PEEKUSER and POKEUSER
    of ip, CONT.  A USDT nop: no POKEUSER, as the trap left ip where the
    nop does.  An entry + return pair: a boosted entry and a
    return (GETREGS instead of PEEKUSER, as the return address is read
    from the stack), plus the return address's read and its swap for the
    trampoline."""
    rates = syscalls.per_hit("py", case, 64, low=20, high=620)
    assert {name: round(rate, 1) for name, rate in rates.items()} == calls

