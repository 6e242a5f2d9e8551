"""Inline probes: pre-registered handlers that run inside the tracee, with
no ptrace stop.

``Tracer.count``, ``record`` and ``latency`` replace a site's first whole
instructions (at least 5 bytes) with a ``jmp rel32`` to a trampoline in an
out-of-line area within 2 GiB: the arch's handler code, then the displaced
instructions relocated (``arch.relocate``), then a jump back.  A hit costs
nanoseconds instead of two context switches.

The handlers' data lives in a file mapping shared by the tracee and the
tracer (a file in /dev/shm the tracee opens by an injected openat and maps
MAP_SHARED; the name is unlinked at once): the tracer reads counters,
histograms and rings as its own memory, from any thread, while the tracee
runs, and the numbers outlive the process.  Forked children inherit the
mapping, so their hits land in the same counters.  The shadow stacks of
latency probes are private (anonymous) memory instead: a forked child
needs its own copy.

Thread ids in records come from glibc's thread control block (the field
libthread_db finds through libc's ``_thread_db_pthread_tid`` descriptor),
read through the thread pointer at the hit.  Mapping thread pointers to tids
in the tracer would not be exact: threads that never stop cannot be asked,
and glibc reuses a dead thread's control block for the next thread.

A site that cannot be patched (too short, a branch target, another
function's entry, a call's return or a thread inside the bytes to patch, an
instruction that cannot be relocated, no glibc) falls back to an int3 probe
with the same semantics, says so once on stderr, and the returned object's
``inline`` is False.  A probe whose library is not mapped yet waits for it
in that process, as int3 probes do, and is patched when it is loaded.
"""

from __future__ import annotations

import collections
import ctypes
import mmap
import os
import struct
import tempfile
import threading
import time

import arch as _arch

from .consts import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from .elf import ElfError, ElfImage
from .errors import ProbeError
from .libraries import LibraryNotFound, resolve_binary
from .resolve import original_code
from .specs import parse_spec

_ARCH_BY_BITS = {64: _arch.X86_64, 32: _arch.I386}
ARENA_SIZE = 4 << 20
DEFAULT_CAPACITY = 4096
_MAP_SHARED = 0x01
_O_RDWR, _O_CLOEXEC = 0o2, 0o2000000
_AT_FDCWD = -100
_U64 = struct.Struct("<Q")
_INT3 = b"\xcc"
_STEP_OUT_LIMIT = 100_000
#: how far from a site the functions whose branches may land in its patch are
_NEIGHBOURS = 1024
_SHADOW_BYTES = _arch.INLINE_SHADOW_SLOTS * _arch.INLINE_SHADOW_SLOT_BYTES


class _Fallback(Exception):
    """This probe cannot be inline here; the message says why."""


class _NotMapped(_Fallback):
    """The probe's file is not mapped in the process yet: it waits there,
    and is set when the file is loaded (dlopen, or the libraries of a
    program just started)."""


# -- what users hold ------------------------------------------------------------

class _InlineProbe:
    """Common to the three kinds: the spec, whether it runs inline, and the
    places its data lives in (``cells``: (pid, mm, offset)): one per
    process, or for a counter one per function in each process."""

    kind = ""

    def __init__(self, spec_text: str):
        self.spec = parse_spec(spec_text)
        self.inline = True
        self.cells = []
        #: in step with ``cells``: the function each counts (None but for
        #: counters), by the name the spec matched
        self.functions = []
        #: the int3 probe used instead, when the site cannot be patched
        self.probe = None

    def __repr__(self):
        how = "inline" if self.inline else "int3"
        return f"<{type(self).__name__} {self.spec.text} {how}>"


class Counter(_InlineProbe):
    """Hits of a site, counted by a ``lock inc`` in the tracee."""

    kind = "count"
    data_size = 8

    def __init__(self, spec_text: str):
        super().__init__(spec_text)
        #: what the int3 stand-in counted, per function
        self._int3 = {}

    @property
    def value(self) -> int:
        total = sum(_U64.unpack_from(mm, off)[0] for _, mm, off in self.cells)
        return total + (self.probe.hits if self.probe is not None else 0)

    @property
    def by_function(self) -> dict:
        """{function: hits} over every function a pattern matched, 0 for
        one not called (funccount's table leaves those out)."""
        out = dict.fromkeys(self.probe.functions.values(), 0) if self.probe is not None else {}
        if out and self.probe.handler is None:
            # an int3 stand-in for one function (see _fall_back)
            out[next(iter(out))] += self.probe.hits
        for function, hits in self._int3.items():
            out[function] = out.get(function, 0) + hits
        for (_, mm, off), function in zip(self.cells, self.functions):
            out[function] = out.get(function, 0) + _U64.unpack_from(mm, off)[0]
        return out

    def add_hit(self, hit) -> None:
        function = hit.function
        self._int3[function] = self._int3.get(function, 0) + 1


class Histogram(_InlineProbe):
    """Function latency as a log2 histogram, timed with the TSC at entry
    and at return (by a return stub, no stop)."""

    kind = "enter"
    data_size = 8 * _arch.INLINE_HIST_BUCKETS

    def __init__(self, spec_text: str):
        super().__init__(spec_text)
        self._fallback = [0] * _arch.INLINE_HIST_BUCKETS

    def add_ns(self, ns: int) -> None:
        self._fallback[min(max(ns, 0).bit_length(), len(self._fallback) - 1)] += 1

    @property
    def buckets(self) -> dict:
        """{lower bound in ns: count}: bucket ``[2**k, 2**(k+1))`` is keyed
        ``2**k``, and 0 ns is keyed 0."""
        counts = list(self._fallback)
        for _, mm, off in self.cells:
            for i, (n,) in enumerate(struct.iter_unpack("<Q", mm[off:off + self.data_size])):
                counts[i] += n
        return {(1 << (i - 1) if i else 0): n for i, n in enumerate(counts) if n}


class Recorder(_InlineProbe):
    """(tid, args) of every hit, appended to a ring in the tracee; iterating
    takes the records written so far out of it (live, from any thread).
    A hit that finds the ring full is counted in ``lost``, never
    overwriting a record not yet read."""

    kind = "record"

    def __init__(self, spec_text: str, args: int, capacity: int):
        super().__init__(spec_text)
        if not 0 <= args <= _arch.INLINE_RECORD_ARGS:
            raise ProbeError(f"probe '{spec_text}': record keeps at most "
                             f"{_arch.INLINE_RECORD_ARGS} arguments")
        if capacity < 2 or capacity & (capacity - 1):
            raise ProbeError(f"probe '{spec_text}': ring capacity must be a power of two")
        self.args = args
        self.capacity = capacity
        #: (word struct, (pid, mm, offset)) per ring, set with each cell
        self.words = {}
        self._pending = collections.deque()
        self._lock = threading.Lock()

    def data_size_for(self, word: int) -> int:
        return word * (_arch.INLINE_RING_HEADER + self.capacity * _arch.INLINE_RECORD_WORDS)

    @property
    def lost(self) -> int:
        return sum(self.words[id(mm)].unpack_from(mm, off + 2 * self.words[id(mm)].size)[0]
                   for _, mm, off in self.cells)

    def __iter__(self):
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
            for _, mm, off in self.cells:
                out += self._drain(mm, off, self.words[id(mm)])
        return iter(out)

    def _drain(self, mm, off, word):
        """Records from tail up to the first one not committed yet; the tail
        is written back last, which frees their slots for the writers."""
        w = word.size
        mask = (1 << (8 * w)) - 1
        head = word.unpack_from(mm, off)[0]
        tail = word.unpack_from(mm, off + w)[0]
        fields = struct.Struct(f"<{_arch.INLINE_RECORD_WORDS - 1}{word.format[-1]}")
        out = []
        while tail != head:
            rec = off + w * (_arch.INLINE_RING_HEADER
                             + (tail & (self.capacity - 1)) * _arch.INLINE_RECORD_WORDS)
            if word.unpack_from(mm, rec)[0] != (tail + 1) & mask:
                break   # claimed, not written yet
            tid, *args = fields.unpack_from(mm, rec + w)
            out.append((tid, tuple(args[:self.args])))
            tail = (tail + 1) & mask
        word.pack_into(mm, off + w, tail)
        return out

    def add_hit(self, hit) -> None:
        self._pending.append((hit.tid, tuple(hit.args_list(self.args))))


# -- per process ------------------------------------------------------------------

class _Site:
    """One patched address: the saved bytes and the handlers its
    trampoline runs, as (probe, arch values) pairs."""

    def __init__(self, addr: int, length: int, saved: bytes, orig: bytes):
        self.addr, self.length, self.saved, self.orig = addr, length, saved, orig
        self.works = []


class _Arena:
    """The data area of one address space's inline probes, mapped in the
    tracee and in the tracer.  A followed fork child inherits the mapping,
    so parent and child allocate from this one object: with a copy each,
    a probe set after the fork took the same cell in both, and counted
    every call twice."""

    def __init__(self, mm, base: int):
        self.mm, self.base, self.used = mm, base, 0

    def alloc(self, size: int) -> int:
        """The offset of ``size`` fresh bytes (cache-line aligned)."""
        at = self.used
        if at + size > ARENA_SIZE:
            raise _Fallback("the inline data area of the process is full")
        self.used = (at + size + 63) & ~63
        return at


class _ProcInline:
    def __init__(self, bits: int):
        self.arch = _ARCH_BY_BITS[bits]
        #: shared with the fork children that inherit it
        self.arena = None
        self.table = 0
        self.stub = 0
        #: the word the handlers skip a thread pointer by (private to the
        #: address space, in an XOL area; 0 until the arena is mapped)
        self.guard = 0
        #: the thread whose unfollowed vfork child borrows the memory now
        self.vforking = None
        #: (thread, address, bytes) of the shadow-stack slot a followed
        #: vfork child borrows with the memory, as the forker left it
        self.vfork_slot = None
        self.sites = {}
        #: trampolines and the stub: [start, end) ranges threads may be in
        self.blocks = []
        #: probe -> {function (None but for counters): its values in this
        #: process} (data allocated once)
        self.values = {}

    def inside(self, ip: int) -> bool:
        return any(lo <= ip < hi for lo, hi in self.blocks) or \
            any(s.addr < ip < s.addr + s.length for s in self.sites.values())

    def copy(self) -> "_ProcInline":
        dup = _ProcInline.__new__(_ProcInline)
        dup.__dict__.update(self.__dict__)
        dup.sites = {a: _copy_site(s) for a, s in self.sites.items()}
        dup.blocks = list(self.blocks)
        dup.values = {obj: dict(per) for obj, per in self.values.items()}
        return dup


def _copy_site(site: _Site) -> _Site:
    dup = _Site(site.addr, site.length, site.saved, site.orig)
    dup.works = list(site.works)
    return dup


class InlineProbes:
    """The engine hook that owns every inline probe of one tracer."""

    def __init__(self, tracer):
        self.tracer = tracer
        self.probes = []
        self._procs = {}
        #: pid -> the probes waiting there for their file to be mapped
        self._waiting = {}
        self._mult = None
        #: (file, function address) -> the function's direct branch targets
        self._branch_targets = {}

    # -- API ------------------------------------------------------------------
    def count(self, spec: str) -> Counter:
        return self._add(Counter(spec))

    def record(self, spec: str, args: int = 0, capacity: int = DEFAULT_CAPACITY) -> Recorder:
        return self._add(Recorder(spec, args, capacity))

    def latency(self, spec: str) -> Histogram:
        obj = Histogram(spec)
        s = obj.spec
        if s.func is None or s.offset or s.is_return or s.is_glob:
            raise ProbeError(f"probe '{spec}': latency needs one function's entry (BIN:FUNC)")
        return self._add(obj)

    def _add(self, obj):
        engine = self.tracer.engine
        done = []

        def install(proc):
            done.append(proc)
            self._install_or_wait(proc, obj)

        try:
            if obj.spec.is_return or obj.spec.provider is not None and obj.kind == "enter":
                raise _Fallback("only entry probes run inline")
            engine.for_each_process(install)
        except _Fallback as why:
            if done:
                engine.for_each_process(lambda proc: self._uninstall(proc, obj))
            self._fall_back(obj, str(why))
        self.probes.append(obj)
        return obj

    def remove(self, obj) -> None:
        """Take ``obj``'s patches (or its int3 probe) out of every process.
        A thread in one of its trampolines finishes it: trampolines stay
        mapped, and jump back to the restored code."""
        self.probes.remove(obj)
        if obj.probe is not None:
            self.tracer.engine.remove_probe(obj.probe)
        else:
            self.tracer.engine.for_each_process(lambda proc: self._uninstall(proc, obj))

    def _fall_back(self, obj, why: str, keep: bool = False) -> None:
        """An int3 probe does ``obj``'s work from now on; ``keep``: what its
        patches counted before (in a library since unloaded) still counts."""
        self.tracer.engine.say(f"probe '{obj.spec.text}' cannot run inline ({why}); "
                               "using an int3 probe")
        obj.inline = False
        if not keep:
            obj.cells, obj.functions = [], []
        engine = self.tracer.engine
        if obj.kind == "record" or obj.kind == "count" and (obj.spec.is_glob
                                                           or obj.spec.is_marker_glob):
            obj.probe = engine.add_probe(obj.spec.text, obj.add_hit)
        elif obj.kind == "count":
            # One function: its hits are the probe's, counted without a
            # handler, the cheapest int3 hit there is.
            obj.probe = engine.add_probe(obj.spec.text)
        else:
            spec = obj.spec
            obj.probe = engine.add_probe(
                f"uretprobe:{spec.binary}:{spec.func}",
                lambda hit: obj.add_ns(hit.time_ns - hit.entry_time_ns))

    # -- installing -------------------------------------------------------------
    def _install(self, proc, obj) -> None:
        """Patch every site of ``obj`` in ``proc`` (all threads stopped), or
        raise _Fallback before patching any."""
        ps = proc.probe_state
        spec = obj.spec
        try:
            path = resolve_binary(spec.binary, [m.path for m in ps.modules.modules], ps.bits)
        except LibraryNotFound:
            raise _NotMapped(f"{spec.binary} is not mapped yet") from None
        mods = ps.modules.of_file(path)
        if not mods:
            raise _NotMapped(f"{path} is not mapped yet")
        mod = mods[0]
        arch = _ARCH_BY_BITS[mod.image.bits]
        st = self._procs.get(proc.pid)
        if st is None:
            st = self._procs[proc.pid] = _ProcInline(mod.image.bits)
        say = self.tracer.engine.say_once
        found = self.tracer.engine.places_in(proc, mod.image, mod.bias, spec,
                                             lambda msg: say(f"probe '{spec.text}': {msg}"))
        pending = next((place for place in found if place.resolver), None)
        if pending is not None:
            raise _Fallback(f"the IFUNC {pending.function} is not resolved yet")
        sites = [self._check(proc, st, arch, mod, place.vaddr) for place in found]
        values = [self._values(proc, st, obj, place.function) for place in found]
        for (addr, length, orig), site_values in zip(sites, values):
            site = st.sites.get(addr)
            if site is None:
                site = _Site(addr, length, proc.read(addr, length), orig)
            site.works.append((obj, site_values))
            self._write(proc, st, site)
            st.sites[addr] = site

    def _install_or_wait(self, proc, obj) -> None:
        try:
            self._install(proc, obj)
        except _NotMapped:
            waiting = self._waiting.setdefault(proc.pid, [])
            if obj not in waiting:
                waiting.append(obj)

    def _check(self, proc, st, arch, mod, vaddr: int):
        """(address, patch length, original bytes) of a site that can take
        a jump; _Fallback otherwise."""
        image, addr = mod.image, vaddr + mod.bias
        site = st.sites.get(addr)
        if site is not None:
            return addr, site.length, site.orig
        found = image.symbolize(vaddr)
        if found is None or not found[0].size:
            raise _Fallback(f"{addr:#x} is in no sized function, so its branch targets are unknown")
        sym, off = found
        func = image.read(sym.value, sym.size, partial=True)
        length = 0
        for insn in arch.decode(func[off:], vaddr):
            length += insn.length
            if length >= arch.inline_jump_len:
                break
        if length < arch.inline_jump_len:
            raise _Fallback(f"{sym.name} has fewer than {arch.inline_jump_len} bytes of "
                            "instructions from the site")
        entries = image.entry_points_in(vaddr + 1, vaddr + length)
        if entries:
            raise _Fallback(f"function {entries[0]} starts inside the bytes the jump "
                            "would cover")
        branch = _branch_into(image, arch, vaddr, vaddr + length, self._branch_targets)
        if branch is not None:
            source, target = branch
            raise _Fallback(f"a branch of {source.name} lands at "
                            f"{sym.name}+{target - sym.value:#x}, inside the bytes the jump "
                            "would cover")
        inside = sorted(r for r in arch.call_returns(func[off:off + length], vaddr)
                        if r < vaddr + length)
        if inside:
            raise _Fallback(f"a call in the bytes the jump would cover returns to "
                            f"{sym.name}+{inside[0] - sym.value:#x}, inside them")
        if any(addr <= a < addr + length for a in proc.probe_state.bps.sites):
            raise _Fallback("an int3 probe is set inside the bytes to patch")
        if any(s.addr < addr + length and addr < s.addr + s.length for s in st.sites.values()):
            raise _Fallback("another inline probe covers part of the bytes to patch")
        ps = proc.probe_state
        for thread in proc.threads.values():
            ip = _arch.for_regs(thread.get_regs()).ip(thread.get_regs())
            if addr < ip < addr + length:
                raise _Fallback(f"thread {thread.tid} is stopped inside the bytes to patch")
            # A thread in a boosted copy jumps back to just after its home.
            for slot, home in ps.boosted.items():
                if addr <= home < addr + length and slot <= ip < slot + ps.xol.slot_size:
                    raise _Fallback(f"thread {thread.tid} is running a copy of an instruction "
                                    "the patch covers")
        if image.relocated(vaddr, vaddr + length):
            # The file's bytes are not what runs there, and the loader may
            # yet write into the jump.
            raise _Fallback("the loader relocates some of the bytes to patch "
                            "(a text relocation)")
        orig = original_code(image, vaddr, length)
        area = ps.xol.area_near(proc, proc.stopped_thread(), addr, arch, 1)
        try:
            arch.relocate(orig, addr, area.end)
        except _arch.UnsupportedInstruction as exc:
            raise _Fallback(exc.reason + (f" ('{exc.text}')" if exc.text else "")) from None
        return addr, length, orig

    def _write(self, proc, st, site: _Site) -> None:
        """A fresh trampoline for the site's handlers, then the jump to it.
        An old trampoline stays: a thread may still be running it."""
        arch, ps = st.arch, proc.probe_state
        handlers = b"".join(arch.inline_handler(obj.kind, values) for obj, values in site.works)

        def build(at):
            body = handlers + arch.relocate(site.orig, site.addr, at + len(handlers))
            return body + arch.encode_jump(at + len(body), site.addr + site.length)

        # relocated branches may take their long forms at the final address
        size = len(build(site.addr)) + 16 * len(site.orig) + 16
        tramp = ps.xol.block(proc, proc.stopped_thread(), site.addr, size, arch)
        code = build(tramp)
        proc.write(tramp, code)
        st.blocks.append((tramp, tramp + len(code)))
        jump = arch.encode_jump(site.addr, tramp)
        if len(jump) != arch.inline_jump_len:
            raise _Fallback("no trampoline within reach of a 5-byte jump")
        _patch(proc, site.addr, jump + _INT3 * (site.length - len(jump)))

    def _values(self, proc, st, obj, function) -> dict:
        """The arch values of ``obj``'s handler at a site in ``function`` in
        ``proc``, allocating its data the first time: a counter has a cell
        per function, so that a pattern's hits are told apart."""
        key = function if obj.kind == "count" else None
        known = st.values.get(obj, {})
        if key in known:
            return known[key]
        arch = st.arch
        word = arch.word_size
        if obj.kind == "record":
            tid_offset = self._tid_offset(proc)
            size = obj.data_size_for(word)
        else:
            size = obj.data_size
        if st.arena is None:
            st.arena = _Arena(*_map_shared(proc, st.arch))
            st.guard = proc.probe_state.xol.block(proc, proc.stopped_thread(),
                                                  proc.probe_state.xol.trampoline, word, arch)
        off = st.arena.alloc(size)
        addr = st.arena.base + off
        obj.cells.append((proc.pid, st.arena.mm, off))
        obj.functions.append(key)
        if obj.kind == "count":
            values = {"counter": addr}
        elif obj.kind == "record":
            obj.words[id(st.arena.mm)] = struct.Struct("<Q" if word == 8 else "<I")
            values = {"ring": addr, "capacity": obj.capacity, "tid_offset": tid_offset}
        else:
            self._latency_setup(proc, st)
            values = {"table": st.table, "hist": addr, "stub": st.stub}
        values["guard"] = st.guard
        st.values.setdefault(obj, {})[key] = values
        return values

    def _latency_setup(self, proc, st) -> None:
        """The shadow-stack table and the return stub, once per process."""
        if st.stub:
            return
        arch, ps = st.arch, proc.probe_state
        thread = proc.stopped_thread()
        table = proc.inject_syscall(
            thread, ps.xol.syscall_at,
            lambda a, regs: a.set_mmap(regs, 0, _SHADOW_BYTES, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS))
        if -4096 < table < 0:
            raise _Fallback(f"cannot map the shadow stacks: {os.strerror(-table)}")
        table &= (1 << arch.bits) - 1
        if self._mult is None:
            self._mult = _tsc_mult()
        code = arch.inline_handler("return", {"table": table, "mult": self._mult,
                                            "guard": st.guard})
        stub = ps.xol.block(proc, thread, ps.xol.trampoline, len(code), arch)
        proc.write(stub, code)
        st.table, st.stub = table, stub
        st.blocks.append((stub, stub + len(code)))

    def _tid_offset(self, proc) -> int:
        """Where glibc keeps the kernel tid in its thread control block, as
        libc's libthread_db descriptor ``_thread_db_pthread_tid`` says
        (bits, count, offset)."""
        ps = proc.probe_state
        try:
            path = resolve_binary("libc", [m.path for m in ps.modules.modules], ps.bits)
            image = ElfImage.open(path, self.tracer.engine.debug_dirs)
            sym = image.get_symbol("_thread_db_pthread_tid")
            bits, _, offset = struct.unpack("<III", image.read(sym.value, 12))
        except (LibraryNotFound, ElfError, OSError) as exc:
            raise _Fallback(f"no glibc thread descriptor to read thread ids from ({exc})") from None
        if bits != 32:
            raise _Fallback(f"glibc's tid field is {bits} bits")
        return offset

    def _uninstall(self, proc, obj) -> None:
        waiting = self._waiting.get(proc.pid, [])
        if obj in waiting:
            waiting.remove(obj)
        st = self._procs.get(proc.pid)
        if st is None:
            return
        for site in list(st.sites.values()):
            kept = [(o, v) for o, v in site.works if o is not obj]
            if len(kept) == len(site.works):
                continue
            site.works = kept
            if kept:
                self._write(proc, st, site)
            else:
                _patch(proc, site.addr, site.saved)
                del st.sites[site.addr]
        st.values.pop(obj, None)

    # -- engine hooks -------------------------------------------------------------
    def covers(self, proc, addr: int) -> bool:
        """Whether ``addr`` lies in bytes an inline probe replaced: an int3
        there would cut its jump in half."""
        st = self._procs.get(proc.pid)
        return st is not None and any(s.addr <= addr < s.addr + s.length
                                      for s in st.sites.values())

    def on_new_process(self, proc) -> None:
        """A new tracee or a new image (exec): set every inline probe in it,
        or have it wait for its library."""
        self._procs.pop(proc.pid, None)
        self._waiting.pop(proc.pid, None)
        for obj in self.probes:
            if not obj.inline:
                continue
            try:
                self._install_or_wait(proc, obj)
            except _Fallback as why:
                self._uninstall(proc, obj)
                self.tracer.engine.say(f"probe '{obj.spec.text}' is not set in pid {proc.pid}: "
                                       f"{why}")

    on_exec = on_new_process

    def on_loaded(self, proc) -> None:
        """The loaded libraries changed: set the probes waiting for theirs,
        with every thread stopped, as a patch needs."""
        waiting = self._waiting.get(proc.pid)
        if not waiting:
            return
        with self.tracer.engine.stopped(proc):
            for obj in list(waiting):
                try:
                    self._install(proc, obj)
                    waiting.remove(obj)
                except _NotMapped:
                    pass
                except _Fallback as why:
                    self._uninstall(proc, obj)  # which takes it off the waiting list too
                    if any(obj in st.values for st in self._procs.values()):
                        self.tracer.engine.say(f"probe '{obj.spec.text}' is not set in pid "
                                               f"{proc.pid}: {why}")
                    else:
                        # patched nowhere: an int3 probe stands in for it,
                        # here and in every process, as when set up front
                        self._fall_back(obj, str(why), keep=True)

    def on_fork(self, forker, child, follow: bool, vfork: bool) -> None:
        """A followed child shares the counters (the mapping is inherited)
        and has a copy of the shadow stacks; an unfollowed one gets its
        original text and return addresses back before it runs.  An
        unfollowed vfork child cannot: it runs in its parent's memory, on
        the forker's thread pointer, which the handlers skip until the
        forker's vfork returns.  Only one vfork at a time is told apart."""
        parent = forker.process
        if (follow or vfork) and parent.pid in self._waiting:
            self._waiting[child.pid] = list(self._waiting[parent.pid])
        st = self._procs.get(parent.pid)
        if st is None:
            return
        # a thread with no TLS (a program without libc) has no thread
        # pointer to tell its child by, and the handlers of a guard set
        # would fault reading one: that child counts
        base = st.arch.tls_base(forker.get_regs()) if vfork else 0
        tp = st.arch.read_word(parent.memory, base) if base else 0
        if tp and not follow:
            if st.guard and st.vforking is None:
                st.arch.write_word(parent.memory, st.guard, tp)
                st.vforking = forker.tid
        elif tp and st.table and st.vfork_slot is None:
            # A followed child returns from the vfork through the return
            # stub, on the forker's slot: it times that return and pops
            # the forker's entry, which the forker's own return then needs.
            found = _shadow_slot(parent, st, tp)
            if found is not None:
                st.vfork_slot = (forker.tid, *found)
        elif follow and not vfork and st.vforking is not None:
            # a fork child's copy of the guard: the thread it names is not
            # the child's, and a thread the child makes may reuse its TLS
            st.arch.write_word(child.memory, st.guard, 0)
        if follow or vfork:
            self._procs[child.pid] = st.copy()
            self._procs[child.pid].vforking = self._procs[child.pid].vfork_slot = None
            return
        _unhijack(child, st)
        for site in st.sites.values():
            child.write(site.addr, site.saved)

    def on_vfork_done(self, thread) -> None:
        """The forker's child no longer borrows its memory: what it set
        aside for the child's time there is put back."""
        st = self._procs.get(thread.process.pid)
        if st is not None and st.vforking == thread.tid:
            st.arch.write_word(thread.process.memory, st.guard, 0)
            st.vforking = None
        if st is not None and st.vfork_slot is not None and st.vfork_slot[0] == thread.tid:
            _, addr, data = st.vfork_slot
            thread.process.write(addr, data)
            st.vfork_slot = None

    def on_detach(self, proc) -> None:
        """Every thread stopped: step threads out of trampolines and the
        return stub, put hijacked return addresses back, restore the text.
        Trampolines and data stay mapped, like the XOL areas."""
        st = self._procs.pop(proc.pid, None)
        if st is None:
            return
        for thread in list(proc.threads.values()):
            _step_out(proc, thread, st)
        _unhijack(proc, st)
        for site in st.sites.values():
            _patch(proc, site.addr, site.saved)

    def on_unmapped(self, proc, modules) -> None:
        """Libraries unloaded (dlclose): their patches went with their
        pages, and whatever is mapped there next is not ours to restore.
        Their sites are dropped without touching memory, and their probes
        wait for the library to come back."""
        st = self._procs.get(proc.pid)
        if st is None:
            return
        waiting = self._waiting.setdefault(proc.pid, [])
        for site in [s for s in st.sites.values()
                     if any(m.start <= s.addr < m.end for m in modules)]:
            del st.sites[site.addr]
            waiting += [obj for obj, _ in site.works if obj not in waiting]

    def on_process_gone(self, proc) -> None:
        self._procs.pop(proc.pid, None)
        self._waiting.pop(proc.pid, None)


def _branch_into(image, arch, lo: int, hi: int, known: dict):
    """(function, target) of a direct branch into (lo, hi) from a function
    within _NEIGHBOURS bytes of it, or None; ``known`` keeps each
    function's branch targets.  Not only the site's own function:
    hand-written code jumps into its neighbours (glibc's mempcpy to the
    second instruction of memmove), and scanning a whole libc costs
    seconds."""
    for sym in image.functions_in(lo - _NEIGHBOURS, hi + _NEIGHBOURS):
        key = (image.path, sym.value)
        if key not in known:
            code = image.read(sym.value, sym.size, partial=True)
            known[key] = sorted(arch.branch_targets(code, sym.value))
        inside = [t for t in known[key] if lo < t < hi]
        if inside:
            return sym, inside[0]
    return None


def _step_out(proc, thread, st) -> None:
    """Step ``thread`` until it is out of the trampolines and the patched
    bytes.  The handlers save and restore the flags (pushf ... popf): a
    step through them leaves the step's trap flag set as if the program
    had set it, so it is cleared after, unless the program's own."""
    regs = thread.get_regs()
    arch = _arch.for_regs(regs)
    if not st.inside(arch.ip(regs)):
        return
    own_flag = arch.flags(regs) & arch.step_flag
    for _ in range(_STEP_OUT_LIMIT):
        proc._step_one(thread)
        regs = thread.get_regs()
        if not st.inside(_arch.for_regs(regs).ip(regs)):
            break
    if not own_flag and arch.flags(regs) & arch.step_flag:
        arch.set_flags(regs, arch.flags(regs) & ~arch.step_flag)
        thread.mark_regs_dirty()


def _patch(proc, addr: int, data: bytes) -> None:
    """Multi-byte text change in the order Linux uprobes uses: int3 first,
    then the tail, then the first byte, so a thread that runs the site
    meanwhile sees either the old instruction or a trap, never a mix."""
    proc.write(addr, _INT3)
    if len(data) > 1:
        proc.write(addr + 1, data[1:])
    proc.write(addr, data[:1])


def _shadow_slot(proc, st, tp: int):
    """(address, bytes) of the shadow-stack slot keyed by thread pointer
    ``tp``, or None when the thread has none."""
    data = proc.read(st.table, _SHADOW_BYTES)
    for s in range(_arch.INLINE_SHADOW_SLOTS):
        base = s * _arch.INLINE_SHADOW_SLOT_BYTES
        if struct.unpack_from("<Q", data, base)[0] == tp:
            return st.table + base, data[base:base + _arch.INLINE_SHADOW_SLOT_BYTES]
    return None


def _unhijack(proc, st) -> None:
    """Each shadow-stack entry records the stack slot it hijacked: write the
    real return address back where the stub's address still is.  Newest
    first: an entry left by a longjmp out of a timed call can name the slot
    a later call hijacked, and the later call's return address is the one
    the slot needs."""
    if not st.table:
        return
    arch, mem = st.arch, proc.memory
    data = proc.read(st.table, _SHADOW_BYTES)
    for s in range(_arch.INLINE_SHADOW_SLOTS):
        base = s * _arch.INLINE_SHADOW_SLOT_BYTES
        key, depth = struct.unpack_from("<QQ", data, base)
        for e in reversed(range(min(depth, _arch.INLINE_SHADOW_DEPTH) if key else 0)):
            slot, orig = struct.unpack_from("<QQ", data, base + 16 + 32 * e)
            try:
                if arch.read_word(mem, slot) == st.stub:
                    arch.write_word(mem, slot, orig)
            except OSError:
                pass


def _map_shared(proc, arch):
    """Map a fresh file into the tracee (MAP_SHARED) and into the tracer;
    returns (tracer mmap, tracee address)."""
    ps = proc.probe_state
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix=f"ptrace-raw-{proc.pid}-", dir=shm)
    try:
        os.ftruncate(fd, ARENA_SIZE)
        owner = os.stat(f"/proc/{proc.pid}")
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        thread = proc.stopped_thread()
        name = os.fsencode(path) + b"\0"
        at = ps.xol.block(proc, thread, ps.xol.trampoline, len(name), arch)
        proc.write(at, name)
        nr = arch.syscall_numbers

        def call(*args):
            return proc.inject_syscall(thread, ps.xol.syscall_at,
                                       lambda a, regs: a.set_syscall(regs, *args))

        tfd = call(nr["openat"], _AT_FDCWD, at, _O_RDWR | _O_CLOEXEC)
        if tfd < 0:
            raise _Fallback(f"the tracee cannot open {path}: {os.strerror(-tfd)}")
        base = call(nr["mmap"], 0, ARENA_SIZE, PROT_READ | PROT_WRITE, _MAP_SHARED, tfd, 0)
        call(nr["close"], tfd)
        if -4096 < base < 0:
            raise _Fallback(f"the tracee cannot map {path}: {os.strerror(-base)}")
        return mmap.mmap(fd, ARENA_SIZE), base & ((1 << arch.bits) - 1)
    finally:
        os.close(fd)
        os.unlink(path)


_tsc_code = None


def _tsc_mult() -> int:
    """ns per TSC tick as 32.32 fixed point, measured against the tracer's
    monotonic clock over 50 ms (the TSC is the same on every CPU where the
    kernel uses it as its clock, and it runs at a constant rate)."""
    global _tsc_code
    if _tsc_code is None:
        buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        buf.write(_arch.HOST_RDTSC)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        _tsc_code = (buf, ctypes.CFUNCTYPE(ctypes.c_uint64)(addr))
    rdtsc = _tsc_code[1]
    t0, c0 = time.monotonic_ns(), rdtsc()
    time.sleep(0.05)
    c1, t1 = rdtsc(), time.monotonic_ns()
    mult = round((t1 - t0) * (1 << 32) / (c1 - c0))
    if not 0 < mult < (1 << 32):
        raise _Fallback("the TSC runs slower than 1 GHz")
    return mult
