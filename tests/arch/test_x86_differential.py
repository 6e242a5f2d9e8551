"""Each plan against the real instruction, under unicorn.

From the same registers and memory, the original runs once at its home
address; the plan runs as the tracer would run it (emulated, boosted from a
slot, or stepped in a slot between pre_xol and post_xol), and registers and
memory must come out identical.  The step path is checked for every plan,
since it is every plan's fallback.  The second half does the same for the
instructions of real functions from the system's libc and Python.
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from unicorn import UcError

from arch import I386, X86_64, UnsupportedInstruction

from .xolsim import GPRS, compare, is_rep_string, make_regs, run_original, run_plan

V64 = 0x555555556ff8            # the instruction straddles a page boundary
NEAR64 = 0x555575550000         # boost slot in rel32 reach
FAR64 = 0x7ffff7ff0000          # out of reach: rip-relative boosts fall back to steps
DATA64 = 0x7ffff0000000
STACK64 = 0x7ffffffde000
V32 = 0x08049ffc
SLOT32 = 0xf7ff0000
DATA32 = 0x20000000
STACK32 = 0xffffd000
CF, PF, AF, ZF, SF, DF, OF = 1, 4, 0x10, 0x40, 0x80, 0x400, 0x800

VECTORS64 = [
    "90", "6690", "0f1f440000", "662e0f1f840000000000", "f390", "4190", "89ff", "4889e4",
    "f30f1efa", "eb10", "e900010000", "7405", "0f8c00010000", "7ffe", "e800000000",
    "e8f0ffffff", "c3", "f3c3", "f2c3", "c20800", "e3fe", "67e3fe", "e2fe", "67e2fe",
    "e1fe", "e0fe", "55", "4155", "54", "9c", "9d", "488b0500100000", "890d00100000",
    "4c8b0500100000", "c7050010000078563412", "48833d0010000000", "d32500100000",
    "0fc70d00100000", "f00fb10d00100000", "ff3500100000", "8f0500100000",
    "8b042500100000", "ff2500100000", "ff1500100000", "ffd0", "41ffd3", "3effe0",
    "ff542408", "f3a4", "f348ab", "f3a6", "0faee8", "488d0500100000",
    "678b0500100000", "498b0500100000", "f20f100500100000", "660f3a0f050010000008",
    "4883ec18", "4889e5", "48c7442408ffffffff", "4157", "415f", "5d", "c9",
    "0fafc1", "48f7f1", "0f94c0", "480f44c2", "66480f6ec0", "f30f6f0500100000",
    "66660f1f440000", "669c", "66489c", "f39c", "666648e8f0ffffff", "6648ffd0",
    "66480f8400010000", "6648c3", "f7c701000000", "f6c201", "f7050010000001000000",
    "48f6050010000080", "f7d8", "ff742408", "ff3424", "41ff7610",
    "48f7df", "f6d0", "49f7d3", "66f7d8", "f7e1", "49f7e0", "48f7e9", "f6e9", "f6f1",
    "66f7f1", "49f7fb", "f7f9", "48f75c2408", "41f6241b", "f0f65c2408", "f048f7542408",
    "48f72500100000", "48f73500100000", "f73d00100000", "f0f71d00100000", "66f71500100000",
    "f62d00100000", "49f73500100000",
    "ffc0", "48ffcf", "fe4308", "f048ff4c2408", "ff0500100000", "6641ffc9", "660f6cc1",
    "660f6d4c2410", "0f180c24", "0f180500100000", "0fbae003", "480fba6c240805",
    "f00fba74240807", "0fba3d0010000001",
]
VECTORS32 = [
    "55", "e800000000", "5b", "8b0500100000", "ff2500100000", "ff1500100000",
    "e3fe", "67e3fe", "e2fe", "67e2fe", "e9fbffffff", "40", "60", "06", "c20400",
    "f30f1efb", "89e5", "83ec1c", "8b442404", "f3a5", "9c", "9d", "ffd0", "ffe2",
    "7405", "0f8500010000", "89ff", "8db42600000000", "61", "90", "6690", "669c",
    "f744240401000000", "f6c201", "ff742404", "ff3424", "ffb300100000",
    "f7d8", "f75c2404", "f0f75c2404", "f6542404", "f7642404", "f7e9", "f7f1", "f7f9", "66f7f1",
    "f6f1", "f73500100000", "f7bb00100000",
    "ff442404", "fec9", "660f6cc1", "0f18542404", "0fbae11f", "0fba6c240405",
]


def _value(bits, data):
    mask = (1 << bits) - 1
    return st.one_of(
        st.sampled_from([0, 1, 2, 0xffff, 0x10000, 0xffffffff, mask, (1 << 32) & mask,
                         ((1 << 32) + 1) & mask]),
        st.integers(0, mask),
        st.integers(data, data + 0x3000),
    )


def states(bits):
    data, stack = (DATA64, STACK64) if bits == 64 else (DATA32, STACK32)
    names = GPRS if bits == 64 else GPRS[:8]
    regs = {name: _value(bits, data) for name in names if name != "rsp"}
    regs["rsp"] = st.integers(0, 64).map(lambda k: stack - 8 * k) | st.integers(stack - 0x100, stack)
    flags = st.sets(st.sampled_from([CF, PF, AF, ZF, SF, DF, OF]))
    regs["eflags"] = flags.map(lambda fs: 0x202 | sum(fs))
    return st.fixed_dictionaries(regs)


def check(arch, code, addr, slot, values, how):
    """Run the original and the plan from ``values``; compare."""
    plan = arch.analyze(code, addr)
    code = code[:plan.length]
    if is_rep_string(plan.text):
        values = dict(values, rcx=values["rcx"] & 7)
    regs = make_regs(rip=addr, **values)
    try:
        original = run_original(arch.bits, code, addr, regs, is_rep_string(plan.text))
    except UcError:
        return None
    planned, ran = run_plan(arch.bits, plan, code, addr, slot, regs, how)
    compare(original, planned, ignore_pages={slot & ~0xfff})
    return ran


def _ways(plan):
    """Every way the tracer may run ``plan``: its strategy, a boosted copy
    when it has one, and the step every plan must support."""
    return sorted({plan.strategy, "step"} | ({"boost"} if plan.boostable else set()))


_SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("code", VECTORS64)
@_SETTINGS
@given(values=states(64), slot=st.sampled_from([NEAR64, FAR64]), data=st.data())
def test_plans_match_execution_64(code, values, slot, data):
    plan = X86_64.analyze(bytes.fromhex(code), V64)
    how = data.draw(st.sampled_from(_ways(plan)))
    assume(check(X86_64, bytes.fromhex(code), V64, slot, values, how) is not None)


@pytest.mark.parametrize("code", VECTORS32)
@_SETTINGS
@given(values=states(32), data=st.data())
def test_plans_match_execution_32(code, values, data):
    plan = I386.analyze(bytes.fromhex(code), V32)
    how = data.draw(st.sampled_from(_ways(plan)))
    assume(check(I386, bytes.fromhex(code), V32, SLOT32, values, how) is not None)


@pytest.mark.parametrize("how", ["emulate", "step"])
def test_wraparound_32(how):
    """eip arithmetic mod 2**32 under real execution."""
    for code, addr in (("e920000000", 0xfffffff0), ("e900e0ffff", 0x1000), ("e800000000", 0xfffffffb)):
        values = dict(rsp=STACK32, eflags=0x202)
        assert check(I386, bytes.fromhex(code), addr, SLOT32, values, how) == how


def test_differential_catches_a_wrong_plan():
    """The harness itself: a plan whose ip fix is off must not pass."""
    plan = X86_64.analyze(bytes.fromhex("4889c3"), V64)
    regs = make_regs(rip=V64, rsp=STACK64, rax=5)
    original = run_original(64, bytes.fromhex("4889c3"), V64, regs, False)
    plan._mask = (1 << 64) - 2
    planned, _ = run_plan(64, plan, bytes.fromhex("4889c3"), V64 + 1, FAR64, regs, "step")
    with pytest.raises(AssertionError):
        compare(original, planned, ignore_pages={FAR64})


# -- real code ---------------------------------------------------------------
def _bench():
    path = Path(__file__).resolve().parents[2] / "bench" / "arch_coverage.py"
    spec = importlib.util.spec_from_file_location("arch_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BINARIES = {
    "libc64": ["/lib/x86_64-linux-gnu/libc.so.6"],
    "libc32": ["/usr/lib32/libc.so.6", "/lib/i386-linux-gnu/libc.so.6"],
    "python": sorted(p for p in __import__("glob").glob("/usr/bin/python3.*")
                     if not os.path.islink(p) and not p.endswith("-config")),
}


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_real_functions(binary):
    """Every instruction of a few real functions: refused with a reason, or
    planned so that its preferred run and its step path match execution."""
    paths = [p for p in BINARIES[binary] if os.path.exists(p)]
    if not paths:
        pytest.skip(f"no {binary} binary on this host (looked for {BINARIES[binary]})")
    bench = _bench()
    functions = bench.sample_functions(paths[0], 10)
    checked = skipped = refused = 0
    for arch, name, addr, code in functions:
        slots = (NEAR64 if arch.bits == 64 else SLOT32,)
        for at, insn, _ in bench.iter_instructions(arch, addr, code):
            try:
                plan = arch.analyze(insn, at)
            except UnsupportedInstruction as exc:
                assert exc.reason
                refused += 1
                continue
            rnd = random.Random(at)
            data, stack = (DATA64, STACK64) if arch.bits == 64 else (DATA32, STACK32)
            values = {r: rnd.choice([data + rnd.randrange(0x2000), rnd.getrandbits(arch.bits), 1])
                      for r in (GPRS if arch.bits == 64 else GPRS[:8])}
            values.update(rsp=stack - 8 * rnd.randrange(8), eflags=0x202 | rnd.choice([0, ZF, CF | SF]))
            for how in _ways(plan):
                for slot in slots:
                    try:
                        ran = check(arch, insn, at, slot, values, how)
                    except AssertionError as exc:
                        raise AssertionError(f"{name}+{at - addr:#x} {plan.text} ({how}): {exc}") from None
                    if ran is None:
                        skipped += 1
                    else:
                        checked += 1
    assert checked > 200 and checked > 4 * skipped, (checked, skipped, refused)
