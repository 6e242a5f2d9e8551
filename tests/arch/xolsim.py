"""Test doubles for the arch tests: registers, a fake tracee memory, and a
unicorn CPU to compare a plan against the real instruction.

The unicorn CPU maps memory lazily: every page, when first touched, gets
contents derived from its address alone, so two runs from the same register
state see the same world wherever random pointers lead.
"""

from __future__ import annotations

import random
import types

from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_MEM_UNMAPPED, UC_MODE_32, UC_MODE_64, Uc, UcError
from unicorn import x86_const as U

PAGE = 0x1000
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
FLAGS_COMPARED = 0xdd5          # CF PF AF ZF SF TF DF OF
_UC64 = {name: getattr(U, f"UC_X86_REG_{name.upper()}") for name in GPRS + ("rip", "eflags")}
_UC32 = {name: getattr(U, f"UC_X86_REG_E{name[1:].upper()}")
         for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip")}
_UC32["eflags"] = U.UC_X86_REG_EFLAGS
_XMM = tuple(getattr(U, f"UC_X86_REG_XMM{i}") for i in range(8))


def make_regs(**values):
    """A register set with every user_regs_struct field, zero unless given."""
    fields = dict.fromkeys(GPRS + ("rip", "cs", "ss", "ds", "es", "fs", "gs",
                                   "fs_base", "gs_base", "orig_rax"), 0)
    fields["eflags"] = 0x202
    fields.update(values)
    return types.SimpleNamespace(**fields)


class FakeMemory:
    """Tracee memory over a few mapped ranges; anything else raises OSError,
    as /proc/PID/mem does for an unmapped address."""

    def __init__(self, *ranges):
        self.ranges = ranges
        self.bytes = {}

    def _check(self, addr, size):
        if not any(lo <= addr and addr + size <= hi for lo, hi in self.ranges):
            raise OSError(14, f"unmapped {addr:#x}")

    def read(self, addr, size):
        self._check(addr, size)
        return bytes(self.bytes.get(addr + i, 0) for i in range(size))

    def write(self, addr, data):
        self._check(addr, len(data))
        for i, b in enumerate(data):
            self.bytes[addr + i] = b

    def word(self, addr, size):
        return int.from_bytes(self.read(addr, size), "little")


def page_content(page):
    return random.Random(page).randbytes(PAGE)


class Machine:
    """One unicorn CPU with lazily mapped memory; also a ``Memory`` for
    plans (reads and writes map pages on demand)."""

    def __init__(self, bits):
        self.bits = bits
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64 if bits == 64 else UC_MODE_32)
        self.regmap = _UC64 if bits == 64 else _UC32
        self.mask = (1 << bits) - 1
        self.pages = set()
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)

    def _on_unmapped(self, uc, access, addr, size, value, data):
        try:
            self.map_range(addr, size)
        except UcError:
            return False
        return True

    def map_range(self, addr, size):
        for page in range(addr & ~(PAGE - 1), addr + max(size, 1), PAGE):
            page &= self.mask
            if page not in self.pages:
                self.uc.mem_map(page, PAGE)
                self.uc.mem_write(page, page_content(page))
                self.pages.add(page)

    def read(self, addr, size):
        self.map_range(addr, size)
        return bytes(self.uc.mem_read(addr, size))

    def write(self, addr, data):
        self.map_range(addr, len(data))
        self.uc.mem_write(addr, bytes(data))

    def set_regs(self, regs):
        for name, reg in self.regmap.items():
            self.uc.reg_write(reg, getattr(regs, name) & self.mask)

    def get_regs(self):
        return make_regs(**{name: self.uc.reg_read(reg) for name, reg in self.regmap.items()})

    def state(self):
        """Registers and memory, as compared between two runs."""
        regs = {name: self.uc.reg_read(reg) for name, reg in self.regmap.items()}
        regs["eflags"] &= FLAGS_COMPARED
        regs["xmm"] = tuple(self.uc.reg_read(r) for r in _XMM)
        return regs, {p: bytes(self.uc.mem_read(p, PAGE)) for p in self.pages}

    def step(self, count=1, until=0):
        self.uc.emu_start(self.uc.reg_read(self.regmap["rip"]), until, count=count)

    def run_inside(self, lo, hi, limit=10000):
        """Run until ip leaves [lo, hi): a boosted slot until it jumps away."""
        def stop_outside(uc, address, size, data):
            if not lo <= address < hi:
                uc.emu_stop()
        hook = self.uc.hook_add(UC_HOOK_CODE, stop_outside)
        try:
            self.step(count=limit)
        finally:
            self.uc.hook_del(hook)


def is_rep_string(text):
    words = text.split()
    return (len(words) > 1 and words[0] in ("rep", "repe", "repz", "repne", "repnz")
            and words[1].startswith(("movs", "stos", "lods", "cmps", "scas")))


def run_original(bits, code, addr, regs, rep):
    """The instruction executed at home: one instruction, or a whole rep."""
    m = Machine(bits)
    m.write(addr, code)
    m.set_regs(regs)
    if rep:
        m.step(count=10000, until=(addr + len(code)) & m.mask)
    else:
        m.step()
    return m.state()


def run_plan(bits, plan, code, addr, slot, regs, how):
    """The same instruction as the tracer runs it with ``plan``: "emulate",
    "boost" (falls back to step when boost_code is None) or "step".
    Returns (state, how it actually ran)."""
    m = Machine(bits)
    m.write(addr, code)
    ns = make_regs(**vars(regs))
    if how == "emulate":
        before = dict(vars(ns))
        if plan.emulate(ns, m):
            if plan.next_ip(addr) is not None:
                # The tracer moves ip alone for these: emulation must agree.
                assert dict(vars(ns), rip=None) == dict(before, rip=None), plan
                assert ns.rip == plan.next_ip(addr), plan
            m.set_regs(ns)
            return m.state(), "emulate"
        how = "step"
    if how == "boost":
        code = plan.boost_code(addr, slot)
        if code is not None:
            assert len(code) == 32
            m.write(slot, code)
            ns.rip = slot
            m.set_regs(ns)
            m.run_inside(slot, slot + len(code))
            return m.state(), "boost"
        how = "step"
    m.write(slot, plan.step_code(addr, slot))
    before = dict(vars(ns))
    token = plan.pre_xol(ns, addr, slot)
    assert ns.rip == slot
    if plan.plain_step:
        # The tracer then steps with ip alone: the plan must agree.
        assert dict(vars(ns), rip=None) == dict(before, rip=None), plan
    for _ in range(10000):
        m.set_regs(ns)
        m.step()
        got = m.get_regs()
        for name in GPRS + ("rip", "eflags"):
            setattr(ns, name, getattr(got, name))
        stepped = dict(vars(ns))
        if plan.post_xol(ns, m, addr, slot, token):
            if plan.plain_step:
                mask = (1 << bits) - 1
                assert dict(vars(ns), rip=None) == dict(stepped, rip=None), plan
                assert ns.rip == (stepped["rip"] + addr - slot) & mask, plan
            break
    else:
        raise AssertionError("post_xol never finished")
    m.set_regs(ns)
    return m.state(), "step"


def compare(original, planned, ignore_pages=()):
    """Assert two states match; pages only one run touched must still hold
    their initial contents in the other."""
    (regs_a, mem_a), (regs_b, mem_b) = original, planned
    assert {k: hex(v) if isinstance(v, int) else v for k, v in regs_a.items()} == \
        {k: hex(v) if isinstance(v, int) else v for k, v in regs_b.items()}
    for page in set(mem_a) | set(mem_b):
        if page in ignore_pages:
            continue
        a = mem_a.get(page) or page_content(page)
        b = mem_b.get(page) or page_content(page)
        assert a == b, f"memory differs in page {page:#x}"
