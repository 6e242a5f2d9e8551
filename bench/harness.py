"""Probe-hit latency harness: builds, cases, placements, tracers.

A *case* names what is probed (a function of ``bench/target.c`` or its USDT
marker) and how many stops one hit should cost.  A *tracer* is any runner
that can trace one case and report what it saw; ``ref`` is the C reference
tracer in ``bench/ref_tracer.c``.  The Python tracer joins by calling
``register_tracer`` with a runner of the same shape, and then every
benchmark and ``smoke()`` measures it next to the reference.

ns/hit is reported raw: the tracer's time from the first hit to the last,
divided by the intervals between them.  The untraced cost of one loop
iteration and of one call are measured separately and reported beside it,
so nothing is subtracted behind the reader's back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import statistics
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
BUILD = Path(os.environ.get("PTRACE_RAW_BENCH_BUILD", "/tmp/ptrace-raw-bench"))
BITS = (64, 32)
N_DEFAULT = 20000
SMOKE_N = 200
# Untraced loops are timed inside the tracee; this many calls make the
# per-call figure stable to a fraction of a nanosecond.
BASELINE_N = 2_000_000

_SDT_HEADER_DIRS = ("/usr/include/sys", "/usr/include/x86_64-linux-gnu/sys")
_WORDS = ("alpha", "beta", "gamma", "delta")  # as in target.c


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case: what is probed, and the cost a smart tracer pays.

    ``scheme`` is the reference tracer's way of handling the probed
    instruction; ``stops`` is the number of ptrace stops per hit that scheme
    makes, which every tracer must match to be compared fairly.
    """

    name: str
    func: str           # target.c FUNC argument
    scheme: str         # ref_tracer -s
    stops: int
    threads: int = 1
    read_args: bool = False
    #: bytes into the function: an instruction other than its first
    offset: int = 0

    @property
    def function(self) -> Optional[str]:
        """ELF symbol of the probed function; None for the USDT marker."""
        return None if self.func == "usdt" else f"bench_{self.func}"

    @property
    def symbol(self) -> Optional[str]:
        """Where the probe is, as a uprobe spec names it (FUNC or FUNC+OFF)."""
        if self.function is None or not self.offset:
            return self.function
        return f"{self.function}+{self.offset:#x}"


CASES: Dict[str, Case] = {c.name: c for c in (
    Case("boost-push", "push", "boost", 1),
    Case("emulate-endbr", "endbr", "emulate", 1),
    Case("boost-call", "call", "boost", 1),
    # bench_call+5 is the ret after its call: boosted as its copy alone
    Case("boost-ret", "call", "boost", 1, offset=5),
    # a call through a register: its push, then a jmp through it
    Case("boost-icall", "icall", "boost", 1),
    Case("boost-riprel", "riprel", "boost", 1),
    # bench_step+1 is a popf (after a pushf), stepped: boosted, a TF it
    # pops would trap on the slot's jump back
    Case("step", "step", "step", 2, offset=1),
    Case("return", "push", "return", 2),
    Case("threads4", "push", "boost", 1, threads=4),
    Case("args", "args", "boost", 1, read_args=True),
    Case("usdt", "usdt", "emulate", 1),
)}


def _cpus() -> List[int]:
    return sorted(os.sched_getaffinity(0))


def placement_cpus(placement: str) -> Tuple[Optional[int], Optional[int]]:
    """(tracer CPU, tracee CPU) for a placement; None leaves the scheduler free.

    ``same`` shares one CPU, so every stop is a context switch on that CPU;
    ``cross`` puts them on two CPUs, so every stop is a cross-CPU wakeup;
    ``none`` is what a user gets, and varies from run to run.
    """
    cpus = _cpus()
    if placement == "same":
        return cpus[0], cpus[0]
    if placement == "cross":
        if len(cpus) < 2:
            raise RuntimeError("placement 'cross' needs two CPUs")
        return cpus[0], cpus[1]
    if placement == "none":
        return None, None
    raise ValueError(f"unknown placement {placement!r}")


def placements() -> List[str]:
    """The pinned placements this machine can do."""
    return ["same", "cross"] if len(_cpus()) >= 2 else ["same"]


# ---------------------------------------------------------------- building

def _sdt_include() -> Path:
    """An include dir holding sys/sdt.h for both -m64 and -m32.

    Debian installs the header under the x86_64 multiarch dir, which -m32
    does not search; the header itself is bitness-neutral.
    """
    for d in map(Path, _SDT_HEADER_DIRS):
        if (d / "sdt.h").exists():
            inc = BUILD / "include"
            (inc / "sys").mkdir(parents=True, exist_ok=True)
            for name in ("sdt.h", "sdt-config.h"):
                link = inc / "sys" / name
                if (d / name).exists() and not link.exists():
                    try:
                        link.symlink_to(d / name)
                    except FileExistsError:  # a parallel build made it first
                        pass
            return inc
    raise RuntimeError("sys/sdt.h not found: install systemtap-sdt-dev")


def _build(src: Path, name: str, flags: List[str]) -> Path:
    """Compile ``src`` warning-free (-Werror), cached by content, path and
    flags (the debug info records the path)."""
    src = src.resolve()
    key = hashlib.sha1(src.read_bytes() + repr((str(src), flags)).encode()).hexdigest()[:12]
    out = BUILD / f"{name}-{key}"
    if out.exists():
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(tmp), str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"build failed: {' '.join(cmd)}\n{res.stderr}")
    os.replace(tmp, out)
    return out


def build_target(bits: int) -> Path:
    """The tracee, a PIE like the binaries users trace."""
    return _build(HERE / "target.c", f"target{bits}",
                  [f"-m{bits}", "-g", "-pthread", f"-I{_sdt_include()}"])


def build_ref() -> Path:
    return _build(HERE / "ref_tracer.c", "ref_tracer", [])


# ---------------------------------------------------------------- facts about a target

def probe_address(target: Path, case: Case) -> int:
    """Link-time address of the probe; tracers add the PIE load base."""
    if case.function is None:
        out = subprocess.run(["readelf", "-n", str(target)], check=True,
                             capture_output=True, text=True).stdout
        m = re.search(r"Name: tick\s+Location: (0x[0-9a-f]+)", out)
        if not m:
            raise RuntimeError(f"no ptrace_raw_bench:tick USDT note in {target}")
        return int(m.group(1), 16)
    out = subprocess.run(["nm", "--defined-only", str(target)], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        addr, _, sym = line.split()
        if sym == case.function:
            return int(addr, 16) + case.offset
    raise RuntimeError(f"{case.function} not in {target}")


def kv_pairs(line: str) -> Dict[str, str]:
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def target_argv(target: Path, case: Case, n: int) -> List[str]:
    threads = ["-t", str(case.threads)] if case.threads > 1 else []
    return [str(target), *threads, case.func, str(n)]


def _pin_preexec(cpu: Optional[int]):
    return None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))


def run_untraced(target: Path, argv_tail: List[str], cpu: Optional[int] = None) -> Dict[str, str]:
    """Run the target without a tracer and return its key=value line."""
    res = subprocess.run([str(target), *argv_tail], capture_output=True, text=True,
                         preexec_fn=_pin_preexec(cpu), check=True)
    return kv_pairs(res.stdout)


_checksums: Dict[Tuple[int, str, int], int] = {}


def expected_checksum(bits: int, func: str, n: int) -> int:
    """The untraced program's own answer: a traced run must print the same."""
    key = (bits, func, n)
    if key not in _checksums:
        _checksums[key] = int(run_untraced(build_target(bits), [func, str(n)])["checksum"])
    return _checksums[key]


def expected_args_sum(n: int) -> int:
    """What a handler reading (a, b, s) sums as a + b + strlen(s) over the loop."""
    return sum(i + (i ^ 0x55) + len(_WORDS[i & 3]) for i in range(n))


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Untraced costs, per loop iteration, timed inside the tracee."""

    loop_ns: float   # the bare loop, no call
    call_ns: float   # one iteration calling the probed function


_baselines: Dict[Tuple[int, str, Optional[int]], Baseline] = {}


def baseline(bits: int, case: Case, cpu: Optional[int] = None) -> Baseline:
    key = (bits, case.func, cpu)
    if key not in _baselines:
        target = build_target(bits)

        def best(func):  # min of three: a VM's noise only ever adds time
            return min(int(run_untraced(target, [func, str(BASELINE_N)], cpu)["loop_ns"])
                       for _ in range(3)) / BASELINE_N

        _baselines[key] = Baseline(best("loop"), best(case.func))
    return _baselines[key]


# ---------------------------------------------------------------- tracers

@dataclasses.dataclass(frozen=True)
class Run:
    """Everything a tracer runner needs to trace one case once.

    The runner pins itself to ``tracer_cpu`` and the tracee to
    ``tracee_cpu`` when they are not None, probes ``symbol`` (or the USDT
    marker ptrace_raw_bench:tick when ``symbol`` is None; ``address`` is its
    link-time address either way), and reads the args when ``read_args``.
    """

    case: Case
    bits: int
    n: int
    argv: List[str]
    symbol: Optional[str]
    address: int
    tracer_cpu: Optional[int]
    tracee_cpu: Optional[int]
    checksum: int
    read_args: bool


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a runner reports; the harness checks it and derives ns/hit."""

    hits: int
    stops: int
    elapsed_ns: int     # first hit to last hit
    checksum: int       # as printed by the tracee
    args_sum: int = 0


Runner = Callable[[Run], Measurement]
_TRACERS: Dict[str, Runner] = {}
_SERVES: Dict[str, Callable[[Case], bool]] = {}


def register_tracer(name: str, runner: Runner,
                    serves: Callable[[Case], bool] = lambda case: True) -> None:
    """Make ``name`` a valid ``tracer=`` for run_case, the benchmarks and
    smoke(), for the cases ``serves`` accepts."""
    _TRACERS[name] = runner
    _SERVES[name] = serves


def tracers() -> List[str]:
    return list(_TRACERS)


def serves(tracer: str, case: str) -> bool:
    return _SERVES[tracer](CASES[case])


def ref_command(run: Run) -> List[str]:
    """The C reference's command line for ``run``, tracee included."""
    cmd = [str(build_ref()), "-s", run.case.scheme, "-a", hex(run.address),
           "-c", str(run.checksum)]
    if run.read_args:
        cmd.append("-A")
    if run.tracer_cpu is not None:
        cmd += ["-T", str(run.tracer_cpu)]
    if run.tracee_cpu is not None:
        cmd += ["-C", str(run.tracee_cpu)]
    return [*cmd, "--", *run.argv]


def _run_ref(run: Run) -> Measurement:
    cmd = ref_command(run)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"ref_tracer failed: {' '.join(cmd)}\n{res.stderr}")
    kv = kv_pairs(res.stdout)
    return Measurement(int(kv["hits"]), int(kv["stops"]), int(kv["elapsed_ns"]),
                       int(kv["checksum"]), int(kv["args_sum"]))


register_tracer("ref", _run_ref)


@dataclasses.dataclass(frozen=True)
class Result:
    tracer: str
    case: str
    bits: int
    placement: str
    hits: int
    stops: int
    elapsed_ns: int

    @property
    def ns_per_hit(self) -> float:
        return self.elapsed_ns / (self.hits - 1)

    @property
    def stops_per_hit(self) -> float:
        return self.stops / self.hits


def make_run(case: str, bits: int, placement: str, n: int) -> Run:
    c = CASES[case]
    target = build_target(bits)
    tracer_cpu, tracee_cpu = placement_cpus(placement)
    return Run(case=c, bits=bits, n=n, argv=target_argv(target, c, n), symbol=c.symbol,
               address=probe_address(target, c), tracer_cpu=tracer_cpu,
               tracee_cpu=tracee_cpu, checksum=expected_checksum(bits, c.func, n),
               read_args=c.read_args)


def run_case(case: str, bits: int, placement: str, tracer: str = "ref",
             n: int = N_DEFAULT) -> Result:
    """Trace one case once and check it: exact hits, stops and checksum.

    A run that is fast but wrong is not a measurement, so every check
    failing raises instead of returning a number.
    """
    run = make_run(case, bits, placement, n)
    c = run.case
    m = _TRACERS[tracer](run)
    where = f"{tracer} {case} m{bits} {placement}"
    if m.checksum != run.checksum:
        raise AssertionError(f"{where}: checksum {m.checksum}, untraced run gave {run.checksum}")
    if m.hits != n:
        raise AssertionError(f"{where}: {m.hits} hits for {n} calls")
    if m.stops != c.stops * n:
        raise AssertionError(f"{where}: {m.stops} stops, want {c.stops} per hit")
    if c.read_args and m.args_sum != expected_args_sum(n):
        raise AssertionError(f"{where}: args sum {m.args_sum}, want {expected_args_sum(n)}")
    return Result(tracer, case, bits, placement, m.hits, m.stops, m.elapsed_ns)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """ns/hit over repeated runs: unpinned runs differ with each scheduling."""

    samples: Tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def distribution(case: str, bits: int, placement: str = "none", tracer: str = "ref",
                 n: int = N_DEFAULT, runs: int = 5) -> Distribution:
    return Distribution(tuple(run_case(case, bits, placement, tracer, n).ns_per_hit
                              for _ in range(runs)))


def smoke(tracer: str = "ref", n: int = SMOKE_N) -> List[Result]:
    """Run every case once per bitness and placement with a small N.

    For the test suite: proves each case still builds, traces and checks
    (run_case raises on any wrong count or checksum) in a few seconds.
    """
    return [run_case(case, bits, placement, tracer, n)
            for bits in BITS for placement in placements() for case in CASES
            if serves(tracer, case)]
