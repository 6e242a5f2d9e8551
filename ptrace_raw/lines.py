"""Source-line probe sites from ``.debug_line`` (DWARF 2 to 5).

A probe on ``FILE:LINE`` must fire once each time the line starts executing,
as gdb's ``break FILE:LINE`` does, so it goes where gdb puts its locations:

1. Rows are read as gdb's line-table builder keeps them: no line-0 rows, no
   non-statement row that only restates a file switch at the same address,
   and no row left at the address where its file's run ends (an empty
   line).
2. Every kept ``is_stmt`` row for the file and line gives a candidate
   address, in address order, CU by CU.
3. Candidates are grouped by their innermost *scope*: the innermost
   function, inlined copy or lexical block with its own names (variables,
   labels, types) whose ranges hold the address; a block without names does
   not count, as gdb makes no block for it.  Each scope keeps its first
   candidate.  So a ``for`` line split into an init and a test, or a loop
   body spread over many rows, is one site, and each inlined copy of a line
   is a site of its own.

Unlike gdb, a site on a function's opening line stays at the function's
entry (where that line starts), rather than moving past the prologue.

Line programs are read straight from ``.debug_line``: every header once,
the rows only of a program whose header names a matching file, and DIEs
only of the CU that owns a candidate (found through ``.debug_aranges``).
All of it is cached per file.
"""

from __future__ import annotations

import bisect
import os
import struct
from typing import Callable, Iterator, NamedTuple, Optional

from elftools.dwarf.structs import DWARFStructs

from ptrace_raw.debuginfo import DEFAULT_DEBUG_DIRS, DebugFile, debug_file, die_name, dwo_name
from ptrace_raw.errors import TracerError

# Tags that open a gdb block, and the child tags that make a lexical block
# one (gdb only builds a block for a DW_TAG_lexical_block with symbols).
_FUNCTION_TAGS = ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine")
_SYMBOL_TAGS = frozenset((
    "DW_TAG_variable", "DW_TAG_label", "DW_TAG_typedef", "DW_TAG_structure_type",
    "DW_TAG_union_type", "DW_TAG_enumeration_type", "DW_TAG_class_type",
    "DW_TAG_subprogram", "DW_TAG_imported_declaration", "DW_TAG_imported_module",
))
_BLOCK_TAGS = _FUNCTION_TAGS + ("DW_TAG_lexical_block",)


class NoCodeAtLine(TracerError):
    """A source line has no code (a comment, a blank, or optimized away)."""

    def __init__(self, file: str, line: int, before: Optional[int], after: Optional[int]):
        self.file = file
        self.line = line
        self.before = before
        self.after = after
        near = [f"{file}:{n}" for n in (before, after) if n is not None]
        hint = f"; nearest lines with code: {' and '.join(near)}" if near else ""
        super().__init__(f"no code at {file}:{line}{hint}")


class LineSite(NamedTuple):
    """One place where a source line starts executing.

    ``address`` is the link-time virtual address (add the load bias for a
    PIE or a shared library); ``function`` is the innermost function or
    inlined function holding it, when DWARF names one.  ``dwo`` names the
    .dwo file of a -gsplit-dwarf unit, whose DIEs are not read: such a
    site has no scope, so it is not merged with the line's other rows in
    one (step 3 above) and a line in several pieces is several sites.
    """

    address: int
    file: str
    line: int
    function: Optional[str]
    dwo: Optional[str] = None


class _Row(NamedTuple):
    address: int
    file: int
    line: int


class _LineUnit:
    """One line program of ``.debug_line``, its file names, and (looked up
    only when needed) the CU that owns it; rows on demand."""

    def __init__(self, debug: DebugFile, offset: int, program):
        self.debug = debug
        self.offset = offset
        self.program = program
        header = program.header
        self.version = header["version"]
        self._dirs = [_text(d) for d in header["include_directory"]]
        # File numbers are 1-based before DWARF 5; directory 0 is the CU's
        # directory, named in the header only from DWARF 5 on.
        first = 0 if self.version >= 5 else 1
        self._files = {i + first: (_text(e.name), e.dir_index) for i, e in enumerate(header["file_entry"])}
        self._paths: Optional[dict[int, str]] = None
        self._cu = False
        self._rows: Optional[list[_Row]] = None

    def could_name(self, wanted: str) -> bool:
        """Whether a file of this unit may match ``wanted``, judged from
        the header alone (a relative path may still gain a directory)."""
        base = os.path.basename(wanted)
        return any(name == base or name.endswith("/" + base) for name, _ in self._files.values())

    def paths(self) -> dict[int, str]:
        """File register value -> absolute (where known) source path."""
        if self._paths is None:
            dirs = list(self._dirs)
            if self.version < 5:
                dirs.insert(0, self._comp_dir())
            root = dirs[0] if dirs else ""
            self._paths = {}
            for n, (name, d) in self._files.items():
                where = dirs[d] if d < len(dirs) else ""
                # Directory 0 is the root itself (the compilation
                # directory): only the others are relative to it.
                if d and where and not os.path.isabs(where) and root:
                    where = os.path.join(root, where)
                self._paths[n] = os.path.normpath(os.path.join(where, name))
        return self._paths

    def cu(self):
        """The CU whose DW_AT_stmt_list names this unit, or None."""
        if self._cu is False:
            self._cu = self._find_cu()
        return self._cu

    def rows(self) -> list[_Row]:
        """The statement rows gdb keeps, sorted by address."""
        if self._rows is None:
            self._rows = sorted(_kept_rows(self.program), key=lambda r: r.address)
        return self._rows

    def _comp_dir(self) -> str:
        cu = self.cu()
        attr = cu.get_top_DIE().attributes.get("DW_AT_comp_dir") if cu is not None else None
        return _text(attr.value) if attr else ""

    def _find_cu(self):
        dwarf = self.debug.dwarf
        aranges = self.debug.aranges()
        rows = self.rows()
        if aranges is not None and rows:
            offset = aranges.cu_offset_at_addr(rows[0].address)
            if offset is not None:
                cu = dwarf.get_CU_at(offset)
                if _stmt_list(cu) == self.offset:
                    return cu
        return next((cu for cu in dwarf.iter_CUs() if _stmt_list(cu) == self.offset), None)


def _stmt_list(cu) -> Optional[int]:
    attr = cu.get_top_DIE().attributes.get("DW_AT_stmt_list")
    return attr.value if attr else None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _line_units(debug: DebugFile) -> list[_LineUnit]:
    """Every line program of ``.debug_line``, headers parsed, rows not."""
    dwarf = debug.dwarf
    section = dwarf.debug_line_sec if dwarf is not None else None
    if section is None:
        return []
    units, offset = [], 0
    while offset + 6 <= section.size:
        unit, offset = _line_unit_at(debug, offset)
        units.append(unit)
    return units


def _line_unit_at(debug: DebugFile, offset: int) -> tuple[_LineUnit, int]:
    """The line program at ``offset`` of ``.debug_line``, header parsed,
    and the offset of the next one."""
    dwarf = debug.dwarf
    order = "<" if debug.elf.little_endian else ">"
    stream = dwarf.debug_line_sec.stream
    stream.seek(offset)
    (length,) = struct.unpack(order + "I", stream.read(4))
    dwarf_format = 64 if length == 0xFFFFFFFF else 32
    if dwarf_format == 64:
        (length,) = struct.unpack(order + "Q", stream.read(8))
    (version,) = struct.unpack(order + "H", stream.read(2))
    structs = DWARFStructs(little_endian=debug.elf.little_endian, dwarf_format=dwarf_format,
                           address_size=debug.elf.elfclass // 8, dwarf_version=version)
    unit = _LineUnit(debug, offset, dwarf._parse_line_program_at_offset(offset, structs))
    return unit, offset + length + (12 if dwarf_format == 64 else 4)


def _kept_rows(program) -> Iterator[_Row]:
    """Rows as gdb's DWARF reader records them (see the module docstring)."""
    kept: list[tuple[_Row, bool]] = []

    def end_run(file: int, address: int) -> None:
        # gdb closes a file's run with a line-0 marker, which drops that
        # file's last rows at the marker's address.
        i = len(kept)
        while i and kept[i - 1][0].address == address:
            i -= 1
            if kept[i][0].file == file:
                del kept[i]

    last_file = last_line = last_address = None
    discriminated = False
    for entry in program.get_entries():
        st = entry.state
        if st is None:
            continue
        if st.end_sequence:
            if last_file is not None:
                end_run(last_file, st.address)
            yield from (row for row, is_stmt in kept if is_stmt)
            kept.clear()
            last_file = last_line = last_address = None
            discriminated = False
            continue
        file_changed = last_file is not None and st.file != last_file
        restated = file_changed and not st.is_stmt and st.address == last_address
        last_address = st.address
        if restated or st.line == 0:
            continue
        if file_changed:
            end_run(last_file, st.address)
        if file_changed or st.line != last_line:
            discriminated = st.discriminator != 0
            kept.append((_Row(st.address, st.file, st.line), bool(st.is_stmt)))
        else:
            # gdb keeps a repeated row of one line unless the line has
            # discriminators (several basic blocks on one line).
            discriminated |= st.discriminator != 0
            if not discriminated:
                kept.append((_Row(st.address, st.file, st.line), bool(st.is_stmt)))
        last_file, last_line = st.file, st.line


def _matches(path: str, wanted: str) -> bool:
    """``wanted`` is the whole path, its basename, or a suffix of whole
    path components."""
    wanted = os.path.normpath(wanted)
    return path == wanted or path.endswith("/" + wanted.lstrip("/"))


def _units(path, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> list[_LineUnit]:
    debug = debug_file(path, debug_dirs)
    units = debug.derived.get("line units")
    if units is None:
        units = debug.derived["line units"] = _line_units(debug)
    return units


def _unit_at(debug: DebugFile, offset: int) -> Optional[_LineUnit]:
    """The line program at ``offset``, from the file's units when they
    are parsed already, else alone: a backtrace through libc names a few
    of its thousands of units, and parsing every header took a second."""
    units = debug.derived.get("line units")
    if units is not None:
        return next((u for u in units if u.offset == offset), None)
    alone = debug.derived.setdefault("line units alone", {})
    if offset not in alone:
        alone[offset] = _line_unit_at(debug, offset)[0]
    return alone[offset]


def line_sites(path, file: str, line: int,
               debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> list[LineSite]:
    """Where a probe on ``file:line`` of the ELF file ``path`` goes: one site
    per code location of the line, sorted by address.

    ``file`` matches a source path by basename or by a suffix of whole path
    components.  Raises ``NoCodeAtLine`` naming the nearest lines with code
    when the line has none, and ``TracerError`` when no CU has the file.
    A stripped file's lines come from its separate debug file, looked for
    in ``debug_dirs``.
    """
    candidates: list[tuple[_LineUnit, _Row]] = []
    lines_with_code: set[int] = set()
    for unit in _units(path, debug_dirs):
        if not unit.could_name(file):
            continue
        files = {n for n, p in unit.paths().items() if _matches(p, file)}
        for row in unit.rows() if files else ():
            if row.file in files:
                lines_with_code.add(row.line)
                if row.line == line:
                    candidates.append((unit, row))
    if not lines_with_code:
        problem = debug_file(path, debug_dirs).problem
        raise TracerError(f"{os.fspath(path)} has no line information for {file}"
                          + (f" ({problem})" if problem else ""))
    if not candidates:
        ordered = sorted(lines_with_code)
        i = bisect.bisect_left(ordered, line)
        raise NoCodeAtLine(file, line, ordered[i - 1] if i else None,
                           ordered[i] if i < len(ordered) else None)
    sites: dict[tuple, LineSite] = {}
    for unit, row in candidates:
        cu = unit.cu()
        scope, function = _scope_at(unit.debug, cu, row.address) if cu is not None else (None, None)
        # A candidate no DIE covers is its own site, as in gdb.
        key = (unit.offset, scope) if scope is not None else ("pc", row.address)
        if key not in sites:
            sites[key] = LineSite(row.address, unit.paths()[row.file], line, function,
                                  dwo_name(cu) if cu is not None else None)
    return sorted(set(sites.values()))


def _scope_at(debug: DebugFile, cu, address: int) -> tuple[Optional[int], Optional[str]]:
    """(offset of the innermost block DIE holding ``address``, name of the
    innermost function or inlined function holding it)."""
    scope = function = None
    die = debug.child_holding(cu.get_top_DIE(), address, _FUNCTION_TAGS)
    while die is not None:
        if die.tag in _FUNCTION_TAGS:
            scope, function = die.offset, die_name(die)
        elif any(c.tag in _SYMBOL_TAGS for c in die.iter_children()):
            scope = die.offset
        die = debug.child_holding(die, address, _BLOCK_TAGS)
    return scope, function


def iter_source_lines(path, file: Optional[str] = None,
                      debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS,
                      keep: Optional[Callable[[str], bool]] = None
                      ) -> Iterator[tuple[str, list[int]]]:
    """(source file, sorted lines with code) for the files the line
    programs of ``path`` name, sorted by file; only files matching ``file``
    (as in ``line_sites``) when it is given, and only those ``keep(path)``
    accepts.  Both spare the rows of programs that name no such file:
    decoding rows is most of the cost (2,063 programs in libc's debug
    file), and a DWARF 5 header names every file in full."""
    by_file: dict[str, set[int]] = {}
    for unit in _units(path, debug_dirs):
        if file is not None and not unit.could_name(file):
            continue
        if keep is not None and unit.version >= 5 and not any(map(keep, unit.paths().values())):
            continue
        paths = unit.paths()
        for row in unit.rows():
            name = paths.get(row.file, "?")
            if (file is None or _matches(name, file)) and (keep is None or keep(name)):
                by_file.setdefault(name, set()).add(row.line)
    for name in sorted(by_file):
        yield name, sorted(by_file[name])


def source_line(path, vaddr: int,
                debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Optional[tuple[str, int]]:
    """(source path, line) of the code at link-time address ``vaddr``, from
    the statement row at or before it; None without line information.  The
    CU is found through ``.debug_aranges``, so one lookup decodes one line
    program, not the file's."""
    debug = debug_file(path, debug_dirs)
    aranges = debug.aranges()
    if aranges is None:
        return None
    cu_offset = aranges.cu_offset_at_addr(vaddr)
    if cu_offset is None:
        return None
    stmt = _stmt_list(debug.dwarf.get_CU_at(cu_offset))
    if stmt is None:
        return None
    unit = _unit_at(debug, stmt)
    if unit is None:
        return None
    rows = unit.rows()
    i = bisect.bisect_right(rows, vaddr, key=lambda r: r.address) - 1
    if i < 0:
        return None
    row = rows[i]
    return unit.paths().get(row.file, "?"), row.line
