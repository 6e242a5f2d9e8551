"""System calls per probe hit, by name, for each tracer.

    python -m bench.syscalls [--case boost-push] [--bits 64]

``strace -c`` counts the calls of one tracer process (not of its tracee,
which strace does not follow) traced at two hit counts; the difference over
the extra hits is the per-hit count, start-up (imports, ELF parsing,
injected syscalls) cancelled out.  strace slows the tracer down, but not
what it calls.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

from bench import harness

ROOT = Path(__file__).resolve().parent.parent
LOW, HIGH = 100, 1100
#: counts per hit below this are start-up noise that did not cancel out:
#: reading another program's output (ctypes' find_library runs ldconfig)
#: takes a number of reads that depends on scheduling
_NOISE = 0.05

# The counted process only traces: what a run needs to know (the probe's
# address, the checksum) is worked out here, as reading other programs'
# output takes a number of reads that depends on scheduling.
_PY_RUN = """\
import json, sys
from bench import harness, pytracer
facts = json.loads(sys.argv[1])
run = harness.Run(**dict(facts, case=harness.CASES[facts["case"]]))
m = pytracer.run_py(run)
sys.exit(m.hits != run.n or m.checksum != run.checksum)
"""


def _argv(tracer: str, case: str, bits: int, n: int) -> List[str]:
    run = harness.make_run(case, bits, "none", n)
    if tracer == "ref":
        return harness.ref_command(run)
    if tracer == "py":
        facts = dict(dataclasses.asdict(run), case=case)
        return [sys.executable, "-c", _PY_RUN, json.dumps(facts)]
    raise ValueError(f"no command line for tracer {tracer!r}")


def usable() -> bool:
    """Whether this strace counts per call name (``-U`` came in strace 5.6)."""
    try:
        return subprocess.run(["strace", "-c", "-U", "name,calls", "-o", "/dev/null", "true"],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def _counts(argv: List[str]) -> collections.Counter:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        res = subprocess.run(["strace", "-c", "-U", "name,calls", "-o", out.name, "--", *argv],
                             cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"strace {' '.join(argv)} failed:\n{res.stderr}")
        counts = collections.Counter()
        for line in out.read().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[1].isdigit() and fields[0] != "total":
                counts[fields[0]] += int(fields[1])
        return counts


def per_hit(tracer: str, case: str, bits: int, low: int = LOW, high: int = HIGH) -> Dict[str, float]:
    """{system call: calls per hit}, largest first."""
    few = _counts(_argv(tracer, case, bits, low))
    many = _counts(_argv(tracer, case, bits, high))
    rates = {name: (many[name] - few[name]) / (high - low) for name in many | few}
    return dict(sorted(((n, r) for n, r in rates.items() if abs(r) >= _NOISE),
                       key=lambda kv: (-kv[1], kv[0])))


def describe(rates: Dict[str, float]) -> str:
    """``4.0 (ptrace 3.0, wait4 1.0)``"""
    inner = ", ".join(f"{name} {rate:.1f}" for name, rate in rates.items())
    return f"{sum(rates.values()):.1f} ({inner})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=list(harness.CASES))
    p.add_argument("--bits", type=int, choices=harness.BITS)
    args = p.parse_args()
    for case in [args.case] if args.case else list(harness.CASES):
        for bits in [args.bits] if args.bits else harness.BITS:
            print(f"{case:14s} m{bits}  ref {describe(per_hit('ref', case, bits))}")
            print(f"{'':14s} m{bits}  py  {describe(per_hit('py', case, bits))}")


if __name__ == "__main__":
    main()
