"""bench/arch_coverage.py runs, and on real function entries nothing is
refused and (almost) nothing needs two stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "arch_coverage.py"


def test_coverage_script_reports_every_binary():
    out = subprocess.run([sys.executable, str(SCRIPT), "--functions", "25"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    if "libc x86_64" not in out:
        pytest.skip("no system libc to measure")
    for line in out.splitlines():
        if line.strip().startswith(("all", "entries")):
            shares = dict(zip(line.split()[2::2], (float(x.rstrip("%")) for x in line.split()[3::2])))
            assert set(shares) == {"emulate", "boost", "step", "refused"}
            assert abs(sum(shares.values()) - 100) < 0.5
            if line.strip().startswith("entries"):
                assert shares["refused"] == 0 and shares["step"] < 5, line
