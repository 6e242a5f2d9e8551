"""What a handler receives: one probe hit, read lazily.

A Hit costs one small object per hit; every value that needs a syscall
(registers beyond those the hit path already read, memory, the backtrace) is
fetched only when the handler asks for it.
"""

from __future__ import annotations

import time

from .memory import ReadWindow


class Regs:
    """Registers by name (``hit.regs.rax``, ``hit.regs.eax`` on i386);
    assigning one changes the tracee's register when it resumes."""

    __slots__ = ("_thread", "_arch")

    def __init__(self, thread, arch):
        object.__setattr__(self, "_thread", thread)
        object.__setattr__(self, "_arch", arch)

    def __getattr__(self, name):
        try:
            return self._arch.get_reg(self._thread.get_regs(), name)
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, name, value):
        try:
            self._arch.set_reg(self._thread.get_regs(), name, value)
        except KeyError as exc:
            raise AttributeError(str(exc)) from None
        self._thread.mark_regs_dirty()

    def __getitem__(self, name):
        return getattr(self, name)

    def __setitem__(self, name, value):
        setattr(self, name, value)

    def as_dict(self):
        regs = self._thread.get_regs()
        return {n: self._arch.get_reg(regs, n) for n in self._arch.reg_names}

    def __repr__(self):
        return " ".join(f"{k}={v:#x}" for k, v in self.as_dict().items())


_monotonic_ns = time.monotonic_ns

#: bytes of stack one argument read brings in: the next arguments of an
#: i386 function (all on the stack) then cost no further system call
_ARG_WINDOW = 32


class Hit:
    """One probe hit, as seen by its handler.

    Everything but ``probe``, ``ip`` and ``time_ns`` is read from the
    thread when asked, so a Hit is meaningful only while its handler runs
    (the thread is stopped there); keep values, not the Hit.

    ``arg(n)`` reads the n-th integer argument by the ABI of the thread's
    arch; for a return probe ``retval`` is the return value and
    ``entry_args`` the arguments saved at entry when the probe asked for
    them (``keep_args=N``).
    """

    #: The probe engine renews a probe's spare Hit for its next hit in place
    #: (ProbeEngine.on_trap: thread, ip, time_ns, and the two caches _arch
    #: and _window emptied), not through a method here: the call would be
    #: a fortieth of a hit.
    __slots__ = ("probe", "thread", "ip", "time_ns", "_arch", "_entry", "_engine", "_window")

    def __init__(self, probe, thread, ip, engine, entry=None):
        self.probe = probe
        self.thread = thread
        self.ip = ip
        self._arch = None
        self.time_ns = _monotonic_ns()
        self._entry = entry
        self._engine = engine
        self._window = None

    @property
    def arch(self):
        """The thread's arch (``arch.X86_64`` or ``arch.I386``); asked of
        the thread when first used, as most handlers never do."""
        arch = self._arch
        if arch is None:
            arch = self._arch = self.thread.arch
        return arch

    @property
    def pid(self) -> int:
        return self.thread.process.pid

    @property
    def tid(self) -> int:
        return self.thread.tid

    @property
    def process(self):
        return self.thread.process

    @property
    def sp(self) -> int:
        return self.arch.sp(self.thread.get_regs())

    @property
    def regs(self) -> Regs:
        return Regs(self.thread, self.arch)

    def arg(self, n: int) -> int:
        """The n-th integer argument at function entry (SysV on x86_64,
        cdecl on i386); only meaningful at a function's first instruction.
        Stack arguments are read once per hit, as they were at the first
        ``arg`` call."""
        arch = self._arch or self.arch
        names = arch.arg_registers
        if n < len(names):
            return getattr(self.thread.get_regs(), names[n])
        window = self._window
        if window is None:
            window = self._window = ReadWindow(self.thread.process.memory, _ARG_WINDOW)
        return arch.arg(self.thread.get_regs(), window, n)

    def args_list(self, count: int):
        """The first ``count`` arguments, with one stack read on i386."""
        return self.arch.args(self.thread.get_regs(), self.thread.process.memory, count)

    @property
    def retval(self) -> int:
        return self.arch.retval(self.thread.get_regs())

    @property
    def retval_signed(self) -> int:
        return self.arch.to_signed(self.retval)

    @property
    def entry_args(self):
        return self._entry.args if self._entry is not None else None

    @property
    def entry_time_ns(self):
        return self._entry.time_ns if self._entry is not None else None

    @property
    def location(self):
        """Where the probe is, symbolized (``str()`` gives ``func+0x4
        (module) at file.c:12``); for a return probe, the function that
        returned."""
        return self._engine.location(self)

    @property
    def function(self):
        """The function the probe's spec matched where it hit, by the name
        it matched: which one, when the spec is a pattern (an IFUNC is named
        as the pattern matched it, not as its implementation's symbol)."""
        return self._engine.function(self)

    @property
    def usdt_marker(self):
        """``provider:name`` of the marker hit, for a USDT probe (None for
        other probes): which one, when the spec is a pattern."""
        return self._engine.usdt_marker(self)

    @property
    def usdt_args(self):
        """The marker's arguments as integers, for a USDT probe (None for
        other probes)."""
        return self._engine.usdt_args(self)

    @property
    def args(self):
        """{parameter name: value} from the function's DWARF, read by ABI
        position (signed types sign-extended); None without debug info."""
        return self._engine.named_args(self)

    def format_args(self, strings: bool = False):
        """{name: text} formatted by declared type (pointers in hex, and
        ``char *`` as strings when ``strings`` is true)."""
        return self._engine.format_args(self, strings)

    @property
    def vars(self):
        """{name: value} of the parameters and locals in scope where the
        probe hit, from DWARF (gdb's ``info args`` and ``info locals``):
        read where DWARF says each is at this address, signed types
        sign-extended, floating ones as floats; a name an inner block
        declares again is the inner
        one.  None where a variable has no value here (optimized out, in
        pieces, in a vector register, larger than 8 bytes); None as a whole
        at a return probe or without debug information."""
        return self._engine.variables(self)

    def format_vars(self, strings: bool = False):
        """{name: text} of ``vars`` by declared type, as ``format_args``
        ("?" where there is no value)."""
        return self._engine.format_variables(self, strings)

    def read(self, addr: int, size: int) -> bytes:
        return self.thread.process.memory.read(addr, size)

    def read_cstring(self, addr: int, max: int = 256) -> str:
        return self.thread.process.memory.read_cstring(addr, max).decode("utf-8", "replace")

    def backtrace(self, max_frames: int = 64):
        """Frames from the probe site outwards, each with pc, module and
        symbol+offset; return-probe trampolines show as the real return
        address."""
        return self._engine.backtrace(self, max_frames)

    def __repr__(self):
        return f"<Hit {self.probe.spec.text} pid={self.pid} tid={self.tid} ip={self.ip:#x}>"
