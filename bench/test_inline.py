"""ns per hit of inline probes (count, record, latency) beside the int3
path, on bench/target.c's ``push`` case.

Inline hits cause no stop, so the tracer cannot time them: the tracee's own
``loop_ns`` (the calling loop, timed inside it) is compared with an
untraced run, and the difference per call is the probe's cost.  The int3
figure is the harness's usual measurement of the same case (``py``, first
to last hit).  The kernel's uprobe cost is measured with bpftrace when it is
installed, and skipped with a note otherwise.

    python -m pytest bench/test_inline.py -s
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from bench import harness
from ptrace_raw.tracer import Tracer

N = 2_000_000
INT3_N = 5000
_KINDS = ("count", "record", "latency")


def _loop_ns(argv, kind=None) -> int:
    """The tracee's loop_ns, untraced or with one inline probe of ``kind``."""
    if kind is None:
        return min(int(harness.run_untraced(argv[0], argv[1:])["loop_ns"]) for _ in range(3))
    r, w = os.pipe()
    with Tracer() as t:
        proc = t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        spec = f"uprobe:{argv[0]}:bench_push"
        probe = {"count": lambda: t.count(spec), "record": lambda: t.record(spec, args=1),
                 "latency": lambda: t.latency(spec)}[kind]()
        t.run()
    out = os.read(r, 4096).decode()
    os.close(r)
    assert probe.inline and proc.exit_code == 0
    if kind == "count":
        assert probe.value == N
    elif kind == "latency":
        assert sum(probe.buckets.values()) == N
    else:
        assert len(list(probe)) + probe.lost == N
    m = re.search(r"loop_ns=(\d+)", out)
    return int(m.group(1))


@pytest.mark.parametrize("bits", harness.BITS, ids=["m64", "m32"])
def test_inline_ns_per_hit(bits):
    target = harness.build_target(bits)
    argv = [target, "push", str(N)]
    base = _loop_ns(argv)
    rows = {kind: (min(_loop_ns(argv, kind) for _ in range(3)) - base) / N for kind in _KINDS}
    int3 = harness.run_case("boost-push", bits, "none", "py", INT3_N).ns_per_hit
    print(f"\nm{bits}: untraced call {base / N:.1f} ns; per hit: "
          + ", ".join(f"inline {k} {v:.1f} ns" for k, v in rows.items())
          + f"; int3 path {int3:.0f} ns")
    assert rows["count"] < int3


def test_kernel_uprobe_ns_per_hit():
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed: no kernel uprobe figure")
    target = harness.build_target(64)
    argv = [str(target), "push", str(N)]
    base = _loop_ns([target, "push", str(N)])
    res = subprocess.run(["bpftrace", "-e", f"uprobe:{target}:bench_push {{ @n = count(); }}",
                          "-c", " ".join(argv)], capture_output=True, text=True, timeout=300)
    m = re.search(r"loop_ns=(\d+)", res.stdout)
    assert m, res.stderr
    print(f"\nkernel uprobe (bpftrace count): {(int(m.group(1)) - base) / N:.1f} ns per hit")
