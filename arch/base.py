"""The whole contract between the process side (``ptrace_raw``) and an
instruction set.

A porter reads this file and nothing else.  ``ptrace_raw`` never looks inside
a plan and never names a register: it asks the arch by role (``ip``, ``sp``,
``arg``) so that one tracer serves 64-bit and 32-bit tracees side by side.

Registers (``regs``) are any object with the x86_64 ``user_regs_struct`` field
names as integer attributes (``rax`` ... ``gs``): ptrace_raw's ctypes struct in
a live tracer, a plain namespace in the unit tests.  On a 64-bit kernel
PTRACE_GETREGS always returns that layout, even for a 32-bit tracee; the i386
arch is a 32-bit view over the same fields.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Optional, Protocol


class Memory(Protocol):
    """Tracee memory as the arch sees it: reads and writes by address.

    ``read`` and ``write`` raise ``OSError`` on an unmapped address; the arch
    lets that propagate except where a method says otherwise.
    """

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class UnsupportedInstruction(ValueError):
    """An instruction no strategy can run safely away from its home address.

    ``reason`` is a sentence a user can read (it ends up in an error message
    naming the probe); ``text`` is the disassembly when there is one.
    """

    def __init__(self, reason: str, text: str = "", addr: Optional[int] = None):
        self.reason = reason
        self.text = text
        self.addr = addr
        where = f" at {addr:#x}" if addr is not None else ""
        what = f" '{text}'" if text else ""
        super().__init__(f"cannot probe instruction{what}{where}: {reason}")


class Insn(NamedTuple):
    """One decoded instruction, for boundary checks and listings."""

    addr: int
    length: int
    text: str


class XolPlan:
    """How the instruction displaced by an ``int3`` runs, decided once at
    analysis time so the hit path never decodes.

    The tracer treats a plan as opaque and drives it through these methods.
    A plan holds no per-thread state: what a step must remember between
    ``pre_xol`` and ``post_xol`` is the token ``pre_xol`` returns.

    Strategies, cheapest first:

    * ``strategy == "emulate"``: ``emulate`` applies the instruction to the
      registers (and the stack) in the tracer; one stop per hit, no slot.
    * ``strategy == "boost"``: ``boost_code(addr, slot)`` is the instruction
      followed by a jump back (none after one that never falls through, a
      ret or an indirect jmp), written once into a slot of its own that is
      never reused; the thread is pointed at it and continued: one stop.
      An ``emulate`` plan may be ``boostable`` too: when its emulation needs
      the registers, a tracer that pays more to read and write them than to
      move ip (ptrace: GETREGS and SETREGS against one POKEUSER) runs the
      boosted copy instead, and keeps emulation for when no slot is in
      reach.
    * ``strategy == "step"``: the copy from ``step_code`` is single-stepped in
      a per-thread slot between ``pre_xol`` and ``post_xol``: two stops.

    Every plan can be stepped (``step_code``): it is the fallback when an
    emulation cannot complete or no boost slot is in reach.
    """

    #: byte length of the original instruction
    length: int
    #: disassembly, for messages and listings
    text: str
    #: "emulate", "boost" or "step": the preferred strategy
    strategy: str
    #: True when ``pre_xol`` only sets ip := slot and ``post_xol`` only adds
    #: ``addr - slot`` to ip (a plain copy): the tracer may then step it
    #: with the instruction pointer alone, never reading the other registers
    plain_step: bool = False
    #: True when ``boost_code`` gives bytes for some slot address: a tracer
    #: sets a slot aside only for these
    boostable: bool = False
    #: where in the boosted copy a fault can come after something took
    #: effect (0: nowhere); ``undo_boost`` takes that back
    boost_fault_at: int = 0

    def emulate(self, regs, mem: Memory) -> bool:
        """Run the instruction on ``regs``/``mem`` as if executed at its home
        address.  False (with ``regs`` untouched) when it cannot complete, e.g.
        a stack access faults: the tracer then steps the copy instead, so
        the fault happens for real.  ``mem`` has the program's own access
        rights (a guard page refuses a write), not a debugger's.  Called
        with ip already rewound to the probe address (past the int3 trap),
        which is where the instruction counts from."""
        return False

    def next_ip(self, addr: int) -> Optional[int]:
        """Where emulating the instruction at ``addr`` leaves ip when it
        changes nothing else (a nop, endbr, jmp rel), else None.  The
        tracer then moves ip alone, without reading or writing the other
        registers."""
        return None

    def boost_code(self, addr: int, slot: int) -> Optional[bytes]:
        """Bytes for an immutable slot at ``slot`` that runs the instruction
        and goes on where it would have from ``addr``, or None when this
        plan cannot be boosted from that slot address (out of rel32 reach,
        or never)."""
        return None

    def undo_boost(self, regs) -> None:
        """After a fault ``boost_fault_at`` bytes into the boosted copy:
        undo what the copy did before it, so that the program sees its own
        instruction fault with nothing done (the tracer moves ip home)."""

    def step_code(self, addr: int, slot: int) -> bytes:
        """Bytes to single-step at ``slot`` (rewritten where needed, e.g. a
        rip-relative operand moved to a scratch register)."""
        raise NotImplementedError

    def pre_xol(self, regs, addr: int, slot: int) -> object:
        """Prepare ``regs`` for the step (ip := slot, scratch register
        loaded); returns the token for ``post_xol``/``abort_xol``."""
        raise NotImplementedError

    def post_xol(self, regs, mem: Memory, addr: int, slot: int, token: object) -> bool:
        """Fix ``regs`` (and the return address for calls) after one step.
        False means the instruction is not finished (a rep-string iteration
        left ip at the slot): step again without re-running handlers and
        without another ``pre_xol``; the token stays valid."""
        raise NotImplementedError

    def abort_xol(self, regs, addr: int, slot: int, token: object) -> None:
        """Undo ``pre_xol`` after a fault inside the slot: ip := addr and the
        scratch register restored, so the fault is the program's own."""
        raise NotImplementedError


class Arch:
    """An instruction set and its ABI, as a frozen value (``X86_64``,
    ``I386``).  Generic code calls these by role and never compares names.
    """

    name: str
    bits: int
    word_size: int
    breakpoint_insn: bytes = b"\xcc"
    max_insn_len: int = 15
    #: bytes per XOL slot: the longest copy plus the longest jump back
    xol_slot_size: int = 32
    #: register names a handler may read and set through ``get_reg``/``set_reg``
    reg_names: tuple = ()
    #: the register fields that hold the first integer arguments at function
    #: entry, in order (none on i386, where all are on the stack): a tracer
    #: reads these from the registers it holds, with no call into the arch
    arg_registers: tuple = ()
    #: bytes of the syscall instruction used for injection
    syscall_insn: bytes = b""
    #: numbers of the syscalls the tracer injects by name ("mmap" takes its
    #: offset in pages on i386, where it is mmap2)
    syscall_numbers: dict = {}
    #: register names by DWARF register number (CFI unwinding); the return
    #: address column is named "ip"
    dwarf_reg_names: tuple = ()
    #: the flags bit a single-step sets (x86 TF).  Hidden from the tracer
    #: while the kernel owns it, it stays set once a stepped pushf ... popf
    #: has saved and restored it, and then traps the thread after detach.
    step_flag: int = 0

    # -- registers by role -------------------------------------------------
    def ip(self, regs) -> int: raise NotImplementedError
    def set_ip(self, regs, value: int) -> None: raise NotImplementedError
    def sp(self, regs) -> int: raise NotImplementedError
    def set_sp(self, regs, value: int) -> None: raise NotImplementedError
    def fp(self, regs) -> int:
        """Frame pointer (rbp/ebp) for frame-pointer unwinding."""
        raise NotImplementedError
    def flags(self, regs) -> int: raise NotImplementedError
    def set_flags(self, regs, value: int) -> None: raise NotImplementedError
    def tls_base(self, regs) -> int:
        """The base of the segment glibc's thread pointer is read through
        (the first word there is the thread pointer itself)."""
        raise NotImplementedError
    def get_reg(self, regs, name: str) -> int: raise NotImplementedError
    def set_reg(self, regs, name: str, value: int) -> None: raise NotImplementedError

    # -- ABI ---------------------------------------------------------------
    def arg(self, regs, mem: Memory, n: int) -> int:
        """n-th (0-based) integer argument at function entry, before the
        prologue runs (the return address is at sp)."""
        raise NotImplementedError
    def args(self, regs, mem: Memory, count: int) -> list:
        """The first ``count`` integer arguments at function entry, reading
        the stack once for all of them."""
        return [self.arg(regs, mem, n) for n in range(count)]
    def returns_in_memory(self, kind: str, size: int) -> bool:
        """Whether a function returning a value of this ``(kind, size)``
        (as ``param_slots`` takes them) has its caller pass where to put
        it, as a hidden first argument that moves the others by one."""
        raise NotImplementedError
    def param_slots(self, params) -> list:
        """Where a function's parameters are at its entry: for each
        ``(kind, size)`` (kind "int" for integers, enums and pointers,
        "float", "complex", or "other" for aggregates and the like), the
        integer argument numbers (``arg``) holding its bytes, lowest first,
        or None where it is elsewhere (a floating-point register) or cannot
        be told (an aggregate passed by value may move the ones after it)."""
        raise NotImplementedError
    def retval(self, regs) -> int:
        """Integer return value at the return site, as unsigned."""
        raise NotImplementedError
    def retval_wide(self, regs) -> int:
        """A return value twice the word size where the ABI has one
        (edx:eax on i386); same as ``retval`` on x86_64."""
        raise NotImplementedError
    def set_retval(self, regs, value: int) -> None: raise NotImplementedError
    def read_word(self, mem: Memory, addr: int) -> int: raise NotImplementedError
    def write_word(self, mem: Memory, addr: int, value: int) -> None: raise NotImplementedError
    def to_signed(self, value: int) -> int:
        """A register value as a signed word."""
        raise NotImplementedError

    # -- syscall injection -------------------------------------------------
    def set_syscall(self, regs, nr: int, *args: int) -> None:
        """Load a syscall number and arguments for ``syscall_insn``."""
        raise NotImplementedError
    def syscall_result(self, regs) -> int:
        """The result of an injected syscall, sign-extended (-errno)."""
        raise NotImplementedError
    def set_mmap(self, regs, addr: int, length: int, prot: int, flags: int) -> None:
        """Load an anonymous mmap (fd -1, offset 0) for ``syscall_insn``:
        mmap on x86_64, mmap2 on i386."""
        raise NotImplementedError

    # -- function call injection -------------------------------------------
    def set_call(self, regs, mem: Memory, func: int, return_to: int) -> None:
        """Enter ``func``, a function of no arguments, as if called from
        ``return_to``: its return address pushed below the stack in use
        (and below any red zone), the stack aligned as the ABI wants at a
        call, the direction and trap flags clear, and no syscall restart
        pending, so that whatever the thread was doing cannot change where
        the call starts.  The caller saves and restores the registers."""
        raise NotImplementedError

    # -- instructions ------------------------------------------------------
    def decode(self, code: bytes, addr: int) -> Iterator[Insn]:
        """Instructions of ``code`` from its start, stopping at the first
        byte that does not decode."""
        raise NotImplementedError
    def analyze(self, code: bytes, addr: int) -> XolPlan:
        """Plan for the instruction at the start of ``code`` (the original
        bytes, never memory holding an int3); raises UnsupportedInstruction."""
        raise NotImplementedError
    def encode_jump(self, at: int, target: int) -> bytes:
        """A jump placed at ``at`` to ``target``: rel32 when in reach, else
        an absolute indirect form."""
        raise NotImplementedError
    def in_rel32_reach(self, at: int, target: int) -> bool:
        """Whether code at ``at`` can reach ``target`` with a rel32
        displacement (always true on i386, where addresses wrap)."""
        raise NotImplementedError


    # -- inline probes -----------------------------------------------------
    #: bytes of the jump an inline probe writes over its site
    inline_jump_len: int = 5

    def relocate(self, code: bytes, addr: int, new_addr: int) -> bytes:
        """``code`` (whole instructions, the original bytes at ``addr``)
        rewritten to do the same when run from ``new_addr``: position-
        dependent operands and branches keep their targets.  Raises
        UnsupportedInstruction for anything that cannot be moved."""
        raise NotImplementedError

    def branch_targets(self, code: bytes, addr: int) -> set:
        """Addresses the direct branches and calls of ``code`` (a whole
        function at ``addr``) can reach: an inline patch must not cover
        one, or a jump would land inside the patch."""
        raise NotImplementedError

    def call_returns(self, code: bytes, addr: int) -> set:
        """Where the calls of ``code`` (whole instructions at ``addr``)
        return to.  A thread inside a callee when an inline patch covers
        its call returns there: inside the patch, unless the call is the
        last instruction the patch covers."""
        raise NotImplementedError

    def inline_handler(self, kind: str, values: dict) -> bytes:
        """Position-independent code run in the tracee before a site's
        relocated instructions, preserving every register and the flags.
        ``kind`` and the ``values`` it needs (addresses in the tracee, laid
        out as the INLINE_* constants below say):

        * each takes ``guard``, the address of a word holding 0 or a
          thread pointer (the word at a thread's TLS base): a hit with
          that thread pointer does nothing, as an unfollowed vfork child
          borrows its parent thread's, and the stub returns it without
          popping, as such a child returns from the vfork its parent
          called, and the parent returns through that frame after;
        * "count": ``counter``, a u64 incremented atomically;
        * "record": ``ring`` (header of INLINE_RING_HEADER words: head,
          tail, lost), ``capacity`` (a power of two) and ``tid_offset`` (of
          the kernel tid in the thread control block); each hit claims
          record ``head`` (INLINE_RECORD_WORDS words: commit = index + 1
          written last, tid, six arguments) or counts itself in ``lost``
          when head - tail reaches the capacity;
        * "enter": ``table`` (the shadow stacks), ``hist`` and ``stub``:
          pushes (return address slot, return address, TSC, hist) on the
          thread's shadow stack and points the return address at ``stub``;
        * "return" (the stub itself): ``table`` and ``mult`` (ns per TSC
          tick, 32.32 fixed point): pops the entry, adds one to bucket
          floor(log2(ns)) + 1 of its u64 histogram (bucket 0: 0 ns) and
          returns to the real address.
        """
        raise NotImplementedError


#: in-tracee data of inline probes, shared by the arch's handlers and the
#: tracer that reads them (words are the arch's word size)
INLINE_HIST_BUCKETS = 65
INLINE_RING_HEADER = 8
INLINE_RECORD_WORDS = 8
INLINE_RECORD_ARGS = 6
#: shadow stacks: slots keyed by thread pointer, each (key, depth) and then
#: INLINE_SHADOW_DEPTH entries of four u64 (slot, return address, TSC, hist)
INLINE_SHADOW_SLOTS = 128
INLINE_SHADOW_DEPTH = 32
INLINE_SHADOW_SLOT_BYTES = 16 + 32 * INLINE_SHADOW_DEPTH


#: code segment selectors of user mode on x86_64 Linux
CS_64 = 0x33
CS_32 = 0x23
