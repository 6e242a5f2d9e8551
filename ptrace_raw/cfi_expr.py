"""The DWARF expressions call-frame information uses, evaluated.

CFI carries expressions where a register+offset rule cannot say it: the
x86_64 PLT's CFA (which depends on how far into the PLT entry the pc is),
gcc's i386 ``main`` after it realigns the stack (CFA loaded from the frame),
and glibc's signal trampolines (registers saved in a ``ucontext``).  They use
a handful of stack-machine operations; anything else raises
``UnsupportedExpression`` and the unwinder gives up on that frame.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.structs import DWARFStructs


class UnsupportedExpression(ValueError):
    """An operation outside the set CFI needs, or a register we lack."""


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


_BINARY: dict[str, Callable[[int, int, int], int]] = {
    # (a, b, bits) -> result, where b was the top of the stack.
    "DW_OP_plus": lambda a, b, n: a + b,
    "DW_OP_minus": lambda a, b, n: a - b,
    "DW_OP_mul": lambda a, b, n: a * b,
    "DW_OP_and": lambda a, b, n: a & b,
    "DW_OP_or": lambda a, b, n: a | b,
    "DW_OP_xor": lambda a, b, n: a ^ b,
    "DW_OP_shl": lambda a, b, n: a << b if b < n else 0,
    "DW_OP_shr": lambda a, b, n: a >> b,
    "DW_OP_shra": lambda a, b, n: _signed(a, n) >> min(b, n),
    # Relational operators compare as signed values (DWARF 5, 2.5.1.4).
    "DW_OP_ge": lambda a, b, n: int(_signed(a, n) >= _signed(b, n)),
    "DW_OP_gt": lambda a, b, n: int(_signed(a, n) > _signed(b, n)),
    "DW_OP_le": lambda a, b, n: int(_signed(a, n) <= _signed(b, n)),
    "DW_OP_lt": lambda a, b, n: int(_signed(a, n) < _signed(b, n)),
    "DW_OP_eq": lambda a, b, n: int(a == b),
    "DW_OP_ne": lambda a, b, n: int(a != b),
}

_CONSTANTS = frozenset((
    "DW_OP_const1u", "DW_OP_const1s", "DW_OP_const2u", "DW_OP_const2s",
    "DW_OP_const4u", "DW_OP_const4s", "DW_OP_const8u", "DW_OP_const8s",
    "DW_OP_constu", "DW_OP_consts", "DW_OP_addr",
))


@functools.lru_cache(maxsize=4096)
def parse(expr: tuple, word_size: int):
    structs = DWARFStructs(little_endian=True, dwarf_format=32, address_size=word_size)
    return tuple((op.op_name, tuple(op.args)) for op in DWARFExprParser(structs).parse_expr(expr))


def evaluate(expr, regs: Mapping[int, int], read_word: Callable[[int], int],
             word_size: int, push: tuple = ()) -> int:
    """The value an expression leaves on top of the stack.

    ``expr`` is the expression's bytes (or ints); ``push`` is put on the
    stack first (the CFA, for a register rule).  ``read_word`` may raise
    ``OSError``; that propagates.
    """
    bits = 8 * word_size
    stack = [v & ((1 << bits) - 1) for v in push]
    try:
        for name, args in parse(tuple(expr), word_size):
            step(name, args, stack, regs, read_word, bits)
    except IndexError:
        raise UnsupportedExpression("the expression pops an empty stack") from None
    if not stack:
        raise UnsupportedExpression("the expression leaves an empty stack")
    return stack[-1]


def step(name, args, stack, regs, read_word, bits) -> None:
    """Apply one operation to ``stack``."""
    mask = (1 << bits) - 1
    if name.startswith("DW_OP_lit"):
        stack.append(int(name[9:]))
    elif name in _CONSTANTS:
        stack.append(args[0] & mask)
    elif name.startswith("DW_OP_breg"):
        reg, offset = (args[0], args[1]) if name == "DW_OP_bregx" else (int(name[10:]), args[0])
        if reg not in regs:
            raise UnsupportedExpression(f"register {reg} is not known in this frame")
        stack.append((regs[reg] + offset) & mask)
    elif name in _BINARY:
        b, a = stack.pop(), stack.pop()
        stack.append(_BINARY[name](a, b, bits) & mask)
    elif name == "DW_OP_plus_uconst":
        stack.append((stack.pop() + args[0]) & mask)
    elif name == "DW_OP_neg":
        stack.append(-stack.pop() & mask)
    elif name == "DW_OP_not":
        stack.append(~stack.pop() & mask)
    elif name == "DW_OP_deref":
        stack.append(read_word(stack.pop()) & mask)
    elif name == "DW_OP_dup":
        stack.append(stack[-1])
    elif name == "DW_OP_drop":
        stack.pop()
    elif name == "DW_OP_over":
        stack.append(stack[-2])
    elif name == "DW_OP_swap":
        stack[-1], stack[-2] = stack[-2], stack[-1]
    elif name != "DW_OP_nop":
        raise UnsupportedExpression(f"{name} is not supported in call-frame expressions")
