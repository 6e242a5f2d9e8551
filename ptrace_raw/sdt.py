"""SystemTap SDT markers (USDT): the ``.note.stapsdt`` notes and their
argument operands.

<sys/sdt.h> plants a ``nop`` at each marker and records, in a note, the nop's
address, the link-time address of ``.stapsdt.base``, the semaphore address
and one assembler operand per argument (``-4@-20(%rbp)``, ``8@%rax``...).
The operand is whatever the compiler chose for an ``"nor"`` constraint, so
the same C argument reads differently at -O0 and -O2; ``SdtArg`` turns the
text into a small evaluator over registers and memory.

This module knows bytes and text only; ``ElfImage.sdt_probes()`` feeds it
the note section.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, NamedTuple, Optional

from .errors import TracerError

NT_STAPSDT = 3
_NOTE_NAME = b"stapsdt"


class SdtArgError(TracerError, ValueError):
    """An SDT argument operand this module cannot parse or evaluate."""


class SdtNoteError(TracerError, ValueError):
    """A ``.note.stapsdt`` entry is truncated or malformed."""


class _BadOperand(Exception):
    """Why an operand is unreadable; ``_parse_arg`` adds the operand's text."""


class _Reg(NamedTuple):
    """A register operand as a slice of a 64-bit ``user_regs_struct`` field:
    ``%ah`` is ``rax`` shifted by 8, 8 bits wide."""

    field: str
    shift: int
    width: int


def _register_tables() -> tuple[dict[str, _Reg], dict[str, _Reg]]:
    """The names gas accepts in each mode, mapped onto x86_64 fields.

    A 32-bit tracee's registers are a 32-bit view over the same fields, so
    ``%eax`` of an i386 tracee is ``rax`` masked to 32 bits."""
    common: dict[str, _Reg] = {}
    only64: dict[str, _Reg] = {}
    for x in "abcd":
        field = f"r{x}x"
        common[f"e{x}x"] = _Reg(field, 0, 32)
        common[f"{x}x"] = _Reg(field, 0, 16)
        common[f"{x}l"] = _Reg(field, 0, 8)
        common[f"{x}h"] = _Reg(field, 8, 8)
        only64[field] = _Reg(field, 0, 64)
    for x in ("si", "di", "bp", "sp"):
        field = f"r{x}"
        common[f"e{x}"] = _Reg(field, 0, 32)
        common[x] = _Reg(field, 0, 16)
        only64[f"{x}l"] = _Reg(field, 0, 8)
        only64[field] = _Reg(field, 0, 64)
    for n in range(8, 16):
        field = f"r{n}"
        only64[field] = _Reg(field, 0, 64)
        only64[f"{field}d"] = _Reg(field, 0, 32)
        only64[f"{field}w"] = _Reg(field, 0, 16)
        only64[f"{field}b"] = _Reg(field, 0, 8)
    only64["rip"] = _Reg("rip", 0, 64)
    return {**common, **only64}, common


_REGS64, _REGS32 = _register_tables()
_SEGMENT_BASES = {"fs": "fs_base", "gs": "gs_base"}
# Relocation suffixes that can appear in an operand, by mode.  GOTOFF: the
# base register holds the GOT, so the operand is the symbol itself.  TPOFF
# (x86_64) and NTPOFF (i386): a negative offset from the thread pointer, in
# a %fs:/%gs: operand (local-exec TLS).
_RELOCS = {64: {"tpoff"}, 32: {"gotoff", "ntpoff"}}
_TLS_RELOCS = {"tpoff", "ntpoff"}

_ARG_RE = re.compile(r"^(?P<sign>-?)(?P<size>\d+)(?P<float>f?)@(?P<op>\S+)$")
_MEM_RE = re.compile(
    r"^(?:%(?P<seg>[a-z]+):)?(?P<disp>[^(]*)"
    r"(?:\((?P<base>%\w+)?(?:,(?P<index>%\w+)?(?:,(?P<scale>\d+))?)?\))?$")
_TERM_RE = re.compile(r"\s*([+-]?)\s*([^+-]+)")
_SYMBOL_RE = re.compile(r"^(?P<name>[A-Za-z_.$][\w.$]*)(?:@(?P<reloc>\w+))?$")


def _number(text: str) -> Optional[int]:
    try:
        return int(text, 0)
    except ValueError:
        return None


@dataclass(frozen=True)
class SdtArg:
    """One parsed argument: where its value lives and how wide it is.

    ``kind`` is ``'reg'``, ``'imm'`` or ``'mem'``.  An immediate or a memory
    operand is ``[segment base] + disp + [symbol] + [base] + [index*scale]``;
    a symbol stands for its runtime address, except a TLS one (``reloc``
    tpoff/ntpoff), which stands for its offset from the thread pointer.
    """

    text: str
    bits: int
    size: int
    signed: bool
    is_float: bool
    kind: str
    reg: Optional[_Reg] = None
    disp: int = 0
    symbol: Optional[str] = None
    reloc: Optional[str] = None
    segment: Optional[str] = None
    base: Optional[_Reg] = None
    index: Optional[_Reg] = None
    scale: int = 1

    def __str__(self) -> str:
        return self.text

    def address(self, get_reg: Callable[[str], int],
                resolve_symbol: Optional[Callable[[str], int]] = None) -> int:
        """The memory address a ``'mem'`` operand reads: what a handler needs
        to follow a pointer-sized argument by hand, or to report it."""
        if self.kind != "mem":
            raise SdtArgError(f"SDT argument '{self.text}' is not a memory operand")
        return self._sum(get_reg, resolve_symbol) & ((1 << self.bits) - 1)

    def value(self, get_reg: Callable[[str], int],
              read: Optional[Callable[[int, int], bytes]] = None,
              resolve_symbol: Optional[Callable[[str], int]] = None):
        """The argument's value at the probe: an int masked to ``size`` bytes
        and sign-extended when signed, or a float for ``Nf@`` operands.

        ``get_reg(field)`` returns a full 64-bit ``user_regs_struct`` field
        (``rax`` ... ``r15``, ``rip``, ``fs_base``, ``gs_base``);
        ``read(addr, size)`` tracee memory; ``resolve_symbol(name)`` a
        runtime address, or for ``name@tpoff``/``name@ntpoff`` the TLS
        offset from the thread pointer."""
        if self.kind == "reg":
            raw = _reg_value(self.reg, get_reg)
        elif self.kind == "imm":
            raw = self._sum(get_reg, resolve_symbol)
        else:
            if read is None:
                raise SdtArgError(f"SDT argument '{self.text}' reads memory: pass read()")
            addr = self.address(get_reg, resolve_symbol)
            data = read(addr, self.size)
            if len(data) != self.size:
                raise SdtArgError(f"SDT argument '{self.text}': short read at {addr:#x}")
            raw = int.from_bytes(data, "little")
        raw &= (1 << (8 * self.size)) - 1
        if self.is_float:
            return struct.unpack("<d" if self.size == 8 else "<f",
                                 raw.to_bytes(self.size, "little"))[0]
        if self.signed and raw >> (8 * self.size - 1):
            raw -= 1 << (8 * self.size)
        return raw

    def _sum(self, get_reg, resolve_symbol) -> int:
        total = self.disp
        if self.segment:
            total += get_reg(self.segment)
        if self.symbol:
            if resolve_symbol is None:
                raise SdtArgError(f"SDT argument '{self.text}' names symbol "
                                  f"'{self.symbol}': pass resolve_symbol()")
            tls = self.reloc in _TLS_RELOCS
            total += resolve_symbol(f"{self.symbol}@{self.reloc}" if tls else self.symbol)
        if self.base is not None and self.base.field != "rip" and self.reloc != "gotoff":
            total += _reg_value(self.base, get_reg)
        if self.index is not None:
            total += _reg_value(self.index, get_reg) * self.scale
        return total


def _reg_value(reg: _Reg, get_reg) -> int:
    return (get_reg(reg.field) >> reg.shift) & ((1 << reg.width) - 1)


def parse_sdt_args(text: str, bits: int = 64) -> list[SdtArg]:
    """Parse a note's argument string (space separated ``N@operand``) for a
    64- or 32-bit tracee; raises ``SdtArgError`` naming the operand it
    cannot read."""
    if bits not in (32, 64):
        raise ValueError(f"bits must be 32 or 64, not {bits}")
    return [_parse_arg(word, bits) for word in text.split()]


def _parse_arg(word: str, bits: int) -> SdtArg:
    m = _ARG_RE.match(word)
    if not m:
        raise SdtArgError(f"SDT argument '{word}': expected N@operand")
    size, is_float = int(m["size"]), bool(m["float"])
    if size not in ((4, 8) if is_float else (1, 2, 4, 8)):
        raise SdtArgError(f"SDT argument '{word}': unsupported size {size}"
                          f"{' for a float' if is_float else ''}")
    head = dict(text=word, bits=bits, size=size, signed=bool(m["sign"]), is_float=is_float)
    op = m["op"]
    regs = _REGS64 if bits == 64 else _REGS32
    try:
        if op.startswith("%") and op[1:] in regs:
            return SdtArg(kind="reg", reg=regs[op[1:]], **head)
        if op.startswith("$"):
            disp, symbol, reloc = _parse_disp(op[1:], bits)
            if reloc:
                raise _BadOperand(f"relocation @{reloc} in an immediate")
            return SdtArg(kind="imm", disp=disp, symbol=symbol, **head)
        return _parse_mem(op, regs, head)
    except _BadOperand as e:
        raise SdtArgError(f"SDT argument '{word}' ({bits}-bit): {e}") from None


def _parse_mem(op: str, regs: dict, head: dict) -> SdtArg:
    m = _MEM_RE.match(op)
    if not m or op.startswith("%") and not m["seg"]:
        raise _BadOperand(_unknown_register(op.split(":")[0], regs) if op.startswith("%")
                          else "unknown operand form")
    segment = None
    if m["seg"]:
        if m["seg"] not in _SEGMENT_BASES:
            raise _BadOperand(f"segment %{m['seg']} has no base we can read")
        segment = _SEGMENT_BASES[m["seg"]]
    disp, symbol, reloc = _parse_disp(m["disp"], head["bits"])
    base = _lookup_reg(m["base"], regs)
    index = _lookup_reg(m["index"], regs)
    scale = int(m["scale"]) if m["scale"] else 1
    if scale not in (1, 2, 4, 8):
        raise _BadOperand(f"scale {scale} is not 1, 2, 4 or 8")
    if base is None and index is None and not m["disp"]:
        raise _BadOperand("empty memory operand")
    if base is not None and base.field == "rip" and symbol is None:
        raise _BadOperand("a numeric %rip displacement is relative to an instruction "
                          "the note does not name")
    if reloc in _TLS_RELOCS and segment is None:
        raise _BadOperand(f"@{reloc} outside a segment-relative operand")
    if reloc == "gotoff" and base is None:
        raise _BadOperand("@GOTOFF without the GOT base register")
    return SdtArg(kind="mem", disp=disp, symbol=symbol, reloc=reloc, segment=segment,
                  base=base, index=index, scale=scale, **head)


def _lookup_reg(name: Optional[str], regs: dict) -> Optional[_Reg]:
    if name is None:
        return None
    reg = regs.get(name[1:])
    if reg is None:
        raise _BadOperand(_unknown_register(name, regs))
    if reg.width < 32 or reg.shift:
        raise _BadOperand(f"{name} cannot address memory")
    return reg


def _unknown_register(name: str, regs: dict) -> str:
    if regs is _REGS32 and name[1:] in _REGS64:
        return f"register {name} does not exist in 32-bit mode"
    return f"unknown register {name}"


def _parse_disp(text: str, bits: int) -> tuple[int, Optional[str], Optional[str]]:
    """``-8``, ``0x10``, ``sym``, ``8+sym``, ``sym-4``, ``sym@GOTOFF`` ->
    (number, symbol, lower-case relocation)."""
    disp, symbol, reloc = 0, None, None
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TERM_RE.match(text, pos)
        if not m or not m.group(2).strip():
            raise _BadOperand(f"cannot read displacement '{text}'")
        sign, term = m.group(1), m.group(2).strip()
        pos = m.end()
        number = _number(term)
        if number is not None:
            disp += -number if sign == "-" else number
            continue
        sm = _SYMBOL_RE.match(term)
        if not sm or symbol is not None or sign == "-":
            raise _BadOperand(f"cannot read displacement '{text}'")
        symbol = sm["name"]
        if sm["reloc"]:
            reloc = sm["reloc"].lower()
            if reloc not in _RELOCS[bits]:
                raise _BadOperand(f"relocation @{sm['reloc']} is not supported")
    return disp, symbol, reloc


@dataclass(frozen=True)
class SdtProbe:
    """One SDT marker of a file.

    ``pc`` is the file virtual address of the marker's nop, ``semaphore``
    the file virtual address of its ``unsigned short`` counter (0 without
    one); both already adjusted for a moved ``.stapsdt.base``.  ``args`` is
    the note's operand string; ``arguments`` parses it on first use, so one
    odd operand never hides a file's other probes.
    """

    provider: str
    name: str
    pc: int
    semaphore: int
    args: str
    bits: int

    @cached_property
    def arguments(self) -> tuple[SdtArg, ...]:
        return tuple(parse_sdt_args(self.args, self.bits))


def parse_stapsdt_notes(data: bytes, bits: int, base_addr: Optional[int],
                        align: int = 4, little: bool = True) -> tuple[SdtProbe, ...]:
    """The probes in the bytes of a ``.note.stapsdt`` section.

    ``base_addr`` is the ``.stapsdt.base`` section's address in this file
    (None when absent).  Each note recorded the address that section had
    when the note was assembled; if a tool (prelink) moved sections since,
    the difference moves the pc and the semaphore too, as gdb and systemtap
    do."""
    end = "<" if little else ">"
    word = 8 if bits == 64 else 4
    word_fmt = end + ("3Q" if bits == 64 else "3I")
    probes = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(end + "3I", data, pos)
        name_at = pos + 12
        desc_at = name_at + _round_up(namesz, align)
        pos = desc_at + _round_up(descsz, align)
        if desc_at + descsz > len(data):
            raise SdtNoteError(f"note at offset {name_at - 12:#x} runs past the section")
        if ntype != NT_STAPSDT or data[name_at:name_at + namesz].rstrip(b"\0") != _NOTE_NAME:
            continue
        desc = data[desc_at:desc_at + descsz]
        if len(desc) < 3 * word:
            raise SdtNoteError(f"stapsdt note at offset {name_at - 12:#x} is too short")
        pc, recorded_base, semaphore = struct.unpack_from(word_fmt, desc, 0)
        strings = desc[3 * word:].split(b"\0")
        if len(strings) < 3:
            raise SdtNoteError(f"stapsdt note at offset {name_at - 12:#x} lacks its strings")
        if base_addr is not None and recorded_base:
            delta = base_addr - recorded_base
            pc += delta
            if semaphore:
                semaphore += delta
        mask = (1 << bits) - 1
        probes.append(SdtProbe(
            provider=strings[0].decode("utf-8", "replace"),
            name=strings[1].decode("utf-8", "replace"),
            pc=pc & mask, semaphore=semaphore & mask,
            args=strings[2].decode("utf-8", "replace"), bits=bits))
    return tuple(probes)


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align
