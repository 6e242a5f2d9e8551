"""``ptrace-raw demo``: build the bundled C program, trace it through the
Python API, and show what a user gets: hit lines, a latency histogram and
what a probe hit costs on this machine.

The cost is measured, not quoted: the traced run's wall time minus an
untraced run's, divided by the hits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources

from .cli_hist import Log2Hist, format_bcc
from .cli_output import CliError, hit_record, render_text
from .errors import ProbeError
from .tracer import Tracer

ROUNDS = 600
SHOWN_PER_PROBE = 3


def _build(workdir: str):
    """(binary, has the USDT marker); without <sys/sdt.h> the program is
    built without its marker rather than not at all."""
    if shutil.which("gcc") is None:
        raise CliError("the demo needs gcc to build its program")
    source = os.path.join(workdir, "demo.c")
    with open(source, "w") as f:
        f.write(resources.files("ptrace_raw").joinpath("demo/demo.c").read_text())
    exe = os.path.join(workdir, "demo")
    cmd = ["gcc", "-O1", "-g", "-o", exe, source]
    if subprocess.run(cmd + ["-DDEMO_SDT"], capture_output=True).returncode == 0:
        return exe, True
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CliError(f"building the demo failed: {res.stderr.strip().splitlines()[-1]}")
    return exe, False


def _print(line: str = "") -> None:
    print(line, flush=True)


def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="ptrace-raw-demo-") as workdir:
        exe, has_sdt = _build(workdir)
        _print(f"built {os.path.basename(exe)} from ptrace_raw/demo/demo.c with gcc -O1 -g"
               + ("" if has_sdt else " (no <sys/sdt.h>: built without its USDT marker)"))
        argv = [exe, str(ROUNDS)]
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        untraced = time.perf_counter() - began
        return _traced(exe, argv, has_sdt, untraced)


def _traced(exe: str, argv, has_sdt: bool, untraced: float) -> int:
    latency = Log2Hist(f"work() latency, {ROUNDS} calls", "usecs")
    shown = []
    names = []

    def show(hit, nargs=0):
        if hit.probe.hits <= SHOWN_PER_PROBE:
            shown.append(render_text(hit_record(hit, start_ns, nargs, False, False)))

    def on_return(hit):
        latency.add((hit.time_ns - hit.entry_time_ns) // 1000)
        show(hit)

    with Tracer() as t:
        proc = t.spawn(argv, stdout=subprocess.DEVNULL)
        probes = [
            t.add_probe(f"uprobe:{exe}:work", lambda hit: show(hit, 1)),
            t.add_probe(f"uretprobe:{exe}:work", on_return),
            t.add_probe(f"uprobe:{exe}:greet",
                        lambda hit: names.append(hit.read_cstring(hit.arg(0)))),
        ]
        notes = []
        if has_sdt:
            try:
                probes.append(t.add_probe(f"usdt:{exe}:demo:tick", show))
            except ProbeError as exc:
                notes.append(f"usdt probe skipped: {exc}")
        else:
            notes.append("usdt probe skipped: the program has no marker")
        start_ns = time.monotonic_ns()
        began = time.perf_counter()
        t.run()
        traced = time.perf_counter() - began
    hits = sum(p.hits for p in probes)
    _print(f"traced: {' '.join(p.spec.text.replace(exe, 'demo') for p in probes)}")
    for note in notes:
        _print(note)
    _print()
    for line in shown:
        _print(line.replace(exe, "demo"))
    _print(f"... {hits - len(shown)} more hits; greet() was called with {names!r}")
    _print()
    for line in format_bcc(latency):
        _print(line)
    _print()
    _print(f"untraced run {untraced * 1e3:.1f} ms, traced run {traced * 1e3:.1f} ms, "
           f"{hits} probe hits: {(traced - untraced) / hits * 1e6:.1f} us per hit")
    if proc.exit_code != 0:
        print(f"ptrace-raw: the demo program exited with {proc.exit_code}", file=sys.stderr)
        return 1
    return 0
