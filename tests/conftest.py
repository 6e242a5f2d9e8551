"""Shared fixtures: C tracees compiled at test time, for both bitnesses.

Every tracee under ``tests/tracees`` is built on demand with ``-m64`` and
``-m32``; the ``bits`` fixture runs a test once per bitness, as rr runs its
whole suite again on a 32-bit build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

TRACEES = Path(__file__).parent / "tracees"
_BUILD = Path(os.environ.get("PTRACE_RAW_TEST_BUILD", "/tmp/ptrace-raw-tests"))


def pytest_configure(config):
    """The tests send tracers SIGINT, SIGTERM and SIGHUP and expect them to
    end tracing; a tracer started ignoring one keeps ignoring it, as under
    nohup it should.  A suite run under nohup (SIGHUP ignored) or as a
    shell's background job (SIGINT ignored) passes that on to every tracer
    it starts, which then never ended: the signals are given back their
    usual handling here, for the tracers the tests start."""
    for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                         (signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, handler)


def build_c(source, bits=64, flags=(), name=None, libs=(), cc="gcc"):
    """Compile ``source`` (a path, or a name under tests/tracees) with
    ``cc`` and return the binary's path.  Cached by content, source path,
    compiler and flags, so parallel tests and repeated runs share one build;
    the path is part of the key because the debug info records it, and line
    tests match on it."""
    src = Path(source)
    if not src.is_absolute() and not src.exists():
        src = TRACEES / source
    flags = list(flags)
    src = src.resolve()
    key = hashlib.sha1(src.read_bytes()
                       + repr((str(src), bits, flags, list(libs), cc)).encode()).hexdigest()[:12]
    out = _BUILD / f"{name or src.stem}-{bits}-{key}"
    if out.exists():
        return out
    _BUILD.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    cmd = [cc, f"-m{bits}", "-g", *flags, "-o", str(tmp), str(src), *libs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building {src.name} failed: {' '.join(cmd)}\n{res.stderr}")
    os.replace(tmp, out)
    return out


@pytest.fixture(params=[64, 32], ids=["m64", "m32"])
def bits(request):
    """Run the test for a 64-bit and for a 32-bit tracee."""
    return request.param


@pytest.fixture
def build(bits):
    """``build(name, flags=...)`` compiles a tracee at the test's bitness."""
    def _build(source, flags=("-O0",), **kw):
        return build_c(source, bits, flags, **kw)
    return _build


def have_tool(name):
    return shutil.which(name) is not None
