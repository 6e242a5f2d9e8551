"""The ELF images a process has mapped, with their load biases: how runtime
addresses become (file, symbol+offset) and back.

Every image is a file but the vDSO, which the kernel maps with no file
behind it; it is read out of the process.  It matters to backtraces: on
i386 a signal handler returns through the vDSO's sigreturn, whose CFI is
the only description of the signal frame, and a system call waits in its
``__kernel_vsyscall``.
"""

from __future__ import annotations

import bisect
import os
from typing import Callable, NamedTuple, Optional

from .debuginfo import DEFAULT_DEBUG_DIRS
from .demangle import demangle
from .elf import ElfError, ElfImage


#: the /proc/PID/maps name of the vDSO
VDSO = "[vdso]"


class Module(NamedTuple):
    """One executable mapping of a file (or of the vDSO, whose ``path`` is
    ``[vdso]`` and ``inode`` 0): [start, end) at ``bias`` from the image's
    virtual addresses."""

    start: int
    end: int
    path: str
    inode: int
    bias: int
    image: ElfImage


class Frame(NamedTuple):
    pc: int
    module: Optional[str]
    symbol: Optional[str]
    offset: int
    file: Optional[str] = None
    line: Optional[int] = None

    def __str__(self):
        where = f"{self.symbol}+{self.offset:#x}" if self.symbol else f"{self.pc:#x}"
        mod = f" ({os.path.basename(self.module)})" if self.module else ""
        src = f" at {self.file}:{self.line}" if self.file else ""
        return f"{where}{mod}{src}"


class ModuleMap:
    """Rebuilt from /proc/PID/maps when the address space changes (exec,
    dlopen, dlclose); lookups bisect a sorted table.  Images are opened
    with ``debug_dirs``, where a stripped one's separate debug file is
    looked for."""

    def __init__(self, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS):
        self.debug_dirs = debug_dirs
        self.modules = []
        self._starts = []

    def refresh(self, maps, read: Optional[Callable[[int, int], bytes]] = None) -> None:
        """A mapping still there (same range, same inode) keeps its module
        as first read: its file may have been touched or replaced on disk
        since (a package upgrade), but the code mapped is the old one, and
        our int3s and patches are in it.  ``read(addr, size)`` reads the
        process's memory; without it the vDSO is left out."""
        kept = {(m.start, m.end, m.inode): m for m in self.modules}
        mods = []
        for m in maps:
            vdso = m.path == VDSO and read is not None
            if not m.is_exec or not (vdso or m.path.startswith("/") and m.inode):
                continue
            old = kept.get((m.start, m.end, m.inode))
            if old is not None:
                mods.append(old)
                continue
            try:
                image = (ElfImage.from_memory(m.path, read(m.start, m.end - m.start)) if vdso
                         else ElfImage.open(m.path, self.debug_dirs))
                bias = image.load_bias(m.start, m.offset, m.perms)
            except (ElfError, OSError):
                continue
            mods.append(Module(m.start, m.end, m.path, m.inode, bias, image))
        mods.sort()
        self.modules = mods
        self._starts = [m.start for m in mods]

    def copy(self) -> "ModuleMap":
        dup = ModuleMap(self.debug_dirs)
        dup.modules, dup._starts = list(self.modules), list(self._starts)
        return dup

    def find(self, addr: int) -> Optional[Module]:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.modules[i].end:
            return self.modules[i]
        return None

    def of_file(self, path: str):
        """Modules of the file ``path`` (compared by inode and device, so
        /lib and /usr/lib spellings match)."""
        try:
            st = os.stat(path)
        except OSError:
            return []
        out = []
        for mod in self.modules:
            if mod.inode == st.st_ino:
                try:
                    if os.stat(mod.path).st_dev == st.st_dev:
                        out.append(mod)
                except OSError:
                    continue
        return out

    def frame(self, pc: int, caller: bool = False) -> Frame:
        """``pc`` symbolized; a ``caller``'s pc is a return address, named
        from the call before it: after a call to a noreturn function that
        ends its caller, the return address is the next function's."""
        at = pc - caller
        mod = self.find(at)
        if mod is None:
            return Frame(pc, None, None, 0)
        found = mod.image.symbolize(at - mod.bias)
        if found is None:
            # no symbol: the offset is the file's own address, the same in
            # every process that maps the file
            return Frame(pc, mod.path, None, at - mod.bias + caller)
        sym, off = found
        name = demangle(sym.name) if sym.name.startswith("_Z") else sym.name
        return Frame(pc, mod.path, name, off + caller)
