"""The DWARF of one ELF file, opened once and parsed only where asked.

``lines`` and ``params`` share this: an ``ELFFile`` and its ``DWARFInfo``
per file, cached by path and the file's size and mtime (so a rebuilt binary
is read again), and the address ranges of a DIE.  pyelftools parses CU
headers, line programs and DIEs on first use, so opening a large file costs
only the read of its debug sections.

A file with no DWARF of its own (stripped, its debug information shipped
apart as Debian's -dbgsym packages and ``objcopy --only-keep-debug`` do)
takes it from its separate debug file, found as gdb finds it:

1. by build ID: ``DIR/.build-id/xx/yyyy....debug`` for each debug file
   directory DIR (gdb's ``debug-file-directory``, /usr/lib/debug by
   default), where xxyyyy... is the NT_GNU_BUILD_ID note; the file found
   must carry the same build ID;
2. by ``.gnu_debuglink``: the file it names in the binary's directory, in
   its ``.debug/`` subdirectory, then in ``DIR/<the binary's directory>/``;
   the file's CRC32 must be the one the link records.

A candidate that fails its check is not used (its DWARF would describe
another build, and every line and argument read from it would be wrong);
``SeparateDebug.notes`` says which and why.  A separate debug file keeps
the binary's section addresses, so nothing is relocated.
"""

from __future__ import annotations

import functools
import os
import zlib
from typing import NamedTuple, Optional, Sequence, Union

from elftools.common.exceptions import ELFError
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.elffile import ELFFile

from .errors import TracerError

#: Where separate debug files are looked for when nothing else is said
#: (gdb's default debug-file-directory).
DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)


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


def list_spans(entries, cu):
    """(low, high, entry) of each entry of a range or location list, its
    offsets from the CU's base address unless it says it is absolute or a
    base-address entry before it moved the base (range and location lists
    each have a class of their own for those); other kinds of entry
    (location views) are left out."""
    top = cu.get_top_DIE()
    base = top.attributes["DW_AT_low_pc"].value if "DW_AT_low_pc" in top.attributes else 0
    for entry in entries:
        if hasattr(entry, "base_address"):
            base = entry.base_address
        elif hasattr(entry, "begin_offset"):
            if entry.is_absolute:
                yield entry.begin_offset, entry.end_offset, entry
            else:
                yield base + entry.begin_offset, base + entry.end_offset, entry


def die_name(die) -> Optional[str]:
    """A DIE's name, through abstract_origin and specification links."""
    attr = origin(die).attributes.get("DW_AT_name")
    return attr.value.decode(errors="replace") if attr else None


class DebugFile:
    """An ELF file and its DWARF (``dwarf`` is None when it has none),
    read from the file itself, or from its separate debug file when it has
    no DWARF of its own (``debug_dirs`` are where that is looked for)."""

    def __init__(self, path: str, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS):
        self.path = path
        self.debug_dirs = debug_dirs
        #: what readers derive from this DWARF (the line tables), kept
        #: here so that it goes when the file leaves the cache of open
        #: files, and with it the descriptor and memory it held
        self.derived: dict = {}
        self.elf = _elf_with_links(path)
        source, name = self.elf, path
        # strict: a file with only .eh_frame has no DWARF worth a DWARFInfo.
        if not source.has_dwarf_info(strict=True):
            found = separate_debug_file(path, debug_dirs).path
            if found is not None:
                source, name = _elf_with_links(found), found
        #: why DWARF the file has could not be read (None: read, or none)
        self.problem: Optional[str] = None
        self.dwarf: Optional[DWARFInfo] = None
        if source.has_dwarf_info(strict=True):
            try:
                try:
                    self.dwarf = source.get_dwarf_info()
                except (ELFError, OSError) as exc:
                    # Most likely the supplementary file: without it, what
                    # it holds (shared types) is unknown, the rest is read.
                    self.dwarf = source.get_dwarf_info(follow_links=False)
                    self.problem = f"the supplementary DWARF of {name} is not read ({exc})"
            except (ELFError, OSError) as exc:
                # A compression pyelftools does not know (zstd), say.
                self.problem = f"the DWARF of {name} cannot be read ({exc})"
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
        entries = self._range_lists.get_range_list_at_offset(attrs["DW_AT_ranges"].value,
                                                             cu=die.cu)
        return [(lo, hi) for lo, hi, _ in list_spans(entries, die.cu)]

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
def _open(path: str, size: int, mtime_ns: int, debug_dirs: tuple[str, ...]) -> DebugFile:
    return DebugFile(path, debug_dirs)


def _elf_with_links(path: str) -> ELFFile:
    """``path`` opened so that pyelftools can follow its DWARF into a
    supplementary file (.gnu_debugaltlink, which dwz makes for Debian's
    -dbgsym files), named absolutely or relative to the file."""
    here = os.path.dirname(path)
    return ELFFile(open(path, "rb"), lambda name: open(os.path.join(here, name), "rb"))


def debug_file(path, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> DebugFile:
    """The cached ``DebugFile`` for ``path`` (re-read if the file changed),
    its separate debug file looked for in ``debug_dirs``."""
    path = os.path.realpath(os.fspath(path))
    st = os.stat(path)
    return _open(path, st.st_size, st.st_mtime_ns, debug_dirs)


# -- skeleton units ----------------------------------------------------------------

class SplitDwarf(TracerError):
    """The DIEs of a compilation unit are in a .dwo file (-gsplit-dwarf),
    which is not read: the binary holds only a skeleton of the unit."""


def dwo_name(cu) -> Optional[str]:
    """The .dwo file holding the DIEs of a skeleton unit (DWARF 5's
    DW_AT_dwo_name, or GNU's DWARF 4 DW_AT_GNU_dwo_name), None for a full
    unit."""
    attrs = cu.get_top_DIE().attributes
    attr = attrs.get("DW_AT_dwo_name") or attrs.get("DW_AT_GNU_dwo_name")
    return attr.value.decode(errors="replace") if attr is not None else None


# -- separate debug files ------------------------------------------------------------

def debug_dirs_of(value: Union[None, str, Sequence[str]]) -> tuple[str, ...]:
    """Debug file directories as the caches key them: None is the default,
    a string is gdb's colon-separated list.  A directory that does not
    exist is refused: a mistyped one would find nothing, silently."""
    if value is None:
        return DEFAULT_DEBUG_DIRS
    dirs = value.split(":") if isinstance(value, str) else list(value)
    out = []
    for d in dirs:
        d = os.fspath(d)
        if not d:
            continue
        if not os.path.isdir(d):
            raise TracerError(f"debug file directory {d} is not a directory")
        out.append(os.path.abspath(d))
    return tuple(out)


class SeparateDebug(NamedTuple):
    """Where a file's separate debug information is: ``path``, or None when
    no candidate was there and passed its check; ``notes``, one line per
    candidate refused, saying why."""

    path: Optional[str]
    notes: tuple[str, ...] = ()


def separate_debug_file(path, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> SeparateDebug:
    """The separate debug file of the ELF file ``path`` (the module
    docstring tells the order), cached while the file is unchanged."""
    path = os.path.realpath(os.fspath(path))
    st = os.stat(path)
    return _find_separate(path, st.st_size, st.st_mtime_ns, debug_dirs)


@functools.lru_cache(maxsize=64)
def _find_separate(path: str, size: int, mtime_ns: int,
                   debug_dirs: tuple[str, ...]) -> SeparateDebug:
    try:
        with open(path, "rb") as f:
            build_id, link = _links(ELFFile(f))
    except ELFError as exc:
        return SeparateDebug(None, (f"cannot read the build ID or debug link of {path}: {exc}",))
    notes = []
    if build_id:
        found = _first_matching(
            [os.path.join(d, ".build-id", build_id[:2], build_id[2:] + ".debug")
             for d in debug_dirs],
            _build_id_of, build_id,
            lambda theirs: f"is not the debug file of {path} (build ID {theirs}, not {build_id})",
            notes)
        if found is not None:
            return SeparateDebug(found, tuple(notes))
    if link is not None:
        name, crc = link
        here = os.path.dirname(path)
        places = [os.path.join(here, name), os.path.join(here, ".debug", name)]
        places += [os.path.join(d, here.lstrip("/"), name) for d in debug_dirs]
        # The link may name the file itself (.debug/NAME, or the file in
        # the debug directory): gdb does not take it for its own.
        places = [p for p in places if not (os.path.isfile(p) and os.path.samefile(p, path))]
        found = _first_matching(
            places, _crc32, crc,
            lambda theirs: (f"does not match {path} (CRC {theirs:#010x}, its "
                            f".gnu_debuglink says {crc:#010x})"),
            notes)
        if found is not None:
            return SeparateDebug(found, tuple(notes))
    return SeparateDebug(None, tuple(notes))


def _first_matching(candidates, key_of, wanted, differs, notes: list) -> Optional[str]:
    """The first existing candidate whose ``key_of(path)`` is ``wanted``;
    each other one found adds a note (``differs(its key)``, or why it could
    not be read)."""
    for candidate in candidates:
        if not os.path.isfile(candidate):
            continue
        try:
            theirs = key_of(candidate)
        except (OSError, ELFError) as exc:
            notes.append(f"{candidate} cannot be read ({getattr(exc, 'strerror', None) or exc}): "
                         "not used")
            continue
        if theirs == wanted:
            return candidate
        notes.append(f"{candidate} {differs(theirs)}: not used")
    return None


def _build_id_of(path: str) -> Optional[str]:
    with open(path, "rb") as f:
        return _links(ELFFile(f))[0]


def _links(elf: ELFFile) -> tuple[Optional[str], Optional[tuple[str, int]]]:
    """(the NT_GNU_BUILD_ID note in hex, (file name, CRC32) of
    ``.gnu_debuglink``), each None when absent, in one pass over the
    sections (pyelftools parses each header it meets, and the link is
    usually last).  A build ID's note owner must be GNU: a stapsdt note
    has the same type number."""
    build_id = link = None
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_NOTE" and build_id is None:
            build_id = next((note["n_desc"] for note in section.iter_notes()
                             if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU"),
                            None)
        elif section.name == ".gnu_debuglink" and section["sh_type"] != "SHT_NOBITS":
            link = _debuglink(section.data(), elf.little_endian)
    return build_id, link


def _debuglink(data: bytes, little_endian: bool) -> Optional[tuple[str, int]]:
    """(file name, CRC32) from ``.gnu_debuglink``'s data: the name, NUL,
    padding to 4 bytes, then the CRC in the file's byte order."""
    end = data.find(b"\0")
    at = (end + 4) & ~3
    if end <= 0 or at + 4 > len(data):
        return None
    crc = int.from_bytes(data[at:at + 4], "little" if little_endian else "big")
    return os.fsdecode(data[:end]), crc


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc
