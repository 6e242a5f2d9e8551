"""The dependency direction of the design, checked: arch never imports
ptrace_raw, and inside ptrace_raw higher layers import lower ones only."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.fail("import-linter is not installed (pip install -e .[test])")
    res = subprocess.run([lint, str(ROOT / "setup.cfg")], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
