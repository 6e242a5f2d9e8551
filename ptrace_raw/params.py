"""Named, typed function parameters from DWARF, and their formatting.

``function_params`` finds a function's DW_TAG_subprogram and lists its
DW_TAG_formal_parameter children, following ``abstract_origin`` (an -O2
out-of-line copy of an inlined function) and ``specification`` (a C++
member defined outside its class) for names and types.  Only the CU that
holds the function is parsed: it is found through ``.debug_aranges``, or
through each CU's top DIE ranges when a file has no aranges.  Addresses are
link-time addresses (subtract the load bias of a PIE or a library first).
A unit built with -gsplit-dwarf keeps its DIEs in a .dwo file, which is not
read: asking for a function there raises ``SplitDwarf``, so the caller can
say why there are no names rather than leave them out silently.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple, Optional, Union

from elftools.dwarf.enums import ENUM_DW_ATE

from ptrace_raw.debuginfo import (DEFAULT_DEBUG_DIRS, DebugFile, SplitDwarf, debug_file, dwo_name,
                                  origin)
from ptrace_raw.elf import ElfImage

# Modifiers that do not change a value's representation.
_TRANSPARENT = frozenset((
    "DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
    "DW_TAG_restrict_type", "DW_TAG_atomic_type", "DW_TAG_immutable_type",
))
_POINTERS = frozenset((
    "DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type",
    "DW_TAG_ptr_to_member_type",
))
_SIGNED = frozenset(("DW_ATE_signed", "DW_ATE_signed_char", "DW_ATE_signed_fixed"))
_CHARS = frozenset(("DW_ATE_signed_char", "DW_ATE_unsigned_char", "DW_ATE_UTF"))
_KEYWORDS = {
    "DW_TAG_structure_type": "struct ", "DW_TAG_union_type": "union ",
    "DW_TAG_enumeration_type": "enum ", "DW_TAG_class_type": "class ",
}
_STARS = {"DW_TAG_reference_type": "&", "DW_TAG_rvalue_reference_type": "&&"}
_CV = {"DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
       "DW_TAG_restrict_type": "restrict", "DW_TAG_atomic_type": "_Atomic"}


class Param(NamedTuple):
    """One formal parameter.

    ``type_name`` is the type as declared (typedef names kept);
    ``size``, ``signed``, ``is_pointer`` and ``is_float`` describe the value
    after typedefs and qualifiers; ``is_char_pointer`` marks a pointer to a
    character type, which ``format_value`` can show as a string;
    ``is_scalar`` is False for a struct, union or array passed by value.
    """

    name: str
    type_name: str
    size: int
    signed: bool
    is_pointer: bool
    is_char_pointer: bool
    is_float: bool = False
    is_scalar: bool = True
    #: a complex number: two floats, passed as floats are, but no value
    #: this module reads as one
    is_complex: bool = False

    @property
    def abi_kind(self) -> str:
        """How the calling convention places it: "int", "float", "complex"
        or "other"."""
        if self.is_complex:
            return "complex"
        if not self.is_scalar:
            return "other"
        return "float" if self.is_float else "int"


def _attr_type(die):
    return die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None


def _name(die) -> str:
    attr = die.attributes.get("DW_AT_name")
    return attr.value.decode(errors="replace") if attr else ""


def type_name(die) -> str:
    """A C-style spelling of the type ``die`` (None is ``void``)."""
    if die is None:
        return "void"
    tag = die.tag
    if tag in _POINTERS:
        inner = _attr_type(die)
        if inner is not None and inner.tag == "DW_TAG_subroutine_type":
            return f"{type_name(_attr_type(inner))} (*)()"
        star = _STARS.get(tag, "*")
        base = type_name(inner)
        return f"{base}{star}" if base.endswith(("*", "&")) else f"{base} {star}"
    if tag in _CV:
        base = type_name(_attr_type(die))
        # A qualified pointer reads "char *const"; anything else "const int".
        return f"{base}{_CV[tag]}" if base.endswith("*") else f"{_CV[tag]} {base}"
    if tag == "DW_TAG_array_type":
        return f"{type_name(_attr_type(die))} []"
    name = _name(die)
    if not name:
        return f"{_KEYWORDS.get(tag, '')}<anonymous>"
    return _KEYWORDS.get(tag, "") + name


def _strip(die):
    """Follow typedefs and qualifiers to the type that holds the value."""
    for _ in range(32):
        if die is None or die.tag not in _TRANSPARENT:
            return die
        die = _attr_type(die)
    return die


def param_of(die, address_size: int) -> Param:
    typed = origin(die, "DW_AT_type")
    declared = _attr_type(typed)
    typ = _strip(declared)
    name = _name(origin(die)) or "?"
    spelled = type_name(declared)
    if typ is None:
        return Param(name, spelled, address_size, False, False, False)
    size_attr = typ.attributes.get("DW_AT_byte_size")
    size = size_attr.value if size_attr else address_size
    if typ.tag in _POINTERS:
        target = _strip(_attr_type(typ))
        is_char = (target is not None and target.tag == "DW_TAG_base_type"
                   and _encoding(target) in _CHARS)
        return Param(name, spelled, size, False, True, is_char)
    encoding = _encoding(typ)
    if typ.tag == "DW_TAG_enumeration_type":
        encoding = _encoding(_strip(_attr_type(typ)))
    if encoding == "DW_ATE_complex_float":
        return Param(name, spelled, size, False, False, False, True, False, True)
    return Param(name, spelled, size, encoding in _SIGNED, False, False, encoding == "DW_ATE_float",
                 typ.tag in ("DW_TAG_base_type", "DW_TAG_enumeration_type"))


def _encoding(typ) -> Optional[str]:
    if typ is None or "DW_AT_encoding" not in typ.attributes:
        return None
    return _ATE.get(typ.attributes["DW_AT_encoding"].value)


_ATE = {value: name for name, value in ENUM_DW_ATE.items()}


class _Functions:
    """Per-file lookup of subprogram DIEs, with a cache of results."""

    def __init__(self, debug: DebugFile):
        self.debug = debug
        self.cache: dict = {}

    def address_of(self, name: str) -> Optional[int]:
        image = ElfImage.open(self.debug.path, self.debug.debug_dirs)
        return image.get_function(name).value if image.has_function(name) else None

    def cu_at(self, address: int):
        dwarf = self.debug.dwarf
        aranges = self.debug.aranges()
        if aranges is not None:
            offset = aranges.cu_offset_at_addr(address)
            if offset is not None:
                return dwarf.get_CU_at(offset)
        for cu in dwarf.iter_CUs():
            if self.debug.holds(cu.get_top_DIE(), address):
                return cu
        return None

    def die_at(self, address: int):
        cu = self.cu_at(address)
        if cu is None:
            return None
        dwo = dwo_name(cu)
        if dwo is not None:
            raise SplitDwarf(f"{self.debug.path} has split DWARF (-gsplit-dwarf): the "
                             f"functions of {dwo} are described there, which is not read, "
                             "so their arguments and variables have no names")
        return self.debug.child_holding(cu.get_top_DIE(), address, ("DW_TAG_subprogram",))

    def die_named(self, name: str):
        """A defining DIE for ``name`` when no symbol names it (slow path:
        walks the top level of every CU)."""
        for cu in self.debug.dwarf.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag == "DW_TAG_subprogram" and self.debug.die_ranges(die) and \
                        _name(origin(die)) == name:
                    return die
        return None


def _functions(path, debug_dirs: tuple[str, ...]) -> Optional[_Functions]:
    debug = debug_file(path, debug_dirs)
    if debug.dwarf is None:
        return None
    funcs = debug.derived.get("functions")
    if funcs is None:
        funcs = debug.derived["functions"] = _Functions(debug)
    return funcs


def function_die(path, vaddr: int, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS):
    """(DebugFile, the subprogram DIE holding link-time address ``vaddr``)
    of the ELF file ``path``, or None; ``SplitDwarf`` as below."""
    funcs = _functions(path, debug_dirs)
    die = funcs.die_at(vaddr) if funcs is not None else None
    return (funcs.debug, die) if die is not None else None


def _subprogram(path, func: Union[str, int], debug_dirs: tuple[str, ...]):
    """(the file's _Functions, the subprogram DIE of ``func`` or None), or
    None without DWARF."""
    funcs = _functions(path, debug_dirs)
    if funcs is None:
        return None
    key = ("die", func)
    if key not in funcs.cache:
        if isinstance(func, int):
            die = funcs.die_at(func)
        else:
            address = funcs.address_of(func)
            die = funcs.die_at(address) if address is not None else funcs.die_named(func)
        funcs.cache[key] = die
    return funcs, funcs.cache[key]


def function_return(path, func: Union[str, int],
                    debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[Param]:
    """What a function returns, as a Param named "return" (a struct
    returned through memory takes an argument slot, see
    ``Arch.returns_in_memory``); None for void, or when DWARF does not
    describe the function."""
    found = _subprogram(path, func, debug_dirs)
    if found is None or found[1] is None:
        return None
    die = found[1]
    if "DW_AT_type" not in origin(die, "DW_AT_type").attributes:
        return None
    return param_of(die, die.cu["address_size"])._replace(name="return")


def function_params(path, func: Union[str, int],
                    debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[list[Param]]:
    """The parameters of a function of the ELF file ``path``, named by
    symbol or given by a link-time address inside it; None when DWARF does
    not describe the function (the caller falls back to positional
    arguments).  A stripped file's DWARF comes from its separate debug
    file, looked for in ``debug_dirs``; ``SplitDwarf`` when the function's
    unit is a skeleton."""
    found = _subprogram(path, func, debug_dirs)
    if found is None:
        return None
    funcs, die = found
    if func in funcs.cache:
        return funcs.cache[func]
    result = None
    if die is not None:
        size = die.cu["address_size"]
        concrete = [c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"]
        if not concrete:
            # An out-of-line copy may list no parameters of its own.
            concrete = [c for c in origin(die).iter_children() if c.tag == "DW_TAG_formal_parameter"]
        # C++'s artificial ``this`` stays: it takes the first argument slot.
        result = [param_of(c, size) for c in concrete]
    funcs.cache[func] = result
    return result


def format_value(param: Param, raw: int, read_cstring: Optional[Callable[[int], bytes]] = None) -> str:
    """``raw`` (a register or stack word) shown as ``param``'s type: signed
    or unsigned decimal, pointers in hex, floats by value, and a char
    pointer as its string too when ``read_cstring(addr)`` is given (it
    returns bytes, or raises ``OSError``)."""
    bits = 8 * param.size if 0 < param.size <= 8 else 64
    value = raw & ((1 << bits) - 1)
    if param.is_pointer:
        text = f"{value:#x}"
        if param.is_char_pointer and read_cstring is not None and value:
            try:
                data = read_cstring(value)
            except OSError:
                return f"{text} <unreadable>"
            if isinstance(data, bytes):
                data = data.decode("utf-8", errors="backslashreplace")
            return f'{text} "{_escape(data)}"'
        return text
    if param.is_float and bits in (32, 64):
        (number,) = struct.unpack("<f" if bits == 32 else "<d", value.to_bytes(bits // 8, "little"))
        return repr(number)
    if param.signed and value >> (bits - 1):
        value -= 1 << bits
    return str(value)


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)
