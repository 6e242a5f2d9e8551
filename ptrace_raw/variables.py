"""The variables in scope at an address, from DWARF, and where each is there.

A probe inside a function (a source line, ``FUNC+0x10``) can name the
function's parameters and the locals of the blocks that hold its address,
as gdb's ``info args`` and ``info locals`` or SystemTap's ``$var`` do.
``scope_at`` finds them: the subprogram holding the address (see
params.py), then the lexical blocks and inlined calls in it that hold the
address, innermost last, so that an inner name hides an outer one.  Each
variable's location is the DWARF expression valid at that address: its
``DW_AT_location``, or the entry of its location list that covers the
address (-O2 code moves a variable between registers and the stack as it
runs, and has none where it is dead).

``value_of`` evaluates a location against a stopped frame, which the
caller hands in as registers and a memory reader: this module touches no
process.  A variable split into pieces, one only the caller could recover
(DW_OP_entry_value) or one computed with typed operations (DW_OP_convert),
one in a floating-point or vector register, and one larger than 8 bytes (a
struct, an array, a long double) have no value here.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, NamedTuple, Optional

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.locationlists import LocationParser

from .cfi_expr import UnsupportedExpression, parse, step
from .debuginfo import DEFAULT_DEBUG_DIRS, debug_file, die_name, list_spans
from .params import Param, function_die, param_of

#: DW_OP_reg0..31 and DW_OP_regx: the variable is in that register
_REGISTER = re.compile(r"DW_OP_reg(\d+|x)$")
_SCOPE_TAGS = ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine")
_VARIABLE_TAGS = ("DW_TAG_formal_parameter", "DW_TAG_variable")


class Variable(NamedTuple):
    """One parameter or local: its name and type (``param``), and where it
    is at the address asked about: ``expr``, a DWARF location expression,
    or ``const``, a value the compiler folded (DW_AT_const_value); neither
    when it is optimized out there."""

    param: Param
    is_param: bool
    expr: Optional[bytes] = None
    const: Optional[int] = None

    @property
    def name(self) -> str:
        return self.param.name


class Scope(NamedTuple):
    """The variables in scope at one address, outermost first, the
    function's frame base there (the expression DW_OP_fbreg counts from),
    and ``address(index)``, the link-time address at that index of the
    unit's address table (DWARF 5's DW_OP_addrx, clang's statics)."""

    variables: list[Variable]
    frame_base: Optional[bytes]
    address: Callable[[int], int]


def scope_at(path, vaddr: int,
             debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[Scope]:
    """The scope at link-time address ``vaddr`` of the ELF file ``path``;
    None when no DWARF describes a function there.  Raises ``SplitDwarf``
    as ``function_params`` does.  Kept per address with the file's DWARF:
    finding the function walks the top-level DIEs of its unit, and a probe
    asks at every hit."""
    scopes = debug_file(path, debug_dirs).derived.setdefault("scopes", {})
    if vaddr not in scopes:
        scopes[vaddr] = _scope(path, vaddr, debug_dirs)
    return scopes[vaddr]


def _scope(path, vaddr: int, debug_dirs: tuple[str, ...]) -> Optional[Scope]:
    found = function_die(path, vaddr, debug_dirs)
    if found is None:
        return None
    debug, function = found
    parser = LocationParser(debug.dwarf.location_lists())
    variables = []
    die = function
    while die is not None:
        variables += [_variable(child, vaddr, parser) for child in _declared(die)]
        die = debug.child_holding(die, vaddr, _SCOPE_TAGS)
    return Scope(variables, _expr_at(function, "DW_AT_frame_base", vaddr, parser),
                 lambda index: debug.dwarf.get_addr(function.cu, index))


def _declared(scope) -> list:
    """The variable DIEs of a scope: its own, and those of its abstract
    origin it has no copy of (an inlined call or an out-of-line copy from
    which the compiler left out a variable it optimized away: the name is
    still the callee's, and hides a caller's, as gdb has it)."""
    own = [child for child in scope.iter_children() if _is_variable(child)]
    if "DW_AT_abstract_origin" not in scope.attributes:
        return own
    copied = {child.get_DIE_from_attribute("DW_AT_abstract_origin").offset
              for child in own if "DW_AT_abstract_origin" in child.attributes}
    abstract = scope.get_DIE_from_attribute("DW_AT_abstract_origin")
    return own + [child for child in abstract.iter_children()
                  if _is_variable(child) and child.offset not in copied]


def _is_variable(die) -> bool:
    """A parameter or local a program names: not a declaration of one
    defined elsewhere, nor one the compiler made (a variable-length
    array's bound has no name)."""
    return (die.tag in _VARIABLE_TAGS and "DW_AT_declaration" not in die.attributes
            and die_name(die) is not None)


def _variable(die, vaddr: int, parser: LocationParser) -> Variable:
    param = param_of(die, die.cu["address_size"])
    is_param = die.tag == "DW_TAG_formal_parameter"
    const = _constant(die, param)
    if const is not None:
        return Variable(param, is_param, const=const)
    return Variable(param, is_param, expr=_expr_at(die, "DW_AT_location", vaddr, parser))


def _constant(die, param: Param) -> Optional[int]:
    """The value DW_AT_const_value gives: a number, or a block's bytes (a
    float's or a double's, for which the compiler writes no number); None
    without it, or for a block larger than a scalar."""
    const = die.attributes.get("DW_AT_const_value")
    value = const.value if const is not None else None
    if isinstance(value, list):
        return int.from_bytes(bytes(value), "little") if param.is_scalar and len(value) <= 8 else None
    return value if isinstance(value, int) else None


def _expr_at(die, name: str, vaddr: int, parser: LocationParser) -> Optional[bytes]:
    """The expression of ``die``'s location attribute ``name`` that holds
    at ``vaddr``: the attribute's own, or its location list's entry that
    covers ``vaddr`` (offsets from the CU's base address unless the entry
    says otherwise)."""
    attr = die.attributes.get(name)
    version = die.cu["version"]
    if attr is None or not parser.attribute_has_location(attr, version):
        return None
    try:
        found = parser.parse_from_attribute(attr, version, die)
    except (ELFError, DWARFError):
        # a list pyelftools cannot read (the view pairs of gcc's
        # -gvariable-location-views=incompat5): no location is known
        return None
    if not isinstance(found, list):
        return bytes(found.loc_expr)
    return next((bytes(entry.loc_expr) for lo, hi, entry in list_spans(found, die.cu)
                 if lo <= vaddr < hi), None)


class Frame(NamedTuple):
    """A stopped frame as a location needs it: ``regs`` by DWARF register
    number, ``read(addr, size)`` of memory (raises ``OSError``), the load
    ``bias`` of the file (DW_OP_addr is a link-time address) and ``cfa()``,
    the frame's canonical frame address from its call-frame information
    (None where there is none)."""

    regs: Mapping[int, int]
    read: Callable[[int, int], bytes]
    word_size: int
    bias: int
    cfa: Callable[[], Optional[int]]


def value_of(var: Variable, scope: Scope, frame: Frame) -> Optional[int]:
    """The variable's bytes as an unsigned integer (its ``param`` says how
    to read them); None where it has no value at this address or this
    module cannot tell it (see the module docstring)."""
    if var.const is not None:
        return var.const & ((1 << (8 * var.param.size)) - 1)
    size = var.param.size
    if var.expr is None or not var.param.is_scalar or not 0 < size <= 8:
        return None
    try:
        kind, where = _locate(var.expr, scope, frame)
        if kind in ("register", "value") and size > frame.word_size:
            return None  # a double in a pair of i386 registers, say: in pieces
        if kind == "register":
            if where not in frame.regs:
                return None
            raw = frame.regs[where]
        elif kind == "value":
            raw = where
        elif kind == "bytes":
            raw = int.from_bytes(where[:size], "little")
        else:
            raw = int.from_bytes(frame.read(where, size), "little")
    except (UnsupportedExpression, OSError):
        return None
    return raw & ((1 << (8 * size)) - 1)


def _locate(expr: bytes, scope: Scope, frame: Frame):
    """("memory", address), ("register", DWARF number), ("value", the
    value itself) or ("bytes", the value's bytes)."""
    bits = 8 * frame.word_size
    mask = (1 << bits) - 1
    stack: list[int] = []
    ops = parse(tuple(expr), frame.word_size)
    for i, (name, args) in enumerate(ops):
        register = _REGISTER.match(name)
        if register:
            if len(ops) > 1:
                raise UnsupportedExpression("a register location in pieces")
            return "register", args[0] if name == "DW_OP_regx" else int(register[1])
        if name == "DW_OP_fbreg":
            stack.append((_frame_base(scope, frame) + args[0]) & mask)
        elif name == "DW_OP_call_frame_cfa":
            cfa = frame.cfa()
            if cfa is None:
                raise UnsupportedExpression("no call-frame information at this address")
            stack.append(cfa)
        elif name == "DW_OP_addr":
            stack.append((args[0] + frame.bias) & mask)
        elif name in ("DW_OP_addrx", "DW_OP_GNU_addr_index"):
            stack.append((scope.address(args[0]) + frame.bias) & mask)
        elif name == "DW_OP_deref_size":
            # what -O2 code reads through a pointer: an int, a short
            stack.append(int.from_bytes(frame.read(stack.pop(), args[0]), "little"))
        elif name in ("DW_OP_stack_value", "DW_OP_implicit_value") and i < len(ops) - 1:
            raise UnsupportedExpression("a value in pieces")  # this one its first
        elif name == "DW_OP_stack_value":
            return "value", stack[-1]
        elif name == "DW_OP_implicit_value":
            return "bytes", bytes(args[0])  # the bytes (their count is not an argument)
        else:
            step(name, args, stack, frame.regs, lambda addr: int.from_bytes(
                frame.read(addr, frame.word_size), "little"), bits)
    if not stack:
        raise UnsupportedExpression("the location leaves an empty stack")
    return "memory", stack[-1]


def _frame_base(scope: Scope, frame: Frame) -> int:
    """What DW_OP_fbreg counts from: the frame base expression's address,
    or the content of the register it names."""
    if scope.frame_base is None:
        raise UnsupportedExpression("the function has no frame base")
    kind, where = _locate(scope.frame_base, scope, frame)
    if kind == "register":
        if where not in frame.regs:
            raise UnsupportedExpression(f"register {where} is not known")
        return frame.regs[where]
    if kind != "memory":
        raise UnsupportedExpression("a frame base that is not an address")
    return where
