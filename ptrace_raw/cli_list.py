"""``ptrace-raw list``: what can be probed in a file or a running process.

Files only, read through ``ElfImage`` and ``lines``: listing a process reads
its /proc/PID/maps and never stops it.  Addresses are file virtual
addresses, the ones ``uprobe:BIN:0xADDR`` takes.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from typing import Iterator, List, Optional

from .cli_output import CliError
from .debuginfo import DEFAULT_DEBUG_DIRS
from .demangle import demangle
from .elf import ElfError, ElfImage
from .errors import TracerError
from .ifunc import implementation
from .lines import iter_source_lines
from .maps import mapped_files


def process_files(pid: int) -> List[str]:
    """The ELF files with executable mappings in process ``pid``, in map
    order."""
    try:
        return mapped_files(pid)
    except FileNotFoundError:
        raise CliError(f"cannot list pid {pid}: no such process") from None
    except OSError as exc:
        raise CliError(f"cannot list pid {pid}: {exc.strerror}") from None


def _ranges(lines: List[int]) -> str:
    """[3, 4, 5, 9] -> '3-5,9'."""
    out = []
    start = prev = lines[0]
    for n in lines[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev != start else str(start))
        if n is not None:
            start = prev = n
    return ",".join(out)


def describe(path: str, pattern: Optional[str], lines: bool,
             debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Iterator[str]:
    """The listing of one file; nothing when a pattern matches nothing in
    it.  ``pattern`` is a glob over function names (a C++ one's symbol or
    its demangled form), ``PROVIDER:NAME`` of markers and source paths
    (full or base name).  A C++ function shows its symbol, which is what a
    probe names, with the demangled form after it.  A stripped file's
    symbols and lines come from its separate debug file, looked for in
    ``debug_dirs``."""
    image = ElfImage.open(path, debug_dirs)

    def match(name: str) -> bool:
        return pattern is None or fnmatchcase(name, pattern)

    body = []
    width = 2 + 2 * (image.bits // 8)
    funcs = [(s, demangle(s.name)) for s in image.iter_functions()]
    funcs = [(s, shown) for s, shown in funcs if match(s.name) or match(shown)]
    if funcs:
        body.append(f"  functions ({len(funcs)}): address, size, name")
        for s, shown in funcs:
            kind = _ifunc_note(image, s) if s.kind == "ifunc" else ""
            readable = f"  ({shown})" if shown != s.name else ""
            body.append(f"    {s.value:#0{width}x} {s.size:#8x}  {s.name}{kind}{readable}")
    markers = [p for p in image.sdt_probes() if match(f"{p.provider}:{p.name}")]
    if markers:
        body.append(f"  usdt markers ({len(markers)}): address, provider:name, arguments")
        for p in markers:
            body.append(f"    {p.pc:#0{width}x} {p.provider}:{p.name}  {p.args or '(none)'}")
    if lines:
        try:
            files = list(iter_source_lines(
                path, debug_dirs=debug_dirs,
                keep=None if pattern is None else
                lambda name: match(name) or match(os.path.basename(name))))
        except TracerError:
            files = []
        if files:
            body.append(f"  source lines ({len(files)} file{'s' if len(files) > 1 else ''}):")
            for name, nums in files:
                body.append(f"    {name}: {_ranges(nums)}")
    notes = image.separate_debug.notes
    if body or notes:
        yield f"{image.path} ({image.bits}-bit)"
        yield from (f"  note: {note}" for note in notes)
        yield from body


def list_files(paths: List[str], pattern: Optional[str], lines: bool, strict: bool,
               debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> Iterator[str]:
    """Every listing; ``strict`` (a single named file) turns an unreadable
    file into an error instead of skipping it."""
    for path in paths:
        try:
            yield from describe(path, pattern, lines, debug_dirs)
        except ElfError:
            if strict:
                raise


def _ifunc_note(image, sym) -> str:
    impl = implementation(image, sym.value)
    if impl is None:
        return "  [ifunc: the resolver]"
    return f"  [ifunc: the resolver; it selects {impl:#x} on this machine]"
