"""One traced thread: its registers for the current stop and how it resumes.

Registers are fetched at most once per stop into a struct allocated once per
thread, and written back only if someone changed them: GETREGS and SETREGS
are each a syscall on the hit path.  A hit that only moves the instruction
pointer (a boosted or skipped instruction, a handler that reads nothing)
needs less: PEEKUSER and POKEUSER of rip cost about half of GETREGS and
SETREGS, which copy and check every register.  The thread predicts which a
stop will need from what its previous stop needed.
"""

from __future__ import annotations

import ctypes
import errno
import signal

import arch as _arch

from . import binding
from ._libc import ptrace_rc as _ptrace_rc, ptrace_small as _ptrace
from .consts import (PTRACE_CONT, PTRACE_GETREGS, PTRACE_PEEKUSER, PTRACE_POKEUSER, PTRACE_SETREGS,
                     PTRACE_SINGLESTEP)
from .errors import PtraceError
from .memory import ProgramMemory
from .structs import UserRegs

#: rip in the x86_64 user_regs_struct, which is also where a 32-bit
#: tracee's eip appears (zero-extended) to a 64-bit tracer
IP_OFFSET = UserRegs.rip.offset


def thread_features(status: str) -> set:
    """The x86 features a thread has enabled (``shstk``, ``wrss``), from the
    ``x86_Thread_features:`` line of its /proc status (kernels with user
    shadow stack support, 6.6 and later); empty without that line."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "x86_Thread_features":
            return set(value.split())
    return set()


class Thread:
    __slots__ = ("tid", "process", "regs", "_regs_ref", "regs_fresh", "regs_dirty",
                 "known_ip", "_ip_arg", "ip_dirty", "regs_wanted", "predict_regs", "_arch",
                 "stopped", "group_stopped", "listening", "pending_sig", "pending_info", "signals_delivered",
                 "xol", "held_signals", "resent", "_shadow_stack",
                 "returns", "program_memory", "__weakref__")

    def __init__(self, tid: int, process):
        self.tid = tid
        self.process = process
        self.regs = UserRegs()
        self._regs_ref = ctypes.byref(self.regs)
        self.regs_fresh = False
        self.regs_dirty = False
        #: the ip of this stop when read alone (-1: not read), and whether
        #: set_ip changed it (written alone unless other registers changed)
        self.known_ip = -1
        self._ip_arg = ctypes.c_void_p()
        self.ip_dirty = False
        #: whether this stop asked for the registers, and whether the last
        #: did (then the next int3 stop reads them all at once)
        self.regs_wanted = False
        self.predict_regs = False
        #: from cs, refreshed on every GETREGS
        self._arch = None
        #: in a ptrace-stop we have not resumed from yet
        self.stopped = False
        #: stopped in a group-stop: resume with LISTEN, not CONT
        self.group_stopped = False
        #: resumed with LISTEN: held by the group-stop until SIGCONT or an
        #: interrupt, with no stop of its own to come
        self.listening = False
        #: signal to deliver when the thread resumes
        self.pending_sig = 0
        #: signals resumed into the thread so far (a handler may have run)
        self.signals_delivered = 0
        #: the siginfo pending_sig must arrive with, when it was held back
        #: (None: the one the kernel has for the current stop)
        self.pending_info = None
        #: the probe engine's per-thread step state (None when not stepping)
        self.xol = None
        #: (signal, siginfo) that arrived while stepping, delivered after
        self.held_signals = []
        #: siginfo of held signals queued to the thread again, by number,
        #: in the order they were sent (real-time signals queue; a standard
        #: one pending twice arrives once, with the last info)
        self.resent = {}
        #: return-probe instances, innermost last
        self.returns = []
        #: whether the thread runs with a CET shadow stack (None: not read)
        self._shadow_stack = None
        #: what the instructions emulated for this thread read and write
        #: through: by tid, which still works once the leader has exited
        self.program_memory = ProgramMemory(tid)

    def get_regs(self) -> UserRegs:
        self.regs_wanted = True
        if not self.regs_fresh:
            self._fetch()
        return self.regs

    def _fetch(self) -> None:
        regs = self.regs
        if _ptrace_rc(PTRACE_GETREGS, self.tid, None, self._regs_ref) == -1:
            binding.redo(PTRACE_GETREGS, self.tid, None, self._regs_ref)
        self.regs_fresh = True
        self._arch = _arch.for_regs(regs)
        if self.ip_dirty:
            regs.rip = self.known_ip

    def get_ip(self) -> int:
        """The instruction pointer, with PEEKUSER unless the registers are
        read already or the last stop needed them all."""
        if self.regs_fresh:
            return self.regs.rip
        ip = self.known_ip
        if ip < 0:
            if self.predict_regs:
                self._fetch()
                return self.regs.rip
            ip = _ptrace(PTRACE_PEEKUSER, self.tid, IP_OFFSET, None)
            if ip == -1:
                ip = binding.redo(PTRACE_PEEKUSER, self.tid, IP_OFFSET)
            self.known_ip = ip
        return ip

    def set_ip(self, ip: int) -> None:
        """Move ip; if nothing else changes, the resume writes it alone
        (POKEUSER), whether or not the other registers were read."""
        if self.regs_fresh:
            self.regs.rip = ip
        self.known_ip = ip
        self.ip_dirty = True

    def at_trap_with_regs(self) -> int:
        """A new stop at an int3 when the last stop needed every register
        (``predict_regs``): they are read now, in one GETREGS, and ip is
        moved back onto the int3, to be written only if the thread resumes
        with no other ip given.  Returns the int3's address.  What the last
        stop left unwritten is dropped.  The other int3 stops read ip alone,
        in ``ProbeEngine.on_trap`` itself (the hit path's first call)."""
        self.regs_dirty = False
        self._fetch()
        regs = self.regs
        addr = regs.rip - 1
        regs.rip = addr
        self.known_ip = addr
        self.ip_dirty = True
        return addr

    def undo_rewind(self) -> None:
        """After an int3 stop: ip stays past the int3, where the kernel left
        it, and needs no writing back (a trap at no probe, or a one-byte
        no-op, which leaves ip there itself)."""
        ip = self.known_ip + 1
        if self.regs_fresh:
            self.regs.rip = ip
        self.known_ip = ip
        self.ip_dirty = False

    def stale(self) -> None:
        """A new stop: what was read or left unwritten at the last one no
        longer holds."""
        self.stopped = True
        self.regs_fresh = False
        self.known_ip = -1
        self.regs_dirty = self.ip_dirty = self.listening = False

    def new_image(self) -> None:
        """After exec: the thread runs another program, which may be of the
        other bitness; nothing read or held for the old one applies."""
        self.stale()
        self._arch = None
        self.predict_regs = self.regs_wanted = False
        self.returns = []
        self.xol = None
        self._shadow_stack = None

    def hold_signal(self, sig: int) -> None:
        """Keep a signal that arrived while the thread was busy (a step, an
        injected syscall), with its siginfo, until ``release_held``."""
        info = self._take_resent(sig)
        if info is None:
            try:
                info = binding.getsiginfo(self.tid)
            except PtraceError:
                info = None
        self.held_signals.append((sig, info))

    def signal_stop(self, sig: int) -> None:
        """This stop delivers ``sig``, which the thread gets when resumed.
        A held signal queued again by ``release_held`` comes back with the
        siginfo of that tgkill (the tracer's pid): the one it was first sent
        with is put back."""
        self.pending_sig = sig
        self.pending_info = self._take_resent(sig)

    def release_held(self) -> None:
        """Deliver the held signals: the first with the next resume, its
        siginfo restored, the others queued to the thread again (their
        siginfo restored when they arrive, see ``signal_stop``)."""
        held = self.held_signals
        if not held:
            return
        if not self.pending_sig:
            self.pending_sig, self.pending_info = held.pop(0)
        for sig, info in held:
            binding.resend(self.process.pid, self.tid, sig, info)
            if sig >= signal.SIGRTMIN:
                self.resent.setdefault(sig, []).append(info)
            else:
                self.resent[sig] = [info]
        held.clear()

    def _take_resent(self, sig: int):
        """The siginfo a held signal arriving again was re-sent with."""
        infos = self.resent.get(sig)
        if not infos:
            return None
        info = infos.pop(0)
        if not infos:
            del self.resent[sig]
        return info

    def take_signal(self) -> int:
        """The signal to resume with (0: none).  A held signal's siginfo is
        put in place first: resumed with the same number, the kernel
        delivers the signal with that info instead of making one up."""
        sig = self.pending_sig
        if sig:
            self.pending_sig = 0
            self.signals_delivered += 1
            info = self.pending_info
            if info is not None:
                self.pending_info = None
                if info.si_signo == sig:
                    binding.setsiginfo(self.tid, info)
        return sig

    def keep_siginfo(self) -> None:
        """Save the siginfo of the signal this stop is delivering before
        the thread runs anything else (an injected syscall) in between:
        the stop delivering it then is another one, with other info."""
        if self.pending_sig and self.pending_info is None:
            try:
                self.pending_info = binding.getsiginfo(self.tid)
            except PtraceError:
                pass

    def replace_pending(self, sig: int) -> None:
        """Deliver ``sig`` (this stop's signal) on the next resume; a signal
        released earlier and still pending is queued again, not dropped."""
        if self.pending_sig:
            self.held_signals.insert(0, (self.pending_sig, self.pending_info))
        self.pending_sig, self.pending_info = sig, None

    def has_shadow_stack(self) -> bool:
        """Whether the thread runs with a CET shadow stack, on which a
        swapped return address faults at the return.  Read once per thread
        (glibc enables it at start-up, before main)."""
        if self._shadow_stack is None:
            try:
                with open(f"/proc/{self.process.pid}/task/{self.tid}/status") as f:
                    self._shadow_stack = "shstk" in thread_features(f.read())
            except OSError:
                self._shadow_stack = False
        return self._shadow_stack

    def in_unreturned_syscall(self) -> bool:
        """Whether the thread is stopped inside a system call that has not
        returned (at a fork's or clone's event stop): its registers hold
        the -ENOSYS the kernel enters a system call with, not its result,
        which code the tracer runs from there sets as the system call
        ends, and which putting the registers back then undoes (the
        program's fork() fails, while its child runs).  A system call
        interrupted at a stop has returned already, with a code that
        restarts it."""
        regs = self.get_regs()
        return regs.orig_rax != (1 << 64) - 1 and self.arch.syscall_result(regs) == -errno.ENOSYS

    def mark_regs_dirty(self) -> None:
        self.regs_dirty = True

    @property
    def arch(self) -> _arch.Arch:
        """From the code segment at the last GETREGS: a far jump can switch
        it, and is seen at the next stop that reads the registers."""
        arch = self._arch
        if arch is None:
            self._fetch()
            arch = self._arch
        return arch

    def flush_regs(self) -> None:
        """Write changed registers back; the thread stays stopped."""
        if self.regs_dirty:
            self._set_regs(-1)
        elif self.ip_dirty:
            arg = self._ip_arg
            arg.value = self.known_ip
            if _ptrace_rc(PTRACE_POKEUSER, self.tid, IP_OFFSET, arg) == -1:
                binding.redo(PTRACE_POKEUSER, self.tid, IP_OFFSET, arg)
        self.regs_dirty = self.ip_dirty = False

    def _set_regs(self, ip: int) -> None:
        """SETREGS, with rip replaced by ``ip`` unless it is -1."""
        if ip >= 0:
            self.regs.rip = ip
        if _ptrace_rc(PTRACE_SETREGS, self.tid, None, self._regs_ref) == -1:
            binding.redo(PTRACE_SETREGS, self.tid, None, self._regs_ref)

    def resume(self, ip: int = -1, request: int = PTRACE_CONT, ip_arg=None) -> None:
        """Write back what changed and continue from the current stop (at
        ``ip`` if given), delivering any pending signal; or take one step
        (``request`` PTRACE_SINGLESTEP), which delivers none.  Every hit
        ends here, so it is written out in one piece: SETREGS if any
        register changed, else POKEUSER of ip alone (``ip``, or the one
        set_ip left) if it moved, then the resume; ``ip_arg`` is ``ip`` made
        ready for POKEUSER (``word_arg``).  What was read for the stop is
        stale from here on, and what it needed predicts the next.
        ``ProbeEngine.on_trap`` writes out the plain case (ip alone, no
        signal, no group-stop) of a boosted, USDT or plainly stepped hit:
        keep the two in step."""
        tid = self.tid
        if self.regs_dirty:
            self._set_regs(ip)
        elif ip >= 0 or self.ip_dirty:
            if ip_arg is None:
                ip_arg = self._ip_arg
                ip_arg.value = ip if ip >= 0 else self.known_ip
            if _ptrace_rc(PTRACE_POKEUSER, tid, IP_OFFSET, ip_arg) == -1:
                binding.redo(PTRACE_POKEUSER, tid, IP_OFFSET, ip_arg)
        self.regs_dirty = self.ip_dirty = self.regs_fresh = self.stopped = False
        self.known_ip = -1
        self.predict_regs = self.regs_wanted
        self.regs_wanted = False
        if request != PTRACE_CONT:
            sig = 0
        elif self.group_stopped:
            self.group_stopped = False
            self.listening = True
            binding.listen(tid)
            return
        else:
            sig = self.take_signal() if self.pending_sig else 0
        if _ptrace_rc(request, tid, None, sig) == -1:
            binding.redo(request, tid, None, sig)

    def singlestep(self, ip: int = -1) -> None:
        self.resume(ip, PTRACE_SINGLESTEP)

    def __repr__(self):
        return f"<Thread {self.tid} of {self.process.pid}>"
