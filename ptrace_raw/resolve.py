"""From a probe spec to file addresses in one ELF image.

Everything here is checked before anything is patched: an unknown symbol,
an offset inside an instruction or an address outside any code is an error
naming the spec, and the process is left untouched.
"""

from __future__ import annotations

import os
import sys
from fnmatch import fnmatchcase
from typing import List, NamedTuple, Optional

from .elf import ElfError, ElfImage, SymbolNotFound, alias_rank
from .errors import ProbeError, TracerError
from .ifunc import ELSEWHERE, implementation
from .lines import line_sites


class Place(NamedTuple):
    """One probe site in file terms: ``vaddr`` in ``image``, with a label
    for messages (``func+0x4``), for a USDT marker its note, and the
    function it is in by the name the spec matched (an IFUNC by its own
    name, not its implementation's), which says where a glob hit."""

    vaddr: int
    label: str
    sdt: object = None
    function: Optional[str] = None
    #: ``vaddr`` is the resolver of an IFUNC whose choice is not known yet:
    #: the spec applies to what the resolver returns, once it has run
    resolver: bool = False


def _instruction_starts(arch, image: ElfImage, sym, upto: int = 0) -> List[int]:
    """Instruction addresses of ``sym``; one without a recorded size (an
    IFUNC's implementation in a stripped library) is decoded ``upto`` bytes
    and one instruction past them."""
    size = sym.size or upto + arch.max_insn_len
    code = image.read(sym.value, size, partial=True)
    return [insn.addr for insn in arch.decode(code, sym.value)]


def _functions(spec, image: ElfImage):
    if spec.is_glob:
        found = list(image.iter_functions(spec.func))
        if not found:
            raise ProbeError(f"probe '{spec.text}': no function of {image.path} matches '{spec.func}'")
        return found
    try:
        return image.functions_named(spec.func)
    except SymbolNotFound as exc:
        raise ProbeError(f"probe '{spec.text}': {exc}") from None


def places(spec, image: ElfImage, arch, warn=None, ifunc=None, size_of=None) -> List[Place]:
    """File virtual addresses of ``spec`` in ``image``.  IFUNCs stand for
    the implementation ``ifunc(resolver)`` gives (a file address), by
    default the one their resolver selects in this process (see ifunc.py);
    where it gives None, the resolver's place says so (``Place.resolver``)
    and the offset is not checked yet; where it gives ``ifunc.ELSEWHERE``,
    code outside the file, the probe is on the resolver itself.  ``size_of(vaddr)`` gives the size
    of an implementation no symbol sizes (from its call-frame information),
    or 0."""
    warn = warn or (lambda msg: print(f"ptrace-raw: probe '{spec.text}': {msg}", file=sys.stderr))
    notes = image.separate_debug.notes
    try:
        found = _places(spec, image, arch, warn,
                        ifunc or (lambda resolver: implementation(image, resolver)), size_of)
    except ProbeError as exc:
        # A debug file refused is often why the spec names nothing, and a
        # spec checked before tracing says nothing else.
        if notes:
            raise ProbeError(f"{exc} ({'; '.join(notes)})") from None
        raise
    for note in notes:
        warn(note)
    return found


def _places(spec, image: ElfImage, arch, warn, ifunc, size_of) -> List[Place]:
    if spec.address is not None:
        return [_checked_address(spec, image, arch)]
    if spec.provider is not None:
        return _usdt_places(spec, image)
    if spec.line is not None:
        return _line_places(spec, image, warn)
    out = []  # (alias_rank of the symbol, place)
    resolved, unresolved, elsewhere, unsized = [], [], [], []
    functions = _functions(spec, image)
    if len(functions) > 1 and not spec.is_glob:
        warn(f"{len(functions)} functions are named {spec.func} (static ones of different "
             "files): all are probed")
    for sym in functions:
        rank = alias_rank(sym)
        if sym.kind == "ifunc":
            impl = ifunc(sym.value)
            if impl is None:
                unresolved.append(sym.name)
                out.append((rank, Place(sym.value, sym.name, function=sym.name, resolver=True)))
                continue
            if impl is ELSEWHERE:
                elsewhere.append(sym.name)
            else:
                resolved.append(sym.name)
                sharing = _sharing(image, impl, sym.name)
                if sharing and not spec.is_glob:
                    warn(f"{sym.name} is the same function as {_names(sharing)} on this "
                         "machine: calls to any of them are hits")
                size = _size_at(image, impl) or (size_of(impl) if size_of else 0)
                sym = sym._replace(value=impl, size=size, kind="func")
        if spec.offset == "*":
            if not sym.size:
                if spec.is_glob:
                    unsized.append(sym.name)
                    if resolved and resolved[-1] == sym.name:
                        resolved.pop()  # said once, as skipped
                    continue
                raise ProbeError(f"probe '{spec.text}': {sym.name} has no size, cannot probe every instruction")
            out.extend((rank, Place(a, f"{sym.name}+{a - sym.value:#x}", function=sym.name))
                       for a in _instruction_starts(arch, image, sym))
            continue
        off = spec.offset or 0
        if off:
            if sym.size and off >= sym.size:
                raise ProbeError(f"probe '{spec.text}': offset {off:#x} is beyond the end of "
                                 f"{sym.name} ({sym.size:#x} bytes)")
            if sym.value + off not in _instruction_starts(arch, image, sym, off):
                raise ProbeError(f"probe '{spec.text}': offset {off:#x} is not on an instruction "
                                 f"boundary of {sym.name}")
        out.append((rank, Place(sym.value + off, f"{sym.name}+{off:#x}" if off else sym.name,
                                function=sym.name)))
    if resolved:
        warn(f"{_names(resolved)}: IFUNC, probing the implementation selected on this machine")
    if unresolved:
        warn(f"{_names(unresolved)}: IFUNC whose implementation cannot be told before its "
             "resolver runs: probed where the resolver says, once it has")
    if elsewhere:
        warn(f"{_names(elsewhere)}: IFUNC whose resolver selects code outside "
             f"{os.path.basename(image.path)} (the vDSO's, another library's), which its probes "
             "cannot reach: the probe is on the resolver, which runs once at load time")
    if unsized:
        warn(f"{_names(unsized)}: no size recorded (an IFUNC's implementation in a stripped "
             "library, say), skipped")
        if not out:
            raise ProbeError(f"probe '{spec.text}': no function it matches has a size, "
                             "cannot probe every instruction")
    # Aliases a pattern matched (printf, _IO_printf) and IFUNCs that select
    # one implementation (memcpy and memmove) share a site, which goes by
    # the name a user knows.  A resolver waited on is no alias of the
    # function it is (a static pick_scale): both places stay, the resolver's
    # last, and the function's entry is probed as its return is watched.
    best = {}
    for rank, place in out:
        key = place.vaddr, place.resolver
        if key not in best or rank < best[key][0]:
            best[key] = (rank, place)
    return sorted((place for _, place in best.values()), key=lambda place: place.resolver)


def _names(names: List[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _sharing(image: ElfImage, impl: int, name: str) -> List[str]:
    """The other IFUNCs of ``image`` that select ``impl`` here (memmove
    and memcpy are one function on most x86 machines)."""
    return sorted(s.name for s in image.iter_functions()
                  if s.kind == "ifunc" and s.name != name
                  and implementation(image, s.value) == impl)


def _size_at(image: ElfImage, vaddr: int) -> int:
    """The size of the symbol starting at ``vaddr``, or 0 (a stripped
    library names no IFUNC implementation)."""
    found = image.symbolize(vaddr)
    return found[0].size if found is not None and found[1] == 0 else 0


def _usdt_places(spec, image: ElfImage) -> List[Place]:
    found = [Place(p.pc, f"{p.provider}:{p.name}", p) for p in image.sdt_probes()
             if fnmatchcase(p.provider, spec.provider) and fnmatchcase(p.name, spec.name)]
    if not found:
        have = sorted({f"{p.provider}:{p.name}" for p in image.sdt_probes()})
        hint = f"; it has {', '.join(have[:8])}" if have else "; it has no USDT markers"
        raise ProbeError(f"probe '{spec.text}': no USDT marker {spec.provider}:{spec.name} "
                         f"in {image.path}{hint}")
    return found


def _line_places(spec, image: ElfImage, warn) -> List[Place]:
    try:
        sites = line_sites(image.path, spec.file, spec.line, image.debug_dirs)
    except TracerError as exc:
        raise ProbeError(f"probe '{spec.text}': {exc}") from None
    split = sorted({s.dwo for s in sites if s.dwo is not None})
    if split:
        warn(f"split DWARF ({_names(split)}) is not read: each address of the line is a site, "
             "so a line compiled in several pieces is hit once per piece")
    return [Place(s.address, f"{spec.file}:{spec.line}" + (f" in {s.function}" if s.function else ""),
                  function=s.function)
            for s in sites]


def _checked_address(spec, image: ElfImage, arch) -> Place:
    addr = spec.address
    if not any(lo <= addr < hi for lo, hi in image.executable_ranges()):
        raise ProbeError(f"probe '{spec.text}': {addr:#x} is not in the code of {image.path}")
    found = image.symbolize(addr)
    if found is None:
        return Place(addr, f"{addr:#x}")
    sym, off = found
    if off and addr not in _instruction_starts(arch, image, sym):
        raise ProbeError(f"probe '{spec.text}': {addr:#x} ({sym.name}+{off:#x}) is not on an "
                         "instruction boundary")
    return Place(addr, f"{sym.name}+{off:#x}" if off else sym.name, function=sym.name)


def original_code(image: ElfImage, vaddr: int, size: int) -> bytes:
    """The file's bytes at ``vaddr``: never memory, which may hold our own
    (or another tool's) int3."""
    try:
        return image.read(vaddr, size, partial=True)
    except ElfError as exc:
        raise ProbeError(str(exc)) from None
