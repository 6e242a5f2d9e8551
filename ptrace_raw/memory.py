"""Tracee memory: reads through process_vm_readv, writes through
/proc/PID/mem.

process_vm_readv is one syscall for any size but honours page protections;
/proc/PID/mem uses the kernel's forced access (as ptrace does), so it can
write read-only text (our int3s) and read pages process_vm_readv refuses.
The file is bound to the address space it was opened on: reopen after exec.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ._libc import vm_readv_small, vm_writev_small
from .binding import vm_read, vm_write
from .structs import IoVec

_PAGE = 4096
_SMALL = 256
#: bytes an emulated instruction moves at most, in one buffer kept per process
_EMULATED = 64


class Memory:
    """The ``arch.Memory`` protocol over one live address space."""

    __slots__ = ("pid", "_fd")

    def __init__(self, pid: int):
        self.pid = pid
        self._fd = -1

    def _mem_fd(self) -> int:
        if self._fd < 0:
            try:
                self._fd = os.open(f"/proc/{self.pid}/mem", os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise OSError(errno.ESRCH, f"process {self.pid} is gone") from None
        return self._fd

    def reopen(self) -> None:
        """Forget the old address space (after exec)."""
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read(self, addr: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``addr``, or OSError(EFAULT).

        Small reads (a return address, an argument on the stack) are on the
        hit path: one pread costs less than setting up process_vm_readv's
        iovecs through ctypes, and reads any mapped page."""
        if size <= _SMALL:
            return self._read_forced(addr, size)
        try:
            data = vm_read(self.pid, addr, size)
        except OSError:
            data = b""
        if len(data) < size:
            data += self._read_forced(addr + len(data), size - len(data))
        return data

    def _read_forced(self, addr: int, size: int) -> bytes:
        fd = self._fd
        try:
            data = os.pread(fd if fd >= 0 else self._mem_fd(), size, addr)
        except OSError as exc:
            raise OSError(exc.errno or errno.EFAULT,
                          f"cannot read {size} bytes at {addr:#x} in pid {self.pid}") from None
        except OverflowError:
            # past a file offset's range: the kernel's half of a 64-bit
            # address space (a garbage pointer), which is never mapped
            raise OSError(errno.EFAULT,
                          f"cannot read {size} bytes at {addr:#x} in pid {self.pid}") from None
        if len(data) < size:
            raise OSError(errno.EFAULT, f"cannot read {size} bytes at {addr:#x} in pid {self.pid}")
        return data

    def write(self, addr: int, data: bytes) -> None:
        """Write anywhere mapped, read-only text included."""
        fd = self._fd
        try:
            done = os.pwrite(fd if fd >= 0 else self._mem_fd(), data, addr)
        except OSError as exc:
            raise OSError(exc.errno or errno.EFAULT,
                          f"cannot write {len(data)} bytes at {addr:#x} in pid {self.pid}") from None
        if done != len(data):
            raise OSError(errno.EFAULT, f"short write at {addr:#x} in pid {self.pid}")

    def read_cstring(self, addr: int, max_len: int = 256) -> bytes:
        """A NUL-terminated string of at most ``max_len`` bytes (without the
        NUL), read a page at a time so it never crosses into an unmapped page
        it does not need; most strings are short and in one page: one read."""
        if 0 < max_len <= _SMALL and (addr & _PAGE - 1) + max_len <= _PAGE:
            data = self._read_forced(addr, max_len)
            nul = data.find(b"\0")
            return data if nul < 0 else data[:nul]
        out = b""
        while len(out) < max_len:
            chunk = min(_PAGE - (addr % _PAGE), max_len - len(out))
            data = self.read(addr, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                return out + data[:nul]
            out += data
            addr += chunk
        return out


class ProgramMemory:
    """The ``arch.Memory`` protocol with the program's own access rights,
    for the instructions the tracer emulates.  /proc/PID/mem writes through
    a guard page or read-only data; a push emulated that way would hide the
    fault the program's own push takes there.  process_vm_readv/writev
    honour page protections, so the emulation fails instead and the tracer
    runs the real instruction, which faults where it should.  An emulation
    moves a word or two, so one small buffer and its iovecs are kept, and
    their lengths set only when the size changes (a ctypes field write
    costs about 300 instructions, and one emulation's accesses share a
    size).  ``pid`` may be any thread's id: the calls reach its address
    space."""

    __slots__ = ("pid", "_buf", "_local", "_remote", "_local_ref", "_remote_ref", "_size")

    def __init__(self, pid: int):
        self.pid = pid
        self._buf = ctypes.create_string_buffer(_EMULATED)
        self._local = IoVec(ctypes.addressof(self._buf), 0)
        self._remote = IoVec(0, 0)
        self._local_ref = ctypes.byref(self._local)
        self._remote_ref = ctypes.byref(self._remote)
        self._size = 0

    def read(self, addr: int, size: int) -> bytes:
        if size > _EMULATED:
            data = vm_read(self.pid, addr, size)
        else:
            if size != self._size:
                self._local.iov_len = self._remote.iov_len = self._size = size
            self._remote.iov_base = addr
            got = vm_readv_small(self.pid, self._local_ref, 1, self._remote_ref, 1, 0)
            data = self._buf.raw[:got] if got > 0 else b""
        if len(data) < size:
            raise OSError(errno.EFAULT, f"cannot read {size} bytes at {addr:#x} in pid {self.pid}")
        return data

    def write(self, addr: int, data: bytes) -> None:
        size = len(data)
        if size > _EMULATED:
            done = vm_write(self.pid, addr, data)
        else:
            self._buf.raw = data
            if size != self._size:
                self._local.iov_len = self._remote.iov_len = self._size = size
            self._remote.iov_base = addr
            done = vm_writev_small(self.pid, self._local_ref, 1, self._remote_ref, 1, 0)
        if done != size:
            raise OSError(errno.EFAULT, f"cannot write {size} bytes at {addr:#x} in pid {self.pid}")


class ReadWindow:
    """Memory as the reads of one stop see it: a read fetches ``span``
    bytes from its address, and the next ones inside them come from there.
    One hit's argument reads, a backtrace's reads up the stack."""

    __slots__ = ("mem", "span", "start", "data")

    def __init__(self, mem, span: int):
        self.mem = mem
        self.span = span
        self.start = 0
        self.data = b""

    def read(self, addr: int, size: int) -> bytes:
        at = addr - self.start
        if 0 <= at and at + size <= len(self.data):
            return self.data[at:at + size]
        try:
            data = self.mem.read(addr, max(size, self.span))
        except OSError:  # the window runs into an unmapped page: it ends with addr's
            data = self.mem.read(addr, max(size, _PAGE - addr % _PAGE))
        self.start, self.data = addr, data
        return data[:size]

    def write(self, addr: int, data: bytes) -> None:
        self.data = b""
        self.mem.write(addr, data)
