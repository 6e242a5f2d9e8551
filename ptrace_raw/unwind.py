"""Stack unwinding from DWARF call-frame information (CFI).

This module knows no process: it gets the stopped thread's registers as a
dict keyed by DWARF register number, reads memory through ``read_word`` and
maps a pc to its ELF file through ``find_module`` (or to the bytes of an
image with no file: the vDSO, where an i386 signal handler returns to the
kernel's sigreturn, whose hand-written CFI describes the signal frame).

Each image's CFI comes from ``.eh_frame`` (through the sorted table in
``.eh_frame_hdr`` when there is one, so libc's thousands of FDEs are never
all parsed) and from ``.debug_frame``, which a stripped file leaves in its
separate debug file (see ``debuginfo``).  An FDE is parsed, and its table
decoded, only when a pc falls in it; both stay cached with the image.

Where no CFI covers a pc the walk follows the frame-pointer chain
(``[fp]`` is the caller's fp, ``[fp + word]`` the return address).  The walk
ends cleanly at an undefined return address (``_start``), a zero pc, a stack
pointer that does not move up, memory it cannot read, or ``max_frames``.
"""

from __future__ import annotations

import bisect
import functools
import io
import os
import struct
from typing import Callable, Iterator, NamedTuple, Optional

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.callframe import FDE, CallFrameInfo, RegisterRule
from elftools.dwarf.structs import DWARFStructs
from elftools.elf.elffile import ELFFile

from ptrace_raw.cfi_expr import UnsupportedExpression, evaluate
from ptrace_raw.debuginfo import DEFAULT_DEBUG_DIRS, separate_debug_file


class Frame(NamedTuple):
    """One frame of a backtrace.

    ``pc`` is the frame's current pc; ``sp`` its stack pointer; ``how``
    tells how the frame was found: ``"regs"`` (the stopped thread), ``"cfi"``
    or ``"fp"``.  ``exact`` is True when ``pc`` is the instruction the frame
    was at (the stopped thread's, or one a signal interrupted) and False
    when it is a return address: that one lies after the call, maybe past
    the end of its function, so a caller's line is the one of ``pc - 1``.
    """

    pc: int
    sp: int
    how: str
    exact: bool
    #: the frame is a signal trampoline's (its CFI says so): its pc, the
    #: handler's return address, is the trampoline's first instruction
    trampoline: bool = False


class _Regs(NamedTuple):
    """DWARF numbers of the registers the walk itself needs."""

    sp: int
    fp: int
    ip: int


_X86_64 = _Regs(sp=7, fp=6, ip=16)
_I386 = _Regs(sp=4, fp=5, ip=8)


class _Row(NamedTuple):
    """The CFI that applies at one pc."""

    rules: dict           # the decoded table line: 'cfa' and register rules
    return_column: int
    signal_frame: bool


class _CfiSection:
    """FDEs of one CFI section, indexed by start address."""

    def __init__(self, cfi: CallFrameInfo, starts: list[int], offsets: list[int]):
        self.cfi = cfi
        self.starts = starts
        self.offsets = offsets

    def fde_at(self, vaddr: int) -> Optional[FDE]:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        # pyelftools parses one entry at an offset (and caches it) only
        # through this method; get_entries() would parse the whole section.
        fde = self.cfi._parse_entry_at(self.offsets[i])
        if not isinstance(fde, FDE):
            return None
        start = fde.header["initial_location"]
        return fde if start <= vaddr < start + fde.header["address_range"] else None


class ImageCfi:
    """The call-frame information of one ELF file, looked up by link-time
    address.  ``stream`` (the file, or an image's bytes) is read here and
    not kept: the CFI sections are copied out.  ``.debug_frame`` comes from
    the separate debug file of ``path`` (looked for in ``debug_dirs``) when
    the image has none of its own; an image with no file (``path`` None)
    has none to look for."""

    def __init__(self, stream, path: Optional[str] = None,
                 debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS):
        elf = ELFFile(stream)
        structs = DWARFStructs(little_endian=elf.little_endian, dwarf_format=32,
                               address_size=elf.elfclass // 8)
        self.sections: list[_CfiSection] = []
        eh = elf.get_section_by_name(".eh_frame")
        if eh is not None and eh["sh_type"] != "SHT_NOBITS":
            hdr = elf.get_section_by_name(".eh_frame_hdr")
            self.sections.append(_eh_frame(eh, hdr, structs, elf.little_endian))
        debug_frame = _debug_frame(elf, structs)
        if debug_frame is None and path is not None:
            found = separate_debug_file(path, debug_dirs).path
            if found is not None:
                with open(found, "rb") as f:
                    debug_frame = _debug_frame(ELFFile(f), structs)
        if debug_frame is not None:
            self.sections.append(debug_frame)
        self._rows: dict[int, Optional[_Row]] = {}

    def function_size(self, vaddr: int) -> int:
        """The length of the code an FDE describes from exactly ``vaddr``
        (a function's extent where no symbol gives it, as for an IFUNC's
        implementation in a stripped library), or 0."""
        for section in self.sections:
            try:
                fde = section.fde_at(vaddr)
            except (DWARFError, ELFError, struct.error, ValueError):
                continue
            if fde is not None and fde.header["initial_location"] == vaddr:
                return fde.header["address_range"]
        return 0

    def row_at(self, vaddr: int) -> Optional[_Row]:
        """The CFI row for ``vaddr``, or None when no FDE covers it; kept,
        as a backtrace asks for the same return addresses hit after hit."""
        try:
            return self._rows[vaddr]
        except KeyError:
            row = self._rows[vaddr] = self._find_row(vaddr)
            return row

    def _find_row(self, vaddr: int) -> Optional[_Row]:
        for section in self.sections:
            fde = section.fde_at(vaddr)
            if fde is None:
                continue
            table = fde.get_decoded().table
            pcs = [line["pc"] for line in table]
            i = bisect.bisect_right(pcs, vaddr) - 1
            if i < 0:
                return None
            cie = fde.cie
            augmentation = cie.header.get("augmentation") or b""
            return _Row(table[i], cie.header["return_address_register"], b"S" in augmentation)
        return None


def _debug_frame(elf: ELFFile, structs: DWARFStructs) -> Optional[_CfiSection]:
    """The indexed ``.debug_frame`` of ``elf``, or None.  Its data is
    read whole (and inflated when compressed, as debug files often are);
    one compressed in a way pyelftools cannot inflate (zstd) is left out,
    and the file's ``.eh_frame`` serves alone."""
    dbg = elf.get_section_by_name(".debug_frame")
    if dbg is None or dbg["sh_type"] == "SHT_NOBITS":
        return None
    try:
        data = dbg.data()
    except ELFError:
        return None
    cfi = CallFrameInfo(io.BytesIO(data), dbg.data_size, dbg["sh_addr"], structs)
    return _scanned(cfi)


def _scanned(cfi: CallFrameInfo) -> _CfiSection:
    """Index a CFI section by parsing every entry (no lookup table)."""
    fdes = sorted((e.header["initial_location"], e.offset)
                  for e in cfi.get_entries() if isinstance(e, FDE))
    return _CfiSection(cfi, [s for s, _ in fdes], [o for _, o in fdes])


# .eh_frame_hdr encodings: the binary-search table is (DW_EH_PE_datarel |
# DW_EH_PE_sdata4) and its count DW_EH_PE_udata4 on every Linux toolchain.
_EH_PE_UDATA4 = 0x03
_EH_PE_DATAREL_SDATA4 = 0x3B


def _eh_frame(eh, hdr, structs: DWARFStructs, little_endian: bool) -> _CfiSection:
    cfi = CallFrameInfo(io.BytesIO(eh.data()), eh.data_size, eh["sh_addr"], structs,
                        for_eh_frame=True)
    if hdr is None:
        return _scanned(cfi)
    data = hdr.data()
    if len(data) < 12 or data[0] != 1 or data[2] != _EH_PE_UDATA4 or data[3] != _EH_PE_DATAREL_SDATA4:
        return _scanned(cfi)
    # version, eh_frame_ptr_enc, fde_count_enc, table_enc, eh_frame_ptr
    # (4 bytes for the encodings in use), fde_count, then the table.
    end = "<" if little_endian else ">"
    (count,) = struct.unpack_from(end + "I", data, 8)
    pairs = struct.unpack_from(f"{end}{2 * count}i", data, 12)
    base = hdr["sh_addr"]
    eh_addr = eh["sh_addr"]
    starts = [base + loc for loc in pairs[0::2]]
    offsets = [base + fde - eh_addr for fde in pairs[1::2]]
    return _CfiSection(cfi, starts, offsets)


@functools.lru_cache(maxsize=64)
def _image(path: str, size: int, mtime_ns: int, debug_dirs: tuple[str, ...]) -> ImageCfi:
    with open(path, "rb") as f:
        return ImageCfi(f, path, debug_dirs)


@functools.lru_cache(maxsize=4)
def _image_in_memory(data: bytes) -> ImageCfi:
    return ImageCfi(io.BytesIO(data))


def image_cfi(source, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> ImageCfi:
    """The cached ``ImageCfi`` of a file's path (re-read if the file
    changed), or of the bytes of an image with no file (the vDSO)."""
    if isinstance(source, bytes):
        return _image_in_memory(source)
    path = os.fspath(source)
    st = os.stat(path)
    return _image(path, st.st_size, st.st_mtime_ns, debug_dirs)


def readable_cfi(source, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[ImageCfi]:
    """``image_cfi``, or None when the file is not one whose call-frame
    information can be read (a walk then follows frame pointers)."""
    try:
        return image_cfi(source, debug_dirs)
    except (OSError, ELFError, DWARFError):
        return None


def function_size(path, vaddr: int) -> int:
    """``ImageCfi.function_size`` of the file at ``path``; 0 when its CFI
    cannot be read."""
    try:
        return image_cfi(path).function_size(vaddr)
    except (OSError, ELFError, DWARFError):
        return 0


class _StopUnwinding(Exception):
    """The walk cannot go past this frame."""


def unwind(regs: dict, read_word: Callable[[int], int], word_size: int,
           find_module: Callable[[int], Optional[tuple[str | bytes | ImageCfi, int]]],
           max_frames: int = 64,
           debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Iterator[Frame]:
    """Yield the frames of a stopped thread, innermost first.

    ``regs`` maps DWARF register numbers to values (x86_64 when
    ``word_size`` is 8: 7 rsp, 6 rbp, 16 rip; i386 when 4: 4 esp, 5 ebp,
    8 eip); ``read_word(addr)`` returns a word or raises ``OSError``;
    ``find_module(pc)`` returns ``(path, load_bias)`` of the ELF file mapped
    there (the image's bytes for the path when it has no file, or its
    ``ImageCfi`` already found), or None.
    A caller's CFI is looked up at its return address - 1 (the call may be
    the last instruction of its function), except below a signal frame,
    where the pc is where the thread was interrupted.  ``debug_dirs`` are
    where a stripped file's ``.debug_frame`` is looked for.
    """
    roles = _X86_64 if word_size == 8 else _I386
    regs = dict(regs)
    pc, sp = regs[roles.ip], regs[roles.sp]
    how = "regs"
    exact_pc = True         # frame 0 and frames interrupted by a signal
    seen = set()
    for _ in range(max_frames):
        if pc == 0 or (pc, sp) in seen:
            return
        seen.add((pc, sp))
        row = _row_for(pc if exact_pc else pc - 1, find_module, debug_dirs)
        yield Frame(pc, sp, how, exact_pc, row is not None and row.signal_frame)
        try:
            if row is not None:
                regs, exact_pc = _step_cfi(row, regs, roles, read_word, word_size), row.signal_frame
                how = "cfi"
            else:
                regs, exact_pc = _step_fp(regs, roles, read_word, word_size), False
                how = "fp"
        except (_StopUnwinding, OSError, UnsupportedExpression):
            return
        new_pc, new_sp = regs.get(roles.ip), regs.get(roles.sp)
        # A caller's frame lies above its callee's; a signal handler may run
        # on another stack, so only the CFI of a signal frame may move down.
        if new_pc is None or new_sp is None or (new_sp <= sp and not exact_pc):
            return
        pc, sp = new_pc, new_sp


def _row_for(pc: int, find_module, debug_dirs: tuple[str, ...]) -> Optional[_Row]:
    module = find_module(pc)
    if module is None:
        return None
    source, bias = module
    try:
        cfi = source if isinstance(source, ImageCfi) else image_cfi(source, debug_dirs)
        return cfi.row_at(pc - bias)
    except (OSError, ELFError, DWARFError):
        # Not an ELF file we can read, or CFI we cannot decode: the walk
        # falls back to frame pointers.
        return None


def _step_cfi(row: _Row, regs: dict, roles: _Regs, read_word, word_size: int) -> dict:
    """The caller's registers, from the callee's and its CFI row."""
    mask = (1 << (8 * word_size)) - 1
    cfa = _cfa(row, regs, read_word, word_size)
    if cfa is None:
        raise _StopUnwinding
    # Registers without a rule keep their value (callee-saved by convention);
    # the caller's stack pointer is the CFA unless a rule says otherwise.
    caller = dict(regs)
    caller[roles.sp] = cfa
    caller.pop(row.return_column, None)
    for reg, r in row.rules.items():
        if reg in ("pc", "cfa"):
            continue
        if r.type == RegisterRule.UNDEFINED:
            caller.pop(reg, None)
        elif r.type == RegisterRule.SAME_VALUE:
            if reg in regs:
                caller[reg] = regs[reg]
        elif r.type == RegisterRule.OFFSET:
            caller[reg] = read_word((cfa + r.arg) & mask)
        elif r.type == RegisterRule.VAL_OFFSET:
            caller[reg] = (cfa + r.arg) & mask
        elif r.type == RegisterRule.REGISTER:
            if r.arg not in regs:
                raise _StopUnwinding
            caller[reg] = regs[r.arg]
        elif r.type == RegisterRule.EXPRESSION:
            caller[reg] = read_word(evaluate(r.arg, regs, read_word, word_size, (cfa,)))
        elif r.type == RegisterRule.VAL_EXPRESSION:
            caller[reg] = evaluate(r.arg, regs, read_word, word_size, (cfa,))
        else:
            raise _StopUnwinding
    # The caller resumes at the return address; undefined ends the stack.
    if row.return_column not in caller:
        raise _StopUnwinding
    caller[roles.ip] = caller[row.return_column]
    return caller


def _cfa(row: _Row, regs: dict, read_word, word_size: int) -> Optional[int]:
    """The frame's canonical frame address by its CFI row; None when the
    rule names a register the frame does not know."""
    rule = row.rules["cfa"]
    if rule.expr is not None:
        return evaluate(rule.expr, regs, read_word, word_size)
    if rule.reg in regs:
        return (regs[rule.reg] + rule.offset) & ((1 << (8 * word_size)) - 1)
    return None


def cfa_at(path, vaddr: int, regs: dict, read_word: Callable[[int], int], word_size: int,
           debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[int]:
    """The canonical frame address of a frame stopped at link-time address
    ``vaddr`` of ``path`` (what DW_OP_call_frame_cfa pushes: the caller's
    stack pointer before the call), ``regs`` by DWARF number as for
    ``unwind``; None without call-frame information there."""
    try:
        row = image_cfi(path, debug_dirs).row_at(vaddr)
        return _cfa(row, regs, read_word, word_size) if row is not None else None
    except (OSError, ELFError, DWARFError, UnsupportedExpression):
        return None


def _step_fp(regs: dict, roles: _Regs, read_word, word_size: int) -> dict:
    """The caller's registers from the frame-pointer chain."""
    fp = regs.get(roles.fp)
    if not fp:
        raise _StopUnwinding
    return {
        roles.fp: read_word(fp),
        roles.ip: read_word(fp + word_size),
        roles.sp: fp + 2 * word_size,
    }
