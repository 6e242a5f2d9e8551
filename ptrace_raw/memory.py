"""Tracee memory: reads through process_vm_readv, writes through
/proc/PID/mem.

process_vm_readv is one syscall for any size but honours page protections;
/proc/PID/mem uses the kernel's forced access (as ptrace does), so it can
write read-only text (our int3s) and read pages process_vm_readv refuses.
The file is bound to the address space it was opened on: reopen after exec.
"""

from __future__ import annotations

import errno
import os

from .binding import vm_read, vm_write

_PAGE = 4096
_SMALL = 256


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
        it does not need."""
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
    runs the real instruction, which faults where it should."""

    __slots__ = ("pid",)

    def __init__(self, pid: int):
        self.pid = pid

    def read(self, addr: int, size: int) -> bytes:
        data = vm_read(self.pid, addr, size)
        if len(data) < size:
            raise OSError(errno.EFAULT, f"cannot read {size} bytes at {addr:#x} in pid {self.pid}")
        return data

    def write(self, addr: int, data: bytes) -> None:
        if vm_write(self.pid, addr, data) != len(data):
            raise OSError(errno.EFAULT, f"short write at {addr:#x} in pid {self.pid}")
