"""Out-of-line execution areas: the R-X pages in a tracee that hold the
return trampoline, the syscall used for injection, boosted copies and the
per-thread step slots.

Areas are mapped by injecting mmap, PROT_READ|PROT_EXEC only, and written
through /proc/PID/mem.  Each lies within +-2 GiB of the code it serves so a
rip-relative instruction can be boosted with its displacement re-encoded;
code far from every area gets an area of its own.  A boosted slot is never
given to another instruction while the process lives: a thread may be
inside one (or a signal frame may return into one) without the tracer
knowing, which is also why areas stay mapped after detach, like the
kernel's ``[uprobes]`` page.
"""

from __future__ import annotations

import errno
import os

from ._libc import word_arg
from .consts import MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_EXEC, PROT_READ
from .errors import TracerError

AREA_SIZE = 64 * 1024
_REACH = (1 << 31) - AREA_SIZE - (1 << 20)
_PAGE = 4096
_HEADER = 32  # int3 trampoline at 0, syscall instruction at 16


class XolError(TracerError):
    """No out-of-line area could be mapped where it was needed."""


class XolArea:
    __slots__ = ("start", "end", "next")

    def __init__(self, start: int, header: bool):
        self.start = start
        self.end = start + AREA_SIZE
        #: the first free byte: areas are handed out front to back, never back
        self.next = start + (_HEADER if header else 0)

    def room(self, size: int) -> bool:
        return self.next + size <= self.end

    def take(self, size: int):
        if not self.room(size):
            return None
        at, self.next = self.next, self.next + size
        return at

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end


class XolSpace:
    """The areas of one process and the slots handed out in them."""

    def __init__(self, first: XolArea, slot_size: int):
        self.areas = [first]
        self.slot_size = slot_size
        self.trampoline = first.start
        self.syscall_at = first.start + 16
        self._step_slots = {}
        self._free_step = []
        #: each step slot's address made into the resume's argument once
        #: (``word_arg``), as every stepped hit passes it
        self.step_args = {}
        #: which plan's code each step slot holds now (to skip rewrites)
        self.step_holds = {}
        #: the boosted slot each probed address was given, with its code
        self._boosted = {}

    @classmethod
    def create(cls, proc, thread, near: int) -> "XolSpace":
        """Map the first area with ``thread`` stopped and every other thread
        of ``proc`` stopped too: the mmap is injected through a syscall
        instruction written over the thread's current instruction, which no
        other thread may run meanwhile."""
        regs = thread.get_regs()
        arch = thread.arch
        ip = arch.ip(regs)
        saved = proc.read(ip, len(arch.syscall_insn))
        proc.write(ip, arch.syscall_insn)
        try:
            start = _map_near(proc, thread, ip, near, arch)
        finally:
            proc.write(ip, saved)
        proc.write(start, arch.breakpoint_insn)
        proc.write(start + 16, arch.syscall_insn)
        return cls(XolArea(start, header=True), arch.xol_slot_size)

    def clone(self) -> "XolSpace":
        """The same areas as seen by a forked child (inherited mappings).
        The child's memory is a copy made at the fork itself, and other
        threads' hits may have written slots since, before the fork event
        reached us: what the slots hold is not carried over.  The child
        writes each step slot afresh and takes new boosted slots for probes
        set again."""
        dup = XolSpace.__new__(XolSpace)
        dup.__dict__.update(self.__dict__)
        dup.areas = [XolArea.__new__(XolArea) for _ in self.areas]
        for new, old in zip(dup.areas, self.areas):
            new.start, new.end, new.next = old.start, old.end, old.next
        dup._step_slots = {}
        dup._free_step = list(self._free_step) + list(self._step_slots.values())
        dup.step_holds = {}
        dup.step_args = dict(self.step_args)
        dup._boosted = {}
        return dup

    def __contains__(self, addr: int) -> bool:
        return any(addr in a for a in self.areas)

    def area_near(self, proc, thread, addr: int, arch, size: int) -> XolArea:
        """An area within rel32 reach of ``addr`` with ``size`` bytes free,
        mapping a new one when none has room."""
        for area in reversed(self.areas):
            if area.room(size) and arch.in_rel32_reach(addr, area.start) \
                    and arch.in_rel32_reach(addr, area.end):
                return area
        area = XolArea(_map_near(proc, thread, self.syscall_at, addr, arch), header=False)
        self.areas.append(area)
        return area

    def boost_slot(self, proc, thread, addr: int, plan, arch):
        """Write ``plan``'s boosted copy into a fresh slot near ``addr``;
        None when the plan cannot be boosted from there.  Slots are never
        freed, so the slot ``addr`` had before is taken again when it holds
        the very copy this plan makes there: a probe switched on and off at
        one place keeps one slot instead of taking a new one each time."""
        kept = self._boosted.get(addr)
        if kept is not None and plan.boost_code(addr, kept[0]) == kept[1]:
            return kept[0]
        area = self.area_near(proc, thread, addr, arch, self.slot_size)
        code = plan.boost_code(addr, area.next)
        if code is None:
            return None
        slot = area.take(self.slot_size)
        proc.write(slot, code.ljust(self.slot_size, arch.breakpoint_insn))
        self._boosted[addr] = (slot, code)
        return slot

    def block(self, proc, thread, near: int, size: int, arch) -> int:
        """``size`` bytes (at most an area) for code of a variable length,
        within rel32 reach of ``near``: an inline probe's trampoline.  Like
        a boosted slot, a block is never reused while the process lives."""
        return self.area_near(proc, thread, near, arch, size).take(size)

    def step_slot(self, tid: int) -> int:
        slot = self._step_slots.get(tid)
        if slot is None:
            slot = self._free_step.pop() if self._free_step else None
            if slot is None:
                for area in self.areas:
                    slot = area.take(self.slot_size)
                    if slot is not None:
                        break
                else:
                    raise XolError("out of out-of-line slots")
                self.step_args[slot] = word_arg(slot)
            self._step_slots[tid] = slot
        return slot

    def release_thread(self, tid: int) -> None:
        slot = self._step_slots.pop(tid, None)
        if slot is not None:
            self._free_step.append(slot)


def _map_near(proc, thread, syscall_at: int, near: int, arch) -> int:
    """Inject mmap for an area within rel32 reach of ``near``: the first
    free gap found in /proc/PID/maps, claimed with MAP_FIXED_NOREPLACE."""
    prot, flags = PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS
    why = "no free address range in reach"
    for hint in _candidates(proc, near, arch):
        got = proc.inject_syscall(
            thread, syscall_at,
            lambda a, regs, h=hint: a.set_mmap(regs, h, AREA_SIZE, prot,
                                               flags | (MAP_FIXED_NOREPLACE if h else 0)))
        if -4096 < got < 0:
            why = f"mmap failed: {os.strerror(-got)}"
            if -got in (errno.EPERM, errno.EACCES):
                why += " (a seccomp filter or security module forbids executable mappings)"
            continue
        # The result is sign-extended to tell errors: a 32-bit tracee's
        # area above 2 GiB (near its libraries) reads as negative.
        got &= (1 << arch.bits) - 1
        if arch.in_rel32_reach(near, got) and arch.in_rel32_reach(near, got + AREA_SIZE):
            return got
        # The kernel placed it elsewhere (the hint 0, or a kernel without
        # MAP_FIXED_NOREPLACE taking it as a hint): give it back.
        nr = arch.syscall_numbers["munmap"]
        proc.inject_syscall(thread, syscall_at,
                            lambda a, regs, at=got: a.set_syscall(regs, nr, at, AREA_SIZE))
        why = f"the kernel placed the area at {got:#x}, out of reach"
    raise XolError(f"cannot map an out-of-line area near {near:#x} in pid {proc.pid}: {why}")


def _candidates(proc, near: int, arch):
    """The top of each free gap, closest to ``near`` first (the top, so a
    heap growing up from the bottom of a gap keeps its room); 0 (let the
    kernel choose) last, which is all a 32-bit tracee needs."""
    maps = sorted((m.start, m.end) for m in proc.maps())
    gaps = []
    prev_end = 1 << 16
    for start, end in maps:
        if start - prev_end >= AREA_SIZE + 2 * _PAGE:
            gaps.append((prev_end + _PAGE, start - _PAGE))
        prev_end = max(prev_end, end)
    picks = []
    for lo, hi in gaps:
        at = hi - AREA_SIZE
        at -= at % _PAGE
        if at >= lo and abs(at - near) < _REACH:
            picks.append((abs(at - near), at))
    return [at for _, at in sorted(picks)[:8]] + [0]
