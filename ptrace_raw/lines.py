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

Line programs are parsed per CU, and only for a CU whose header names a
matching file; results are cached per file.
"""

from __future__ import annotations

import bisect
import os
from typing import Iterator, NamedTuple, Optional

from ptrace_raw.debuginfo import DebugFile, debug_file, die_name
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
    inlined function holding it, when DWARF names one.
    """

    address: int
    file: str
    line: int
    function: Optional[str]


class _Row(NamedTuple):
    address: int
    file: int
    line: int


class _CuLines:
    """The line program of one CU, with its file names; rows on demand."""

    def __init__(self, debug: DebugFile, cu):
        self.cu = cu
        self.program = debug.dwarf.line_program_for_CU(cu)
        self.paths = _file_paths(self.program, cu) if self.program else {}
        self._rows: Optional[list[_Row]] = None

    def rows(self) -> list[_Row]:
        """The statement rows gdb keeps, sorted by address."""
        if self._rows is None:
            self._rows = sorted(_kept_rows(self.program), key=lambda r: r.address)
        return self._rows


def _file_paths(program, cu) -> dict[int, str]:
    """File register value -> path, as the line program names files."""
    header = program.header
    version = header["version"]
    top = cu.get_top_DIE()
    comp_dir = top.attributes.get("DW_AT_comp_dir")
    comp_dir = comp_dir.value.decode(errors="replace") if comp_dir else ""
    dirs = [d.decode(errors="replace") if isinstance(d, bytes) else d
            for d in header["include_directory"]]
    if version < 5:
        dirs = [comp_dir] + dirs       # directory 0 is the CU's directory
    first = 0 if version >= 5 else 1  # file numbers are 1-based before DWARF 5
    paths = {}
    for i, entry in enumerate(header["file_entry"]):
        name = entry.name.decode(errors="replace") if isinstance(entry.name, bytes) else entry.name
        d = dirs[entry.dir_index] if entry.dir_index < len(dirs) else ""
        if d and not os.path.isabs(d) and comp_dir:
            d = os.path.join(comp_dir, d)
        paths[i + first] = os.path.normpath(os.path.join(d, name))
    return paths


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


class _LineIndex:
    """Per-file cache of CU line programs."""

    def __init__(self, debug: DebugFile):
        self.debug = debug
        self._cus: Optional[list[_CuLines]] = None

    def cus(self) -> list[_CuLines]:
        if self._cus is None:
            self._cus = [c for c in (_CuLines(self.debug, cu) for cu in self.debug.iter_cus())
                         if c.program is not None]
        return self._cus


_INDEXES: dict[str, _LineIndex] = {}


def _index(path) -> _LineIndex:
    debug = debug_file(path)
    idx = _INDEXES.get(debug.path)
    if idx is None or idx.debug is not debug:
        idx = _INDEXES[debug.path] = _LineIndex(debug)
    return idx


def line_sites(path, file: str, line: int) -> list[LineSite]:
    """Where a probe on ``file:line`` of the ELF file ``path`` goes: one site
    per code location of the line, sorted by address.

    ``file`` matches a source path by basename or by a suffix of whole path
    components.  Raises ``NoCodeAtLine`` naming the nearest lines with code
    when the line has none, and ``TracerError`` when no CU has the file.
    """
    idx = _index(path)
    candidates: list[tuple[_CuLines, _Row]] = []
    lines_with_code: set[int] = set()
    shown = None
    for cu in idx.cus():
        files = {n for n, p in cu.paths.items() if _matches(p, file)}
        if not files:
            continue
        for row in cu.rows():
            if row.file in files:
                lines_with_code.add(row.line)
                if row.line == line:
                    candidates.append((cu, row))
                    shown = shown or cu.paths[row.file]
    if not lines_with_code:
        raise TracerError(f"{os.fspath(path)} has no line information for {file}")
    if not candidates:
        ordered = sorted(lines_with_code)
        i = bisect.bisect_left(ordered, line)
        raise NoCodeAtLine(file, line, ordered[i - 1] if i else None,
                           ordered[i] if i < len(ordered) else None)
    sites: dict[tuple, LineSite] = {}
    for cu, row in candidates:
        scope, function = _scope_at(idx.debug, cu.cu, row.address)
        # A candidate no DIE covers is its own site, as in gdb.
        key = (cu.cu.cu_offset, scope) if scope is not None else ("pc", row.address)
        if key not in sites:
            sites[key] = LineSite(row.address, cu.paths[row.file], line, function)
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


def iter_source_lines(path) -> Iterator[tuple[str, list[int]]]:
    """(source file, sorted lines with code) for every file the line
    programs of ``path`` name, sorted by file."""
    by_file: dict[str, set[int]] = {}
    for cu in _index(path).cus():
        for row in cu.rows():
            by_file.setdefault(cu.paths.get(row.file, "?"), set()).add(row.line)
    for name in sorted(by_file):
        yield name, sorted(by_file[name])
