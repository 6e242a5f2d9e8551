"""The DWARF of one ELF file, opened once and parsed only where asked.

``lines`` and ``params`` share this: an ``ELFFile`` and its ``DWARFInfo``
per file, cached by path and the file's size and mtime (so a rebuilt binary
is read again), and the address ranges of a DIE.  pyelftools parses CU
headers, line programs and DIEs on first use, so opening a large file costs
only the read of its debug sections.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.dwarf.ranges import BaseAddressEntry
from elftools.elf.elffile import ELFFile


# DIEs whose children may be functions with code (C++ namespaces, classes).
_CONTAINER_TAGS = frozenset((
    "DW_TAG_namespace", "DW_TAG_structure_type", "DW_TAG_class_type",
    "DW_TAG_union_type", "DW_TAG_module",
))


_ORIGIN_LINKS = ("DW_AT_abstract_origin", "DW_AT_specification")


def origin(die, attr: str = "DW_AT_name"):
    """The DIE that carries ``attr`` for ``die``: itself, or the DIE its
    abstract_origin / specification links lead to (a concrete copy of an
    inlined function, a C++ member defined outside its class); the last DIE
    of the chain when none has it."""
    for _ in range(8):
        if attr in die.attributes:
            return die
        link = next((a for a in _ORIGIN_LINKS if a in die.attributes), None)
        if link is None:
            return die
        die = die.get_DIE_from_attribute(link)
    return die


def die_name(die) -> Optional[str]:
    """A DIE's name, through abstract_origin and specification links."""
    attr = origin(die).attributes.get("DW_AT_name")
    return attr.value.decode(errors="replace") if attr else None


class DebugFile:
    """An ELF file and its DWARF (``dwarf`` is None when it has none)."""

    def __init__(self, path: str):
        self.path = path
        self._stream = open(path, "rb")
        self.elf = ELFFile(self._stream)
        # strict: a file with only .eh_frame has no DWARF worth a DWARFInfo.
        self.dwarf: Optional[DWARFInfo] = (
            self.elf.get_dwarf_info() if self.elf.has_dwarf_info(strict=True) else None
        )
        self._range_lists = None
        self._aranges = None

    def aranges(self):
        """The ``.debug_aranges`` table (address -> CU offset), or None."""
        if self._aranges is None:
            self._aranges = (self.dwarf.get_aranges() if self.dwarf is not None else None) or False
        return self._aranges or None

    def die_ranges(self, die) -> list[tuple[int, int]]:
        """The [low, high) address ranges a DIE covers; [] for none."""
        attrs = die.attributes
        if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
            low = attrs["DW_AT_low_pc"].value
            high = attrs["DW_AT_high_pc"]
            # DWARF 4+: a constant-class high_pc is a length.
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            return [(low, end)]
        if "DW_AT_ranges" not in attrs:
            return []
        if self._range_lists is None:
            self._range_lists = self.dwarf.range_lists()
        if self._range_lists is None:
            return []
        top = die.cu.get_top_DIE()
        base = top.attributes["DW_AT_low_pc"].value if "DW_AT_low_pc" in top.attributes else 0
        out = []
        for entry in self._range_lists.get_range_list_at_offset(
            attrs["DW_AT_ranges"].value, cu=die.cu
        ):
            if isinstance(entry, BaseAddressEntry):
                base = entry.base_address
            elif entry.is_absolute:
                out.append((entry.begin_offset, entry.end_offset))
            else:
                out.append((base + entry.begin_offset, base + entry.end_offset))
        return out

    def holds(self, die, address: int) -> bool:
        return any(lo <= address < hi for lo, hi in self.die_ranges(die))

    def child_holding(self, die, address: int, tags):
        """The first child of ``die`` with a tag in ``tags`` whose ranges
        hold ``address``, looking through namespaces and classes (which have
        no ranges of their own); None when there is none."""
        for child in die.iter_children():
            if child.tag in _CONTAINER_TAGS:
                if child.has_children and "DW_AT_declaration" not in child.attributes:
                    found = self.child_holding(child, address, tags)
                    if found is not None:
                        return found
            elif child.tag in tags and self.holds(child, address):
                return child
        return None


@functools.lru_cache(maxsize=32)
def _open(path: str, size: int, mtime_ns: int) -> DebugFile:
    return DebugFile(path)


def debug_file(path) -> DebugFile:
    """The cached ``DebugFile`` for ``path`` (re-read if the file changed)."""
    path = os.path.realpath(os.fspath(path))
    st = os.stat(path)
    return _open(path, st.st_size, st.st_mtime_ns)
