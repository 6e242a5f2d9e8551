"""The encoding facts of one x86 instruction, read from its bytes.

capstone names instructions well but reports prefixes and opcode bytes
loosely (its ``rex`` is 0x40 for VEX forms, its ``opcode`` for a 0f 3a
instruction drops the escape), so the analysis takes the layout from its own
scan and uses capstone for operands, and each cross-checks the other.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

LEGACY_PREFIXES = frozenset(b"\xf0\xf2\xf3\x2e\x36\x3e\x26\x64\x65\x66\x67")

# opcode maps
ONE_BYTE, MAP_0F, MAP_0F38, MAP_0F3A = 1, 2, 3, 4
_VEX_MAPS = {1: MAP_0F, 2: MAP_0F38, 3: MAP_0F3A}


class Encoding(NamedTuple):
    """Where the parts of an instruction sit.

    ``kind`` is "legacy", "vex2", "vex3", "evex" or "xop"; ``op_at`` indexes
    the opcode byte itself (past any escape or VEX bytes); ``modrm`` is the
    byte after the opcode, meaningful only for opcodes that take one;
    ``vvvv`` is the VEX/EVEX extra register operand (None for legacy).
    """

    kind: str
    prefixes: bytes
    rex: int
    rex_at: int
    vex_at: int
    map: int
    op: int
    op_at: int
    modrm: Optional[int]
    vvvv: Optional[int]

    @property
    def reg(self) -> int:
        """modrm.reg: a register or the opcode extension of a group."""
        return (self.modrm >> 3) & 7 if self.modrm is not None else -1

    @property
    def mod(self) -> int:
        return self.modrm >> 6 if self.modrm is not None else -1

    @property
    def rm(self) -> int:
        return self.modrm & 7 if self.modrm is not None else -1


def scan(code: bytes, bits: int) -> Optional[Encoding]:
    """Split ``code`` into prefixes, escape/VEX bytes and opcode; None when
    the bytes end before the opcode."""
    i, n, rex, rex_at = 0, len(code), 0, -1
    while i < n:
        b = code[i]
        if b in LEGACY_PREFIXES:
            rex, rex_at = 0, -1     # a REX not right before the opcode is ignored
        elif bits == 64 and 0x40 <= b <= 0x4f:
            rex, rex_at = b, i
        else:
            break
        i += 1
    prefixes = bytes(b for b in code[:i] if b in LEGACY_PREFIXES)
    if i >= n:
        return None
    b = code[i]
    nxt = code[i + 1] if i + 1 < n else None
    vex_like = nxt is not None and (bits == 64 or nxt >= 0xc0)
    if b == 0xc5 and vex_like:
        return _vex(code, "vex2", prefixes, i, i + 2, MAP_0F, code[i + 1])
    if b == 0xc4 and vex_like:
        return _vex(code, "vex3", prefixes, i, i + 3, _VEX_MAPS.get(nxt & 0x1f, 0), _at(code, i + 2))
    if b == 0x62 and vex_like:
        return _vex(code, "evex", prefixes, i, i + 4, _VEX_MAPS.get(nxt & 0x07, 0), _at(code, i + 2))
    if b == 0x8f and nxt is not None and (nxt & 0x1f) >= 8:
        return _vex(code, "xop", prefixes, i, i + 3, 0, _at(code, i + 2))
    if b == 0x0f:
        esc = _at(code, i + 1)
        if esc in (0x38, 0x3a):
            m, at = (MAP_0F38 if esc == 0x38 else MAP_0F3A), i + 2
        else:
            m, at = MAP_0F, i + 1
    else:
        m, at = ONE_BYTE, i
    if at >= n:
        return None
    return Encoding("legacy", prefixes, rex, rex_at, -1, m, code[at], at, _at(code, at + 1), None)


def _at(code: bytes, i: int) -> Optional[int]:
    return code[i] if i < len(code) else None


def _vex(code, kind, prefixes, vex_at, op_at, vmap, vbyte):
    if op_at >= len(code) or vbyte is None:
        return None
    vvvv = (~vbyte >> 3) & 0xf
    return Encoding(kind, prefixes, 0, -1, vex_at, vmap, code[op_at], op_at, _at(code, op_at + 1), vvvv)
