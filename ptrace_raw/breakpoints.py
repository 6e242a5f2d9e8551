"""Physical breakpoints: one int3 per address, however many probes share it.

Logical probes (what a user asked for) point at sites; a site owns the saved
byte, the plan for the displaced instruction and its boosted slot, so two
probes at one address share one int3 and removing one cannot corrupt text.
"""

from __future__ import annotations

from ._libc import word_arg


class Site:
    __slots__ = ("addr", "saved", "plan", "emulate", "boost_slot", "goto", "goto_arg",
                 "in_place", "plain_step", "step_end", "step_end_arg", "entry", "returns",
                 "internal", "module", "vaddr", "sdt", "gone")

    def __init__(self, addr: int, saved: bytes, plan):
        self.addr = addr
        self.saved = saved
        self.plan = plan
        #: decided once: the hit path never asks the plan what it is
        self.emulate = plan.strategy == "emulate"
        self.boost_slot = None
        #: where the thread goes on when running the instruction moves only
        #: ip (a skipped nop or jmp, the boosted slot): no other register
        #: is read or written for such a hit
        self.goto = self.goto_arg = None
        goto = plan.next_ip(addr) if self.emulate else None
        if goto is not None:
            self.go_to(goto)
        #: the instruction leaves ip where the int3's trap does (a one-byte
        #: nop, as a USDT marker is): a hit need not write it
        self.in_place = self.goto == addr + 1
        #: a copy stepped with ip alone (``plain_step`` in arch/base.py)
        #: when there is no goto; ``step_end`` is where such a step ends,
        #: taken home, and ``step_end_arg`` that address made ready for the
        #: resume
        self.plain_step = plan.plain_step and not self.emulate
        self.step_end = addr + plan.length
        self.step_end_arg = word_arg(self.step_end) if self.plain_step else None
        #: entry probes and return probes set here
        self.entry = []
        self.returns = []
        #: tracer-internal handlers (the loader hook), run before probes
        self.internal = []
        #: where the site is in file terms, for named arguments and USDT
        self.module = None
        self.vaddr = None
        self.sdt = None
        #: removed from the text (by a handler, while its hit is served)
        self.gone = False

    def go_to(self, ip: int) -> None:
        """Hits go on at ``ip``: with ``goto_arg``, the resume's argument
        made once (``word_arg``)."""
        self.goto = ip
        self.goto_arg = word_arg(ip)

    def copy(self) -> "Site":
        dup = Site.__new__(Site)
        for name in Site.__slots__:
            setattr(dup, name, getattr(self, name))
        dup.entry, dup.returns, dup.internal = list(self.entry), list(self.returns), list(self.internal)
        return dup

    @property
    def unused(self) -> bool:
        return not (self.entry or self.returns or self.internal)


class Breakpoints:
    """The int3s of one address space."""

    def __init__(self):
        self.sites = {}
        #: addresses whose int3 was removed while threads ran: a trap from
        #: one of them may still be in flight and must be rewound, not
        #: delivered
        self.removed = set()

    def get(self, addr: int):
        return self.sites.get(addr)

    def insert(self, proc, addr: int, plan, insn: bytes) -> Site:
        site = self.sites.get(addr)
        if site is None:
            saved = proc.read(addr, len(insn))
            proc.write(addr, insn)
            site = self.sites[addr] = Site(addr, saved, plan)
            self.removed.discard(addr)
        return site

    def remove(self, proc, site: Site) -> None:
        if self.sites.get(site.addr) is site:
            del self.sites[site.addr]
            proc.write(site.addr, site.saved)
            self.removed.add(site.addr)
            site.gone = True

    def restore_all(self, proc) -> None:
        for site in list(self.sites.values()):
            try:
                proc.write(site.addr, site.saved)
            except OSError:
                pass
        self.sites.clear()
