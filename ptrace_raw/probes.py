"""Logical probes and the engine that runs them on every hit.

One hit, per thread (design.md): the int3 traps, ip := V, the handlers of
every probe at V run, return probes hijack the return address, then the
displaced instruction runs by the plan chosen when the probe was set:
emulated (one stop), boosted (one stop) or stepped in a per-thread slot
(two stops).
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import traceback
from time import monotonic_ns as _monotonic_ns
from typing import Callable, Optional

import arch as _arch

from . import binding
from ._libc import ptrace_rc as _ptrace_rc, ptrace_small as _ptrace
from .breakpoints import Breakpoints
from .consts import PTRACE_CONT, PTRACE_PEEKUSER, PTRACE_POKEUSER, PTRACE_SINGLESTEP
from .debuginfo import SplitDwarf, debug_dirs_of
from .elf import ElfError, ElfImage
from .errors import ProbeError, TracerError
from .lines import source_line
from .hit import Hit
from .ifunc import InTracee
from .libraries import LibraryNotFound, elf_bits, resolve_binary
from .loop import Engine
from .maps import mapped_files
from .memory import ReadWindow
from .modules import ModuleMap
from .params import format_value, function_params, function_return
from .resolve import original_code, places
from .specs import parse_spec
from .thread import IP_OFFSET
from .unwind import cfa_at, function_size, readable_cfi, unwind
from .variables import Frame as VarFrame, scope_at, value_of
from .xol import XolError, XolSpace

_ARCH_BY_BITS = {64: _arch.X86_64, 32: _arch.I386}
_FAULTS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL})

#: A probe's last Hit is renewed for its next entry hit instead of a new one
#: (a class call is about a fifth of a boosted hit's Python), but only when
#: nothing kept it.  A Hit a handler stored, or one a kept traceback
#: reaches, has more references and stays as it was.  Without getrefcount
#: (not CPython) nothing is renewed.
_refcount = getattr(sys, "getrefcount", lambda obj: -1)


#: handler exceptions kept in ``ProbeEngine.errors``, and shown on stderr
KEPT_ERRORS = 100
_SHOWN_ERRORS = 10


class _Holder:
    spare_hit = None


def _unheld_refs() -> int:
    """What getrefcount says of a spare that only its holder holds, read the
    way the hit path reads it: 3 on CPython 3.11 (the holder's reference,
    the local and the argument), but a later interpreter may borrow where
    this one counts (3.14 loads locals without a reference), so it is
    measured here rather than assumed."""
    holder = _Holder()
    holder.spare_hit = _Holder()
    hit = holder.spare_hit
    refs = _refcount(hit)
    hit.spare_hit = None
    return refs


_SPARE_REFS = _unheld_refs()
MAX_RETURN_DEPTH = 64
#: bytes of stack a backtrace reads at a time: the saved registers and
#: return addresses of the next frames up come with it
_STACK_WINDOW = 4096


class Probe:
    """What a user asked for: a spec and a handler.  ``hits`` counts every
    hit in every process; ``keep_args`` makes a return probe save that many
    entry arguments for ``hit.entry_args``."""

    def __init__(self, spec, handler: Optional[Callable], keep_args: int = 0, say=None):
        self.spec = spec
        self._say = say
        self.handler = handler
        self.keep_args = keep_args
        self.hits = 0
        #: things worth telling the user, said once (sites of a line, skips)
        self.notes = []
        #: ElfImage -> where the spec resolves in it (symbols and decoding
        #: done once, whatever the number of processes mapping the file)
        self.places = {}
        #: per pid: the addresses this probe is set at
        self.sites = {}
        #: (image, file address) -> the function the spec matched there
        #: (``Place.function``), for ``Hit.function``
        self.functions = {}
        #: removed with ``remove_probe``: instances of a return probe
        #: recorded before no longer call it
        self.removed = False
        #: the Hit its last entry hit made, renewed for the next one when
        #: nothing else holds it (see ``_SPARE_REFS``)
        self.spare_hit = None
        #: the user's probe a hidden one works for (``_watch_resolver``)
        self.owner = None

    @property
    def is_return(self) -> bool:
        return self.spec.is_return

    def note(self, message: str) -> None:
        """Say something about this probe once (on stderr, and kept in
        ``notes`` for tools that show it their own way)."""
        if message not in self.notes:
            self.notes.append(message)
            (self._say or Engine.say)(f"probe '{self.spec.text}': {message}")

    def __repr__(self):
        return f"<Probe {self.spec.text} hits={self.hits}>"


class _Pending:
    """A hijacked return: where the real return address was and what to
    hand the return handler."""

    __slots__ = ("probe", "orig", "sp", "args", "time_ns", "entry", "signals")

    def __init__(self, probe, orig, sp, args, time_ns, entry, signals):
        self.probe, self.orig, self.sp, self.args, self.time_ns = probe, orig, sp, args, time_ns
        #: the probed function's address, which a return hit is about
        self.entry = entry
        #: the thread's count of delivered signals when recorded: another
        #: count means a signal handler may have run since, on another stack
        self.signals = signals


class _HeldWrite:
    """Tracee memory that holds back its first write: a return probe's swap
    of the return address, kept until the instruction at the entry has run,
    so that an emulated push just below it goes out in the same write (one
    system call fewer per call).  Reads and writes that overlap it see it
    written first.  The held write alone goes through ``forced`` (the slot
    the call just wrote); everything the emulation reads or writes,
    the joined write included, goes through ``mem``, the program's view."""

    __slots__ = ("forced", "mem", "addr", "data")

    def __init__(self, forced, mem):
        self.forced = forced
        self.mem = mem
        #: the held write (-1 until the first write comes; data None once out)
        self.addr = -1
        self.data = None

    def _overlaps(self, addr: int, size: int) -> bool:
        return self.data is not None and addr < self.addr + len(self.data) \
            and self.addr < addr + size

    def read(self, addr: int, size: int) -> bytes:
        if self._overlaps(addr, size):
            self.finish()
        return self.mem.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        if self.addr < 0:
            self.addr, self.data = addr, data
        elif self.data is not None and addr + len(data) == self.addr:
            self.mem.write(addr, data + self.data)
            self.data = None
        else:
            if self._overlaps(addr, len(data)):
                self.finish()
            self.mem.write(addr, data)

    def finish(self) -> None:
        if self.data is not None:
            data, self.data = self.data, None
            self.forced.write(self.addr, data)


def _glibc_tunables(pid: int):
    """GLIBC_TUNABLES of process ``pid`` (None without), which can turn CPU
    features off for glibc's IFUNC choices, so that with the same file and
    CPU the same tunables select the same; False if it cannot be read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    return next((e[15:] for e in env if e.startswith(b"GLIBC_TUNABLES=")), None)


def _signed_values(found) -> dict:
    """{name: value} of (Param, raw) pairs as their types read: signed
    ones sign-extended, a float or double as a Python float (its bits as
    an integer would compare wrong: ``var('ratio') > 0.5``)."""
    out = {}
    for param, raw in found:
        if raw is not None and param.is_float and param.size in (4, 8):
            raw = _FLOATS[param.size].unpack(
                (raw & ((1 << (8 * param.size)) - 1)).to_bytes(param.size, "little"))[0]
        elif raw is not None and param.signed and param.size:
            bits = param.size * 8
            raw &= (1 << bits) - 1
            raw -= (1 << bits) if raw >> (bits - 1) else 0
        out[param.name] = raw
    return out


_FLOATS = {4: struct.Struct("<f"), 8: struct.Struct("<d")}


def _formatted(found, hit, strings: bool) -> dict:
    """{name: text} of (Param, raw) pairs by their types, "?" for none."""
    reader = (lambda addr: hit.read_cstring(addr)) if strings else None
    return {p.name: format_value(p, raw, reader) if raw is not None else "?" for p, raw in found}


def _forget_left_frames(thread, stack, sp: int, fresh: bool, mem, arch, tramp: int) -> None:
    """Drop the return-probe instances whose frames are gone: those at
    ``sp`` when a fresh call reuses that slot, and those deeper than ``sp``,
    which a longjmp left.  Depth compares only within one stack: past a
    signal delivered since an instance was recorded, the thread may be on
    another (a handler's sigaltstack, or the stack the handler
    interrupted), so such an instance goes only once its slot no longer
    holds the trampoline.  Instances below one still in use are kept (the
    others are found at a later hit)."""
    now = thread.signals_delivered
    kept = []
    while stack and stack[-1].sp <= sp:
        pending = stack.pop()
        if pending.sp == sp:
            if not fresh:
                kept.append(pending)
            continue
        if pending.signals != now:
            try:
                still = arch.read_word(mem, pending.sp) == tramp
            except OSError:
                still = False
            if still:
                kept.append(pending)
    stack.extend(reversed(kept))


class _ProcState:
    def __init__(self, xol: XolSpace, debug_dirs: tuple[str, ...]):
        self.xol = xol
        self.bps = Breakpoints()
        self.modules = ModuleMap(debug_dirs)
        #: probes whose BIN is not mapped here yet (a library dlopen'ed later)
        self.waiting = []
        #: the bitness of the process's main image, for library lookups
        self.bits = 64
        #: USDT semaphore address -> how much we added to it
        self.semaphores = {}
        #: boosted slot -> the probe address its copy came from
        self.boosted = {}
        #: where in a boosted copy a fault needs undoing (``boost_fault_at``)
        #: -> (the probe address, its plan)
        self.boost_faults = {}
        #: GLIBC_TUNABLES of the process (``_glibc_tunables``), or "?":
        #: not read yet
        self.tunables = "?"

    def fork_copy(self) -> "_ProcState":
        """State for a forked child: the same addresses in a copied address
        space, every mutable part its own."""
        dup = _ProcState(self.xol.clone(), self.modules.debug_dirs)
        dup.bps.sites = {addr: site.copy() for addr, site in self.bps.sites.items()}
        dup.bps.removed = set(self.bps.removed)
        dup.modules = self.modules.copy()
        dup.waiting = list(self.waiting)
        dup.bits = self.bits
        dup.semaphores = dict(self.semaphores)
        dup.boosted = dict(self.boosted)
        dup.boost_faults = dict(self.boost_faults)
        dup.tunables = self.tunables
        return dup


class ProbeEngine(Engine):
    def __init__(self, tracer, fatal_errors: bool = False, on_message=None, debug_dirs=None):
        self.tracer = tracer
        self.fatal_errors = fatal_errors
        self.say = on_message or Engine.say
        #: where separate debug files are looked for (see debuginfo)
        self.debug_dirs = debug_dirs_of(debug_dirs)
        #: what ``say_once`` has said
        self._said = set()
        #: (image, GLIBC_TUNABLES) -> {IFUNC resolver: implementation}, as
        #: resolvers watched in tracees returned them (``_watch_resolver``)
        self._ifunc_answers = {}
        self.probes = []
        #: the first KEPT_ERRORS (probe, exception) pairs handlers raised;
        #: each exception holds its traceback and the frames in it, so a
        #: handler failing on every hit must not keep them all
        self.errors = []
        #: every handler exception, kept or not
        self.error_count = 0
        #: threads told that their return probes are skipped (CET shadow stack)
        self._shadow_warned = set()
        self._fatal = None
        #: add-ons told about process events after the engine (inline probes)
        self.hooks = []
        #: (image, link-time address, is a caller) -> its Frame: a
        #: backtrace names the same return addresses hit after hit, and
        #: finding one's line goes through the file's path (a realpath and
        #: a stat) to its line table
        self._frames = {}
        #: image -> its call-frame information, for backtraces (looked up
        #: by path, the file is stat'ed each time: it may have changed,
        #: but a module's image is the one mapped)
        self._cfis = {}

    # -- probes ----------------------------------------------------------------
    def check_probe(self, spec_text: str, pids=(), bits: Optional[int] = None) -> None:
        """add_probe's checks before it touches a process, alone and
        silent (what they would say, add_probe says), with the files the
        processes ``pids`` map among the libraries a spec may name, and a
        library named looked up for ``bits`` (else the bitness of ``pids``
        when they share one, else 64)."""
        mapped, seen = [], set()
        for pid in pids:
            try:
                mapped += mapped_files(pid)
            except OSError:
                pass  # attaching will say what is wrong with it
            seen.add(elf_bits(f"/proc/{pid}/exe"))
        if bits is None and len(seen) == 1:
            bits = seen.pop()
        self._validate(Probe(parse_spec(spec_text), None, 0, lambda message: None), mapped, bits)

    def add_probe(self, spec_text: str, handler=None, keep_args: int = 0) -> Probe:
        probe = Probe(parse_spec(spec_text), handler, keep_args, self.say_once)
        self._validate(probe)
        done = []

        def install(proc):
            self._install(proc, probe)
            done.append(proc)

        try:
            self.for_each_process(install)
        except BaseException:
            # Everywhere, as a child forked meanwhile may hold it too.
            if done:
                self.for_each_process(lambda proc: self._uninstall(proc, probe))
            raise
        self.probes.append(probe)
        return probe

    def say_once(self, message: str) -> None:
        """Say what resolving a spec found (IFUNCs, skipped functions) once
        per tracer: it is resolved again for an inline probe's int3
        stand-in, and by inline probes in every process that maps the
        file, and ``libc:*`` said its IFUNCs each time."""
        if message not in self._said:
            self._said.add(message)
            self.say(message)

    def remove_probe(self, probe: Probe) -> None:
        if probe not in self.probes:
            return
        probe.removed = True
        self.probes.remove(probe)
        self.for_each_process(lambda proc: self._uninstall(proc, probe))

    def for_each_process(self, fn) -> None:
        """``fn(proc)``, all its threads stopped, for every process with
        probes, and for those forked meanwhile (``Loop.children_held``);
        once per set of probes, which a vfork child shares with its
        parent.  How every change to the probes reaches every process,
        inline ones included."""
        seen = set()
        with self.tracer.children_held():
            while True:
                todo = [p for p in self.tracer.processes.values()
                        if p.probe_state is not None and p.probe_state not in seen]
                if not todo:
                    return
                for proc in todo:
                    with _stopped(self.tracer, proc):
                        # Gone (exited, exec'd) while it or another was
                        # stopped, or a vfork child of one done already?
                        if proc.probe_state is not None and proc.probe_state not in seen:
                            seen.add(proc.probe_state)
                            fn(proc)

    def _validate(self, probe: Probe, also_mapped=(), bits: Optional[int] = None) -> None:
        """Check a spec against its file before any process is touched, when
        the file can be found without a process (a path, or a library in the
        loader's cache: the one of the traced processes' bitness when they
        share one, as a 32-bit program maps a 32-bit libc).  With no such
        bitness (no process yet) a spec fitting either passes, silently:
        the install says what there is to say, for the library it finds."""
        states = [p.probe_state for p in self.tracer.processes.values()
                  if p.probe_state is not None]
        mapped = [m.path for ps in states for m in ps.modules.modules] + list(also_mapped)
        if bits is None:
            known = {ps.bits for ps in states}
            bits = known.pop() if len(known) == 1 else None
        if bits is not None:
            self._check_file(probe, mapped, bits)
            return
        quiet = Probe(probe.spec, None, 0, lambda message: None)
        try:
            self._check_file(quiet, mapped, 64)
        except ProbeError:
            try:
                self._check_file(quiet, mapped, 32)
            except ProbeError:
                pass
            else:
                return
            raise

    def _check_file(self, probe: Probe, mapped, bits: int) -> None:
        spec = probe.spec
        try:
            path = resolve_binary(spec.binary, mapped, bits)
        except LibraryNotFound as exc:
            raise ProbeError(f"probe '{spec.text}': {exc}") from None
        try:
            image = ElfImage.open(path, self.debug_dirs)
        except ElfError as exc:
            raise ProbeError(f"probe '{spec.text}': {exc}") from None
        self._plans(probe, image, 0, None)

    def _plans(self, probe: Probe, image, bias: int, proc):
        """(runtime address, plan) for every site of ``probe`` in ``image``
        mapped at ``bias`` in ``proc`` (None when only checking the spec
        against its file, which says nothing: the install says it);
        refused instructions are errors, except under ``FUNC+*`` where
        they are skipped with one warning, and where a line's sites are
        is said."""
        arch = _ARCH_BY_BITS[image.bits]
        spec = probe.spec
        out, refused = [], []
        if proc is None:
            found = places(spec, image, arch, lambda message: None,
                           size_of=lambda vaddr: function_size(image.path, vaddr))
        else:
            found = self.places_in(proc, image, bias, spec, probe.note, probe.places)
        for place in found:
            code = original_code(image, place.vaddr, arch.max_insn_len)
            try:
                plan = arch.analyze(code, place.vaddr + bias)
                if image.relocated(place.vaddr, place.vaddr + plan.length):
                    plan = _RelocatedPlan(arch, plan, place.vaddr + bias, code[:1])
                out.append((place.vaddr + bias, plan, place))
            except _arch.UnsupportedInstruction as exc:
                if spec.offset != "*":
                    raise ProbeError(f"probe '{spec.text}' at {place.label}: {exc.reason} "
                                     f"('{exc.text}')") from None
                refused.append(f"{place.label} ({exc.text}: {exc.reason})")
        if refused and proc is not None:
            probe.note(f"skipped {len(refused)} instruction(s) that cannot be probed: "
                       f"{'; '.join(refused[:3])}")
        if spec.line is not None and proc is not None:
            where = ", ".join(f"{p.label} at {a:#x}" for a, _, p in out)
            probe.note(f"{len(out)} site{'s' if len(out) != 1 else ''}: {where}")
        return out

    def places_in(self, proc, image, bias: int, spec, warn, cache=None) -> list:
        """``resolve.places`` of ``spec`` in ``image`` mapped at ``bias`` in
        ``proc``, its IFUNCs resolved as they are there (``ifunc.InTracee``).
        ``cache`` keeps the answer for every process with the same
        GLIBC_TUNABLES, unless an IFUNC could not be resolved yet."""
        ps = proc.probe_state
        if ps.tunables == "?":
            ps.tunables = _glibc_tunables(proc.pid)
        key = (image, ps.tunables)
        found = cache.get(key) if cache is not None else None
        if found is None:
            ifunc = InTracee(proc, image, bias, ps.xol.trampoline,
                             here=ps.tunables == os.environb.get(b"GLIBC_TUNABLES"),
                             known=self._ifunc_answers.get(key, {}),
                             ours=lambda addr: getattr(ps.bps.get(addr), "saved", None))
            found = places(spec, image, _ARCH_BY_BITS[image.bits], warn, ifunc=ifunc,
                           size_of=lambda vaddr: function_size(image.path, vaddr))
            if cache is not None and ifunc.settled and ps.tunables is not False:
                cache[key] = found
        return found

    # -- processes ---------------------------------------------------------------
    def on_new_process(self, proc) -> None:
        self._setup(proc)
        for hook in self.hooks:
            hook.on_new_process(proc)

    def on_exec(self, proc) -> None:
        # The old image's sites went with it.  A probe whose file the new
        # image does not map keeps waiting with none: a removal must not
        # take from another probe's site at an old address.
        for probe in self.probes:
            probe.sites.pop(proc.pid, None)
        self._setup(proc)
        for hook in self.hooks:
            hook.on_exec(proc)

    def _setup(self, proc) -> None:
        thread = proc.leader
        maps = proc.maps()
        exe = next((m for m in maps if m.is_exec and m.path.startswith("/")), None)
        ps = _ProcState(XolSpace.create(proc, thread, exe.start if exe else 0), self.debug_dirs)
        ps.bits = thread.arch.bits
        proc.probe_state = ps
        ps.modules.refresh(maps, proc.read)
        self._hook_loader(proc, ps)
        ps.waiting = list(self.probes)
        self._install_waiting(proc, ps)

    def _hook_loader(self, proc, ps) -> None:
        """A breakpoint on the dynamic loader's ``_dl_debug_state``, which
        it calls after every change to the list of loaded objects (the
        r_debug rendezvous gdb uses): probes on libraries become active when
        the library is mapped, dlopen included, before its code runs."""
        for mod in ps.modules.modules:
            if mod.image.has_function("_dl_debug_state"):
                sym = mod.image.get_function("_dl_debug_state")
                arch = _ARCH_BY_BITS[mod.image.bits]
                addr = sym.value + mod.bias
                code = original_code(mod.image, sym.value, arch.max_insn_len)
                site = self._site(proc, ps, addr, arch.analyze(code, addr), arch)
                site.internal.append(self._on_loader_change)
                return

    def _on_loader_change(self, thread) -> None:
        proc = thread.process
        ps = proc.probe_state
        before = set(ps.modules.modules)
        ps.modules.refresh(proc.maps(), proc.read)
        gone = before - set(ps.modules.modules)
        if gone:
            self._forget_modules(proc, ps, gone)
        self._install_waiting(proc, ps)
        for hook in self.hooks:
            hook.on_loaded(proc)

    def stopped(self, proc):
        """A ``with`` context with every thread of ``proc`` stopped, for a
        change no running thread may see half done (from a handler too)."""
        return _stopped(self.tracer, proc)

    def _forget_modules(self, proc, ps, gone) -> None:
        """A library was unloaded (dlclose): its int3s went with its pages,
        so its sites are dropped without touching memory and its probes wait
        for it to come back."""
        for hook in self.hooks:
            hook.on_unmapped(proc, gone)
        dead = [site for site in ps.bps.sites.values() if site.module in gone]
        for site in dead:
            del ps.bps.sites[site.addr]
            if site.boost_slot is not None:
                ps.boosted.pop(site.boost_slot, None)
                ps.boost_faults.pop(site.boost_slot + site.plan.boost_fault_at, None)
            if site.sdt is not None and site.sdt.semaphore:
                ps.semaphores.pop(site.sdt.semaphore + site.module.bias, None)
            for probe in site.entry + site.returns:
                addrs = probe.sites.get(proc.pid, [])
                if site.addr in addrs:
                    addrs.remove(site.addr)
                if probe not in ps.waiting:
                    ps.waiting.append(probe)

    def _install_waiting(self, proc, ps) -> None:
        """Set the probes whose file just got mapped.  A spec that does not
        fit the file found (no such symbol in this library) is reported and
        dropped for this process, never raised out of the loop."""
        still = []
        for probe in ps.waiting:
            try:
                if not self._install(proc, probe):
                    still.append(probe)
            except TracerError as exc:
                self.say(f"{exc} (in pid {proc.pid})")
        ps.waiting = still

    def _install(self, proc, probe: Probe) -> bool:
        """Set ``probe`` in ``proc``; False when its BIN is not mapped yet."""
        ps = proc.probe_state
        try:
            path = resolve_binary(probe.spec.binary, [m.path for m in ps.modules.modules], ps.bits)
        except LibraryNotFound:
            if probe not in ps.waiting:
                ps.waiting.append(probe)
            return False
        mods = ps.modules.of_file(path)
        if not mods:
            if probe not in ps.waiting:
                ps.waiting.append(probe)
            return False
        mod = mods[0]
        plans = self._plans(probe, mod.image, mod.bias, proc)
        patched = [(a, p) for a, _, p in plans if any(h.covers(proc, a) for h in self.hooks)]
        if patched:
            if probe.spec.offset != "*":
                raise ProbeError(f"probe '{probe.spec.text}': {patched[0][1].label} lies in code "
                                 "an inline probe has patched")
            probe.note(f"skipped {len(patched)} instruction(s) patched by an inline probe")
            plans = [x for x in plans if all(x[0] != a for a, _ in patched)]
        arch = _ARCH_BY_BITS[mod.image.bits]
        addrs = probe.sites[proc.pid] = []
        try:
            for addr, plan, place in plans:
                site = self._site(proc, ps, addr, plan, arch)
                site.module, site.vaddr = mod, place.vaddr
                # New lists, never changed in place: a hit being served
                # (a handler adding or removing probes) keeps the set of
                # probes it started with.
                if place.resolver:
                    site.returns = site.returns + [self._watch_resolver(probe, mod.image, place)]
                    if addr not in addrs:  # the resolver's own entry, set just before
                        addrs.append(addr)
                    continue
                probe.functions[mod.image, place.vaddr] = place.function
                if probe.is_return:
                    site.returns = site.returns + [probe]
                else:
                    site.entry = site.entry + [probe]
                addrs.append(addr)
                if place.sdt is not None:
                    site.sdt = place.sdt
                    if place.sdt.semaphore:
                        self._semaphore(proc, ps, place.sdt.semaphore + mod.bias, +1)
        except BaseException:
            self._uninstall(proc, probe)
            raise
        return True

    @staticmethod
    def _semaphore(proc, ps, addr: int, delta: int) -> None:
        """USDT semaphores count the tracers that want a marker; programs
        test them (PROVIDER_NAME_ENABLED()) to skip argument set-up."""
        value = int.from_bytes(proc.read(addr, 2), "little")
        proc.write(addr, ((value + delta) & 0xFFFF).to_bytes(2, "little"))
        ps.semaphores[addr] = ps.semaphores.get(addr, 0) + delta

    def _site(self, proc, ps, addr, plan, arch):
        site = ps.bps.get(addr)
        if site is None:
            site = ps.bps.insert(proc, addr, plan, arch.breakpoint_insn)
            # A boosted copy moves ip alone; an emulation that needs the
            # registers costs a GETREGS and a SETREGS more.
            if plan.boostable and site.goto is None:
                try:
                    site.boost_slot = ps.xol.boost_slot(proc, proc.stopped_thread(), addr, plan,
                                                        arch)
                except XolError:
                    # No area could be mapped near: emulation still works,
                    # stepping does not (its slot would need one too).
                    if not site.emulate:
                        ps.bps.remove(proc, site)
                        raise
                if site.boost_slot is not None:
                    ps.boosted[site.boost_slot] = addr
                    if plan.boost_fault_at:
                        ps.boost_faults[site.boost_slot + plan.boost_fault_at] = (addr, plan)
                    site.go_to(site.boost_slot)
        return site

    def _watch_resolver(self, probe: Probe, image, place) -> Probe:
        """A hidden return probe on the resolver of an IFUNC ``probe``
        names, in a file not relocated yet (the program itself at its exec,
        a library dlopen maps): when the resolver returns, in the loader's
        relocation or a first call's binding, what it returned is the
        implementation, and ``probe`` is set again, there.  The return goes
        on to the implementation (a binding calls it at once) only after
        that, so no call is missed."""
        def resolved(hit):
            ps = hit.thread.process.probe_state
            mod = next((m for m in ps.modules.of_file(image.path)), None)
            if mod is None or probe.removed:
                return
            self._ifunc_answers.setdefault((image, ps.tunables), {})[place.vaddr] = \
                hit.retval - mod.bias

            def again(proc):
                if proc.pid in probe.sites and proc.probe_state.tunables == ps.tunables:
                    self._uninstall(proc, probe)
                    try:
                        self._install(proc, probe)
                    except TracerError as exc:
                        self.say(f"{exc} (in pid {proc.pid})")
            self.for_each_process(again)

        watcher = Probe(probe.spec, resolved, 0, probe._say)
        watcher.owner = probe
        return watcher

    def _uninstall(self, proc, probe: Probe) -> None:
        ps = proc.probe_state
        if probe in ps.waiting:
            ps.waiting.remove(probe)
        addrs = probe.sites.pop(proc.pid, None)
        if addrs is None:
            # A child forked while the probe was being removed copied its
            # sites, but not its list of them (it was no longer a probe).
            addrs = [addr for addr, site in ps.bps.sites.items()
                     if probe in site.entry or probe in site.returns]
        for addr in addrs:
            site = ps.bps.get(addr)
            if site is None:
                continue
            if site.sdt is not None and site.sdt.semaphore:
                self._semaphore(proc, ps, site.sdt.semaphore + site.module.bias, -1)
            site.entry = [p for p in site.entry if p is not probe]
            site.returns = [p for p in site.returns if p is not probe and p.owner is not probe]
            if site.unused:
                ps.bps.remove(proc, site)

    # -- the hit path --------------------------------------------------------------
    def on_trap(self, thread) -> bool:
        """An int3 stop.  Registers are read only as far as the hit needs
        them: ip always, the rest when a handler, a return probe or the
        instruction's emulation asks (``Thread`` fetches them lazily)."""
        if thread.predict_regs:
            addr = thread.at_trap_with_regs()
        else:
            # The int3's address from ip alone, and ip moved back onto it,
            # to be written only if the thread resumes with no other ip
            # given; what the last stop read or left unwritten is dropped.
            thread.regs_dirty = thread.regs_fresh = False
            addr = _ptrace(PTRACE_PEEKUSER, thread.tid, IP_OFFSET, None) - 1
            if addr == -2:
                addr = binding.redo(PTRACE_PEEKUSER, thread.tid, IP_OFFSET) - 1
            thread.known_ip = addr
            thread.ip_dirty = True
        proc = thread.process
        ps = proc.probe_state
        site = ps.bps.sites.get(addr) if ps is not None else None
        if site is None:
            return self._not_a_site(thread, proc, ps, addr)
        if proc.silent:
            self._execute(thread, ps, site, None)
        else:
            if site.internal:
                for fn in site.internal:
                    fn(thread)
            entry_sp = thread.arch.sp(thread.get_regs()) if site.returns else -1
            for probe in site.entry:
                probe.hits += 1
                handler = probe.handler
                if handler is not None:
                    hit = probe.spare_hit
                    if _refcount(hit) == _SPARE_REFS:
                        # Renewed in place (see Hit.__slots__).
                        hit.thread = thread
                        hit.ip = addr
                        hit.time_ns = _monotonic_ns()
                        hit._arch = hit._window = None
                    else:
                        hit = probe.spare_hit = Hit(probe, thread, addr, self)
                    try:
                        handler(hit)
                    except Exception as exc:
                        self._handler_failed(probe, exc)
            # A handler moves ip through hit.regs, which reads the registers.
            if site.returns:
                self._hijack_and_execute(thread, ps, site, addr, entry_sp)
            elif thread.regs_fresh and thread.regs.rip != addr:
                thread.resume()
            elif site.gone:
                self._after_removal(thread, ps, addr)
            elif site.goto is None and not site.plain_step or thread.regs_dirty \
                    or thread.group_stopped or thread.pending_sig:
                self._execute(thread, ps, site, None)
            else:
                # _execute's cases of a site with goto and of a plain step,
                # and Thread.resume's plain case, written out: every
                # boosted, USDT and plainly stepped hit comes here, and the
                # calls saved are a tenth of its Python.  A one-byte nop
                # goes on from where the trap left ip, unless a write or a
                # run came since; any other goes to its slot.
                tid = thread.tid
                arg = site.goto_arg
                request = PTRACE_CONT
                if arg is None:
                    slot = self._step_slot(thread, ps, site)
                    thread.xol = (site, slot, None)
                    arg = ps.xol.step_args[slot]
                    request = PTRACE_SINGLESTEP
                elif site.in_place and thread.ip_dirty and thread.known_ip == addr:
                    arg = None
                if arg is not None and _ptrace_rc(PTRACE_POKEUSER, tid, IP_OFFSET, arg) == -1:
                    binding.redo(PTRACE_POKEUSER, tid, IP_OFFSET, arg)
                thread.ip_dirty = thread.regs_fresh = thread.stopped = False
                thread.known_ip = -1
                thread.predict_regs = thread.regs_wanted
                thread.regs_wanted = False
                if _ptrace_rc(request, tid, None, 0) == -1:
                    binding.redo(request, tid, None, 0)
        if self._fatal is not None:
            self._raise_fatal()
        return True

    def _after_removal(self, thread, ps, addr: int) -> None:
        """A handler removed the probe it was called for: the instruction is
        back home, or under an inline probe's jump set meanwhile, and runs
        from there (its boosted copy would jump back into that jump).  A
        probe set there again meanwhile has an int3 of its own: the
        instruction runs by its plan, without a second hit."""
        again = ps.bps.sites.get(addr)
        if again is None:
            thread.resume()
        else:
            self._execute(thread, ps, again, None)

    def _not_a_site(self, thread, proc, ps, addr: int) -> bool:
        """A trap at no probe site may still be ours (the return
        trampoline, an int3 removed after it trapped); if not, ip goes back
        past the int3, where the program's own trap leaves it."""
        if ps is None or not self._other_trap(thread, thread.get_regs(), thread.arch, ps, addr,
                                              not proc.silent):
            thread.undo_rewind()
            return False
        thread.resume()
        if self._fatal is not None:
            self._raise_fatal()
        return True

    def _hijack_and_execute(self, thread, ps, site, addr: int, entry_sp: int) -> None:
        """The hit's end at a site with return probes: the return address
        is swapped with, or just before, the displaced instruction's run.
        A handler that moved both ip and sp (a return faked from the entry)
        left no call to return from: nothing is swapped, as the word at
        the new sp is the caller's own."""
        regs, arch = thread.get_regs(), thread.arch
        if regs.rip != addr and arch.sp(regs) != entry_sp:
            thread.resume()
            return
        swap = self._hijack(thread, regs, arch, ps, site)
        if thread.regs.rip != addr:
            if swap is not None:
                swap.finish()
            thread.resume()
            return
        self._execute(thread, ps, site, swap)

    def _execute(self, thread, ps, site, swap) -> None:
        """Run the displaced instruction; ``swap`` is a return probe's held
        write of the return address, written with or before it."""
        goto = site.goto
        if goto is None and site.emulate:
            done = site.plan.emulate(thread.get_regs(), swap or thread.program_memory)
            if swap is not None:
                swap.finish()
            if done:
                thread.regs_dirty = True
                thread.resume()
                return
        elif swap is not None:
            swap.finish()
        if goto is not None:
            # A one-byte nop: the kernel holds the ip it goes on from, as
            # the trap left it, unless a write or a run came since (a
            # system call a handler had the tracer inject).
            if site.in_place and thread.ip_dirty and thread.known_ip == site.addr:
                thread.undo_rewind()
                thread.resume()
            else:
                thread.resume(goto, ip_arg=site.goto_arg)
            return
        self._step(thread, ps, site)

    def _step(self, thread, ps, site) -> None:
        slot = self._prepare_step(thread, ps, site)
        if site.plan.plain_step:
            thread.resume(slot, PTRACE_SINGLESTEP, ps.xol.step_args[slot])
        else:
            thread.singlestep()

    def _prepare_step(self, thread, ps, site) -> int:
        """Set ``thread`` up to step ``site``'s copy at its next resume
        (which single-steps a thread with ``xol`` set); returns the slot."""
        slot = self._step_slot(thread, ps, site)
        plan = site.plan
        token = None
        if plan.plain_step:
            thread.set_ip(slot)
        else:
            token = plan.pre_xol(thread.get_regs(), site.addr, slot)
            thread.regs_dirty = True
        thread.xol = (site, slot, token)
        return slot

    @staticmethod
    def _step_slot(thread, ps, site) -> int:
        """The thread's step slot, holding ``site``'s copy."""
        xol = ps.xol
        slot = xol.step_slot(thread.tid)
        if xol.step_holds.get(slot) != site.addr:
            thread.process.write(slot, site.plan.step_code(site.addr, slot))
            xol.step_holds[slot] = site.addr
        return slot

    def on_step(self, thread, resume: bool = True) -> None:
        site, slot, token = thread.xol
        plan = site.plan
        if plan.plain_step:
            if thread.predict_regs:
                ip = thread.get_ip()
            else:
                # Thread.get_ip, written out for the stop the loop has just
                # made stale: ip alone.
                ip = _ptrace(PTRACE_PEEKUSER, thread.tid, IP_OFFSET, None)
                if ip == -1:
                    ip = binding.redo(PTRACE_PEEKUSER, thread.tid, IP_OFFSET)
                thread.known_ip = ip
            if ip == slot:
                # Nothing ran, so this is no step's trap: a SIGTRAP sent to
                # the thread (tgkill) was delivered first.  It waits for the
                # step like any signal met there.
                self.on_signal_in_step(thread, signal.SIGTRAP)
                return
            home = ip + site.addr - slot
            thread.xol = None
            if thread.held_signals:
                thread.release_held()
            if resume:
                thread.resume(home, ip_arg=site.step_end_arg if home == site.step_end else None)
            else:
                thread.set_ip(home)
            return
        regs = thread.get_regs()
        if thread.arch.ip(regs) == slot and binding.getsiginfo(thread.tid).si_code <= 0:
            # As above, but a rep string leaves ip at the slot after each
            # of its steps too: the siginfo tells a step's trap (a kernel
            # si_code, > 0) from a SIGTRAP someone sent (<= 0).
            self.on_signal_in_step(thread, signal.SIGTRAP)
            return
        thread.regs_dirty = True
        if not plan.post_xol(regs, thread.process.memory, site.addr, slot, token):
            if resume:
                thread.singlestep()
                return
            # A rep-string instruction between iterations: its registers
            # say how far it got, so it resumes correctly from its own
            # address.
            plan.abort_xol(regs, site.addr, slot, token)
        thread.xol = None
        if thread.held_signals and resume:
            ps = thread.process.probe_state
            arch = thread.arch
            if arch.ip(regs) == ps.xol.trampoline:
                # A ret that returns through a return probe: a held signal
                # would find the thread at the trampoline, so the return
                # is taken first, as its int3 would take it.
                self._return_hit(thread, regs, arch, ps, not thread.process.silent)
        thread.release_held()
        if resume:
            thread.resume()

    def on_signal(self, thread, sig: int) -> None:
        """A signal about to be delivered where a boosted copy runs.

        A fault raised by the copy shows the slot's address; the program
        must see its own instruction fault, at its own address, with
        nothing done: a fault further in than the copy's start is undone by
        its plan (a call's push before its jmp).  Any other signal (one
        that came while the thread was stopped at the probe, and is
        delivered as it resumes into the slot) waits until the instruction
        has run: its handler would see ip in the slot, where no unwinder,
        profiler or ip check finds the program.  At the slot's start the
        instruction runs by its step path instead (which keeps a stepped
        pushf from saving the trap flag); further in, only the slot's own
        jumps (and a call's push) are left, and they are stepped through."""
        ps = thread.process.probe_state
        if ps is None or not ps.boosted:
            return
        if sig not in _FAULTS:
            ip = thread.get_ip()
            slot = _boosted_slot_at(ps, ip, thread.arch) if ip in ps.xol else None
            if slot is None:
                return
            home = ps.boosted[slot]
            site = ps.bps.sites.get(home)
            if ip == slot and (site is None or site.boost_slot != slot):
                return  # its probe is gone: the copy alone knows what to run
            info = thread.pending_info
            if info is None:
                info = binding.getsiginfo(thread.tid)
            thread.pending_sig, thread.pending_info = 0, None
            thread.held_signals.append((sig, info))
            if ip == slot:
                self._prepare_step(thread, ps, site)
            else:
                thread.xol = (_Drain(ps, home), slot, None)
            return
        regs = thread.get_regs()
        ip = _arch.for_regs(regs).ip(regs)
        home = _boosted_fault_home(ps, regs, ip)
        if home is not None:
            thread.regs_dirty = True
            thread.set_ip(home)
            _fault_named_home(thread, sig, ip, home)

    def on_signal_in_step(self, thread, sig: int) -> None:
        site, slot, token = thread.xol
        regs = thread.get_regs()
        arch = _arch.for_regs(regs)
        ip = arch.ip(regs)
        if sig in _FAULTS and slot <= ip < slot + arch.xol_slot_size:
            site.plan.abort_xol(regs, site.addr, slot, token)
            thread.regs_dirty = True
            thread.xol = None
            thread.replace_pending(sig)
            _fault_named_home(thread, sig, ip, arch.ip(regs))
            thread.release_held()
            thread.resume()
            return
        thread.hold_signal(sig)
        thread.singlestep()

    def settle(self, thread) -> None:
        thread.singlestep()

    # -- return probes ---------------------------------------------------------------
    def _hijack(self, thread, regs, arch, ps, site):
        """Record the return probes' instances and swap the return address
        for the trampoline; the swap is returned held (``_HeldWrite``) for
        an emulation to join, or None when it is written already or there
        is nothing to write."""
        stack = thread.returns
        if thread.has_shadow_stack():
            if thread.tid not in self._shadow_warned:
                self._shadow_warned.add(thread.tid)
                self.say(f"thread {thread.tid} of pid {thread.process.pid} runs with a CET "
                         "shadow stack: its return probes are skipped (a swapped return "
                         "address would fault at the return)")
            return None
        mem = thread.process.memory
        sp = arch.sp(regs)
        tramp = ps.xol.trampoline
        ret = arch.read_word(mem, sp)
        chained = ret == tramp
        if stack:
            _forget_left_frames(thread, stack, sp, not chained, mem, arch, tramp)
        if not chained and stack and stack[0].signals != thread.signals_delivered:
            # A fresh call at this slot: whatever was recorded for it is dead,
            # even under instances from another stack.
            stack[:] = [p for p in stack if p.sp != sp]
        if len(stack) >= MAX_RETURN_DEPTH:
            return None
        if chained:
            # A tail call: the caller's frame already returns through us.
            owner = next((p for p in reversed(stack) if p.sp == sp), None)
            if owner is None:
                return None
            orig = owner.orig
            swap = None
        elif site.goto is not None:
            # Nothing else is written at this hit (the instruction runs
            # boosted, or moves ip alone): the swap goes out at once.
            orig = ret
            swap = None
            arch.write_word(mem, sp, tramp)
        else:
            orig = ret
            swap = _HeldWrite(mem, thread.program_memory)
            arch.write_word(swap, sp, tramp)
        # Pushed last first: the return pops them, so their handlers run
        # in the order the probes were added, as entry handlers do.
        for probe in reversed(site.returns):
            args = arch.args(regs, mem, probe.keep_args) if probe.keep_args else None
            stack.append(_Pending(probe, orig, sp, args, _monotonic_ns(), site.addr,
                                  thread.signals_delivered))
        return swap

    def _return_hit(self, thread, regs, arch, ps, run_handlers: bool) -> None:
        stack = thread.returns
        entry_sp = arch.sp(regs) - arch.word_size
        done = []
        while stack and stack[-1].sp == entry_sp:
            done.append(stack.pop())
        if not done:
            # Under the latest instance for this slot: everything recorded
            # after it was entered after it (frames a longjmp left, a signal
            # handler left by siglongjmp) and is gone now that it returns.
            i = len(stack)
            while i and stack[i - 1].sp != entry_sp:
                i -= 1
            if i:
                del stack[i:]
                while stack and stack[-1].sp == entry_sp:
                    done.append(stack.pop())
        if not done:
            # Nothing says where this return goes (a stack switched under
            # us): the program cannot go on, as it could not had it met an
            # int3 of its own.
            self.say(f"thread {thread.tid} of pid {thread.process.pid} returned through the "
                     "return-probe trampoline with no recorded return address")
            thread.set_ip(ps.xol.trampoline + 1)
            thread.pending_sig = signal.SIGTRAP
            return
        thread.set_ip(done[-1].orig)
        if run_handlers:
            for pending in done:
                probe = pending.probe
                if probe.removed:
                    continue
                probe.hits += 1
                if probe.handler is not None:
                    self._call(probe, Hit(probe, thread, done[-1].orig, self, pending))

    # -- handlers ---------------------------------------------------------------------
    def _call(self, probe, hit) -> None:
        try:
            probe.handler(hit)
        except Exception as exc:
            self._handler_failed(probe, exc)

    def _handler_failed(self, probe, exc: Exception) -> None:
        self.error_count += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append((probe, exc))
        if self.fatal_errors:
            if self._fatal is None:
                self._fatal = exc
        elif self.error_count <= _SHOWN_ERRORS:
            line = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.say(f"handler of '{probe.spec.text}' raised {line}{_handler_line(exc)}")
            if self.error_count == _SHOWN_ERRORS:
                self.say("further handler errors are counted (error_count), not shown")

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            exc, self._fatal = self._fatal, None
            raise exc

    def _site_of(self, hit):
        return hit.thread.process.probe_state.bps.get(hit.ip)

    def location(self, hit):
        """The probed place as a frame: the probe address at an entry, the
        function that returned at a return probe."""
        ps = hit.thread.process.probe_state
        addr = hit._entry.entry if hit._entry is not None else hit.ip
        return self._frame(ps, addr, False)

    def function(self, hit):
        """The function ``hit.probe`` matched where it hit, by the name the
        spec matched; None if its site is gone (removed since the call a
        return hit is about)."""
        ps = hit.thread.process.probe_state
        site = ps.bps.get(hit._entry.entry if hit._entry is not None else hit.ip)
        if site is None or site.module is None:
            return None
        return hit.probe.functions.get((site.module.image, site.vaddr))

    def usdt_marker(self, hit):
        site = self._site_of(hit)
        if site is None or site.sdt is None:
            return None
        return f"{site.sdt.provider}:{site.sdt.name}"

    def usdt_args(self, hit):
        site = self._site_of(hit)
        if site is None or site.sdt is None:
            return None
        regs = hit.thread.get_regs()
        mem = hit.thread.process.memory
        mod = site.module

        def resolve(name):
            sym, _, reloc = name.partition("@")
            if reloc in ("tpoff", "ntpoff"):
                return mod.image.tls_offset(sym)
            return mod.image.get_symbol(sym).value + mod.bias

        get = regs.__getattribute__
        return [arg.value(get, mem.read, resolve) for arg in site.sdt.arguments]

    def named_args(self, hit):
        """{parameter name: value} from DWARF at a function's entry; a
        parameter the ABI puts where we do not read (a floating-point
        register, an aggregate by value) is None, and so is the whole at
        any other site, or without debug information."""
        found = self._entry_params(hit)
        return _signed_values(found) if found is not None else None

    def format_args(self, hit, strings: bool = False):
        found = self._entry_params(hit)
        return _formatted(found, hit, strings) if found is not None else None

    def variables(self, hit):
        """{name: value} of what is in scope where the probe hit (see
        variables.py); None at a return probe, or without DWARF there."""
        found = self._scope_values(hit)
        return _signed_values(found) if found is not None else None

    def format_variables(self, hit, strings: bool = False):
        found = self._scope_values(hit)
        return _formatted(found, hit, strings) if found is not None else None

    def _scope_values(self, hit):
        """[(Param, raw value or None)] of the parameters and locals in
        scope at the hit's address, outermost first (an inner name, later,
        hides an outer one in a dict)."""
        if hit._entry is not None:
            return None
        ps = hit.thread.process.probe_state
        mod = ps.modules.find(hit.ip)
        if mod is None or mod.image.memory is not None:
            return None
        image, vaddr = mod.image, hit.ip - mod.bias
        try:
            scope = scope_at(image.path, vaddr, image.debug_dirs)
        except SplitDwarf as exc:
            hit.probe.note(str(exc))
            return None
        if scope is None:
            return None
        arch, regs, mem = hit.arch, hit.thread.get_regs(), hit.thread.process.memory
        dwarf = {num: hit.ip if name == "ip" else arch.get_reg(regs, name)
                 for num, name in enumerate(arch.dwarf_reg_names)}
        frame = VarFrame(dwarf, mem.read, arch.word_size, mod.bias, lambda: cfa_at(
            image.path, vaddr, dwarf, lambda addr: arch.read_word(mem, addr), arch.word_size,
            image.debug_dirs))
        return [(var.param, value_of(var, scope, frame)) for var in scope.variables]

    def _entry_params(self, hit):
        """[(Param, raw value or None)] at a function's entry, where the
        ABI still tells where each parameter is; None elsewhere (past the
        prologue the arguments may have moved) or without DWARF, and with
        split DWARF, which the probe notes once."""
        site = self._site_of(hit)
        if site is None or site.module is None:
            return None
        image = site.module.image
        found = image.symbolize(site.vaddr)
        if found is None or found[1] != 0:
            return None
        try:
            params = function_params(image.path, site.vaddr, image.debug_dirs)
        except SplitDwarf as exc:
            hit.probe.note(str(exc))
            return None
        if params is None:
            return None
        arch = hit.arch
        word_bits = 8 * arch.word_size
        kinds = [(p.abi_kind, p.size) for p in params]
        returned = function_return(image.path, site.vaddr, image.debug_dirs)
        if returned is not None and arch.returns_in_memory(returned.abi_kind, returned.size):
            # where the result goes is the first argument, hidden
            places = arch.param_slots([("int", arch.word_size)] + kinds)[1:]
        else:
            places = arch.param_slots(kinds)
        out = []
        for param, slots in zip(params, places):
            raw = None
            if slots is not None and param.is_scalar:
                raw = 0
                for i, n in enumerate(slots):
                    raw |= (hit.arg(n) & ((1 << word_bits) - 1)) << (word_bits * i)
            out.append((param, raw))
        return out

    def backtrace(self, hit, max_frames: int):
        """DWARF CFI unwinding (frame pointers where no CFI covers a pc);
        hijacked return addresses read as the real ones."""
        thread, arch = hit.thread, hit.arch
        ps = thread.process.probe_state
        mem = ReadWindow(thread.process.memory, _STACK_WINDOW)
        regs = thread.get_regs()
        tramp = ps.xol.trampoline
        real = {p.sp: p.orig for p in thread.returns}
        word = arch.word_size

        def read_word(addr):
            value = arch.read_word(mem, addr)
            return real.get(addr, value) if value == tramp else value

        dwarf = {}
        for num, name in enumerate(arch.dwarf_reg_names):
            dwarf[num] = arch.ip(regs) if name == "ip" else arch.get_reg(regs, name)

        def find_module(pc):
            mod = ps.modules.find(pc)
            if mod is None:
                return None
            cfi = self._cfis.get(mod.image, False)
            if cfi is False:
                cfi = self._cfis[mod.image] = readable_cfi(mod.image.memory or mod.path,
                                                           self.debug_dirs)
            return (cfi, mod.bias) if cfi is not None else None

        frames = []
        for frame in unwind(dwarf, read_word, word, find_module, max_frames, self.debug_dirs):
            pc = frame.pc
            frames.append(self._frame(ps, real.get(pc, pc) if pc == tramp else pc,
                                      not (frame.exact or frame.trampoline)))
        return frames

    def _frame(self, ps, pc: int, caller: bool):
        """A symbolized frame with file:line where the module has line
        information.  A caller is named and placed by its call (pc - 1), not
        the instruction after it; a frame a signal interrupted, and the
        signal trampoline the handler returns to, by their pc.  An image
        with no file (the vDSO) has no lines to read."""
        mod = ps.modules.find(pc - caller)
        if mod is None:
            return ps.modules.frame(pc, caller)
        key = mod.image, pc - caller - mod.bias, caller
        frame = self._frames.get(key)
        if frame is not None:
            return frame if frame.pc == pc and frame.module == mod.path \
                else frame._replace(pc=pc, module=mod.path)
        frame = ps.modules.frame(pc, caller)
        if mod.image.memory is None:
            try:
                where = source_line(mod.path, key[1], mod.image.debug_dirs)
            except (OSError, TracerError, ValueError):
                where = None
            if where is not None:
                frame = frame._replace(file=where[0], line=where[1])
        self._frames[key] = frame
        return frame

    # -- lifetime ---------------------------------------------------------------------
    def on_trap_detaching(self, thread) -> bool:
        ps = thread.process.probe_state
        if ps is None:
            return False
        regs = thread.get_regs()
        arch = _arch.for_regs(regs)
        addr = arch.ip(regs) - 1
        if addr in ps.bps.sites:
            thread.set_ip(addr)
            return True
        return self._other_trap(thread, regs, arch, ps, addr, True)

    def _other_trap(self, thread, regs, arch, ps, addr: int, run_handlers: bool) -> bool:
        """A trap that is ours without being a probe site: the return
        trampoline, or an int3 removed after it trapped but before we saw
        it (rewound, so the restored instruction runs).  Leaves the thread
        stopped; False when the trap is not ours."""
        if addr == ps.xol.trampoline:
            self._return_hit(thread, regs, arch, ps, run_handlers)
            return True
        if addr in ps.bps.removed and thread.process.read(addr, 1) != arch.breakpoint_insn:
            thread.set_ip(addr)
            return True
        return False

    def on_detach(self, proc) -> None:
        ps = proc.probe_state
        if ps is None:
            return
        for hook in self.hooks:
            hook.on_detach(proc)
        self._unhijack(proc, ps, proc.threads.values())
        ps.bps.restore_all(proc)
        self._release_semaphores(proc, ps)
        proc.probe_state = None

    def _release_semaphores(self, proc, ps) -> None:
        for addr, added in list(ps.semaphores.items()):
            if added:
                try:
                    self._semaphore(proc, ps, addr, -added)
                except OSError:
                    pass

    def _unhijack(self, proc, ps, threads) -> None:
        """Return addresses back in place, and threads stopped where only
        the tracer can take them on (a boosted copy not begun, the return
        trampoline's int3) moved to where the program would be: home,
        or the return address (a return whose handlers are not run)."""
        tramp = ps.xol.trampoline
        for thread in threads:
            regs = thread.get_regs()
            arch = _arch.for_regs(regs)
            ip = arch.ip(regs)
            if ip in ps.boosted:
                thread.set_ip(ps.boosted[ip])
            elif ip == tramp:
                self._return_hit(thread, regs, arch, ps, False)
            for pending in thread.returns:
                try:
                    if arch.read_word(proc.memory, pending.sp) == tramp:
                        arch.write_word(proc.memory, pending.sp, pending.orig)
                except OSError:
                    pass
            thread.returns.clear()

    def on_fork(self, forker, child, follow: bool, vfork: bool) -> None:
        """A vfork child borrows its parent's memory: it shares the parent's
        int3s and slots (with a slot of its own).  A fork child has copies:
        followed, it gets state of its own; not followed, its memory is put
        back as it was before we touched it."""
        parent = forker.process
        ps = parent.probe_state
        if ps is None:
            return
        for hook in self.hooks:
            hook.on_fork(forker, child, follow, vfork)
        child_thread = child.leader
        child_thread.returns = [_Pending(p.probe, p.orig, p.sp, p.args, p.time_ns, p.entry,
                                         p.signals)
                                for p in forker.returns]
        child_thread.signals_delivered = forker.signals_delivered
        if vfork:
            child.probe_state = ps
        elif follow:
            child.probe_state = ps.fork_copy()
        else:
            self._unhijack(child, ps, [child_thread])
            for site in ps.bps.sites.values():
                child.write(site.addr, site.saved)
            self._release_semaphores(child, _semaphore_view(ps))
            return
        for probe in self.probes:
            if parent.pid in probe.sites:
                probe.sites[child.pid] = list(probe.sites[parent.pid])

    def on_vfork_done(self, thread) -> None:
        for hook in self.hooks:
            hook.on_vfork_done(thread)

    def on_thread_gone(self, thread) -> None:
        ps = thread.process.probe_state
        if ps is not None:
            ps.xol.release_thread(thread.tid)
        thread.xol = None

    def on_process_gone(self, proc) -> None:
        for hook in self.hooks:
            hook.on_process_gone(proc)
        for probe in self.probes:
            probe.sites.pop(proc.pid, None)
        proc.probe_state = None


def _handler_line(exc: BaseException) -> str:
    """`` (at FILE:LINE)``: the innermost place in the handler's own file
    that the exception came through (the traceback starts in the frame
    that called the handler; library code it called is not the place)."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]
    own = [f for f in frames if frames and f.filename == frames[0].filename]
    return f" (at {os.path.basename(own[-1].filename)}:{own[-1].lineno})" if own else ""


class _RelocatedPlan:
    """The plan of an instruction the loader writes into as it relocates
    (a text relocation: non-PIC code in a PIE or a library, common on
    i386): the file's bytes are not what runs, and a copy of them loads
    or jumps where the unrelocated operand says.  The probe is set before
    the loader relocates, so the instruction is planned again from the
    tracee's memory at its first hit (its first byte, where the int3 is,
    is the file's: relocations write operands).  It is never boosted (a
    boosted slot is written when the probe is set): it is emulated, or
    stepped, by the plan of the bytes that run."""

    strategy = "emulate"
    boostable = False
    plain_step = False
    boost_fault_at = 0

    def __init__(self, arch, file_plan, addr: int, first: bytes):
        self.length = file_plan.length
        self.text = file_plan.text
        self._file_plan = file_plan
        self._arch = arch
        self._addr = addr
        self._first = first
        self._plan = None

    def __repr__(self):
        return f"<relocated {self._plan or self.text!r}>"

    def next_ip(self, addr):
        return None

    def _loaded(self, mem):
        if self._plan is None:
            code = self._first + mem.read(self._addr + 1, self.length - 1)
            try:
                self._plan = self._arch.analyze(code, self._addr)
            except _arch.UnsupportedInstruction:
                self._plan = self._file_plan  # what the file says is all there is
        return self._plan

    def emulate(self, regs, mem) -> bool:
        plan = self._loaded(mem)
        return plan.strategy == "emulate" and plan.emulate(regs, mem)

    def step_code(self, addr, slot):
        return self._plan.step_code(addr, slot)

    def pre_xol(self, regs, addr, slot):
        return self._plan.pre_xol(regs, addr, slot)

    def post_xol(self, regs, mem, addr, slot, token):
        return self._plan.post_xol(regs, mem, addr, slot, token)

    def abort_xol(self, regs, addr, slot, token):
        self._plan.abort_xol(regs, addr, slot, token)


def _boosted_slot_at(ps, ip: int, arch) -> Optional[int]:
    """The boosted slot that ``ip`` lies in, or None."""
    for slot in range(ip, ip - arch.xol_slot_size, -1):
        if slot in ps.boosted:
            return slot
    return None


def _boosted_fault_home(ps, regs, ip: int) -> Optional[int]:
    """Where a fault at ``ip`` in a boosted copy is the program's own: the
    probed instruction, nothing done (``regs`` undone where the copy had
    done something before the fault); None when ``ip`` is no place a copy
    faults."""
    home = ps.boosted.get(ip)
    if home is None:
        undo = ps.boost_faults.get(ip)
        if undo is None:
            return None
        home, plan = undo
        plan.undo_boost(regs)
    return home


class _Drain:
    """Stands for a site in ``thread.xol`` while the thread runs the rest of
    a boosted copy by single steps, a signal held until ip leaves the slot
    (``ProbeEngine.on_signal``): past the copied instruction, only the
    slot's jumps and a call's push of its return address.  It is its own
    plan: each step ends the run when ip is out of the slot; a fault is
    reported at home as ``on_signal`` reports it."""

    plain_step = False

    def __init__(self, ps, home: int):
        self.plan = self
        self.addr = home
        self._ps = ps

    def post_xol(self, regs, mem, addr, slot, token) -> bool:
        arch = _arch.for_regs(regs)
        return not slot <= arch.ip(regs) < slot + arch.xol_slot_size

    def abort_xol(self, regs, addr, slot, token) -> None:
        # A fault where a boosted copy's fault can be: home, undone, as
        # on_signal reports it.  Elsewhere in the slot (a detach between
        # steps) the thread stays: the slot stays mapped.
        arch = _arch.for_regs(regs)
        home = _boosted_fault_home(self._ps, regs, arch.ip(regs))
        if home is not None:
            arch.set_ip(regs, home)


def _fault_named_home(thread, sig: int, at: int, home: int) -> None:
    """A fault raised by an instruction run out of line at ``at`` says so
    in its siginfo too: SIGILL and SIGFPE carry the faulting instruction's
    address in si_addr (the kernel's own uprobes put the probed address
    there, ``uprobe_get_trap_addr``).  It is made ``home``, where the
    program's instruction is, as ip is; a data address (SIGSEGV, SIGBUS)
    is left alone, as is a signal someone sent."""
    try:
        info = binding.getsiginfo(thread.tid)
    except OSError:
        return
    if info.si_signo == sig and info.si_code > 0 and info.fields.fault.addr == at:
        info.fields.fault.addr = home
        thread.pending_info = info


def _semaphore_view(ps):
    view = _ProcState.__new__(_ProcState)
    view.semaphores = dict(ps.semaphores)
    return view


class _stopped:
    """Every thread of ``proc`` stopped for the duration of a ``with``
    (already true before ``run`` and inside handlers for the hitting
    thread; other running threads are interrupted and resumed after)."""

    def __init__(self, tracer, proc):
        self.tracer, self.proc = tracer, proc
        self.were_stopped = None

    def __enter__(self):
        if any(not t.stopped for t in self.proc.threads.values()):
            self.were_stopped = {t.tid for t in self.proc.threads.values() if t.stopped}
            self.tracer.stop_all(self.proc)
        return self.proc

    def __exit__(self, *exc):
        if self.were_stopped is not None:
            # Threads born while we stopped the others are stopped too.
            for thread in list(self.proc.threads.values()):
                if thread.tid not in self.were_stopped and thread.stopped and thread.xol is None:
                    thread.resume()
        return False
