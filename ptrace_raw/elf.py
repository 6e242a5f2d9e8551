"""One ELF file as the tracer needs it: symbols, the bytes behind a virtual
address, the load bias of a mapping, and SDT notes.

This module never looks at a process.  An ``ElfImage`` is shared by every
tracee that maps the file (``ElfImage.open`` caches by inode and mtime), so
libc is read once per tracer.  The file is mmapped read-only: the page
cache holds the bytes, so a tracer can keep hundreds of images (each holds
one descriptor, which Python's mmap keeps).  Headers are read on open; symbols and notes on
first use.  The one image with no file, the vDSO, is built from bytes its
caller read out of a process (``ElfImage.from_memory``).

A stripped file (no .symtab) takes its symbols from the .symtab of its
separate debug file when one is found (``debuginfo.separate_debug_file``),
so a static function of a stripped program can still be named; the
addresses there are the file's own.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import io
import mmap
import os
import struct
from functools import cached_property
from typing import Iterator, NamedTuple, Optional

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from .debuginfo import DEFAULT_DEBUG_DIRS, SeparateDebug, separate_debug_file
from .errors import TracerError
from .sdt import SdtProbe, parse_stapsdt_notes

_PAGE = 0x1000
_PF_X, _PF_W = 1, 2
_DF_1_PIE = 0x08000000
_DF_TEXTREL = 0x4
#: x86_64 relocation types that write 4 bytes (PC32, 32, 32S, PLT32, GOTPCREL);
#: the others a text relocation may use write 8, and every i386 one 4
_RELOC_4_BYTES_64 = frozenset((2, 4, 9, 10, 11))
#: R_X86_64_RELATIVE and R_386_RELATIVE alike: the load bias plus an addend
_R_RELATIVE = 8
#: R_X86_64_IRELATIVE and R_386_IRELATIVE, by bitness: what a resolver returns
_R_IRELATIVE = {64: 37, 32: 42}
_SHN_UNDEF, _SHN_LORESERVE = 0, 0xFF00
_KINDS = {1: "object", 2: "func", 10: "ifunc"}      # STT_OBJECT, STT_FUNC, STT_GNU_IFUNC
_STT_TLS = 6
_STT_NOTYPE = 0
_BINDINGS = {0: "local", 1: "global", 2: "weak", 10: "unique"}
_BINDING_RANK = {"global": 0, "unique": 0, "weak": 1, "local": 2}
_VERSYM_HIDDEN = 0x8000


class ElfError(TracerError):
    """A file is not a usable ELF image, or an address is not in it."""


class SymbolNotFound(ElfError, LookupError):
    """A name matches no function of a file; the message offers close names."""


class Symbol(NamedTuple):
    """A defined symbol.  ``kind`` is 'func', 'ifunc' or 'object'; an
    'ifunc' value is the resolver, which runs once at load time, not the
    implementation callers reach.  ``binding`` is 'global', 'weak', 'local'
    or 'unique'.  ``name`` carries no ``@VERSION``."""

    name: str
    value: int
    size: int
    kind: str
    binding: str


class _Segment(NamedTuple):
    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int


class _Section(NamedTuple):
    name: str
    type: str
    addr: int
    offset: int
    size: int
    link: int
    addralign: int


class _Entry(NamedTuple):
    """A symbol with what decides between duplicates: a hidden (non-default)
    version loses to the default one of the same name."""

    symbol: Symbol
    hidden: bool

    @property
    def rank(self) -> tuple:
        return (self.hidden, *alias_rank(self.symbol))


def alias_rank(s: Symbol) -> tuple:
    """Orders names of one address, the one a user knows it by first:
    global before weak before local, then no leading underscore, then the
    shortest (printf, not _IO_printf)."""
    return (_BINDING_RANK[s.binding], s.name.startswith("_"), len(s.name), s.name)


_cache: dict[tuple, "ElfImage"] = {}


class ElfImage:
    """A read-only view of one ELF file; build it with ``ElfImage.open``."""

    @classmethod
    def open(cls, path: str | os.PathLike,
             debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS) -> "ElfImage":
        """The image of ``path``, shared with every earlier caller that opened
        the same file content (same inode and mtime, any path to it) with
        the same debug file directories (where a stripped file's separate
        debug file is looked for)."""
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as e:
            raise ElfError(f"cannot open {os.fspath(path)}: {e.strerror}") from None
        key = (real, st.st_dev, st.st_ino, st.st_mtime_ns, debug_dirs)
        image = _cache.get(key)
        if image is None:
            image = _cache[key] = cls(real, debug_dirs)
        return image

    @classmethod
    def from_memory(cls, name: str, data: bytes) -> "ElfImage":
        """The image of an ELF object that exists only in a process's memory,
        as the vDSO does (``name`` is its name in /proc/PID/maps,
        ``[vdso]``).  Shared by every caller that passes the same bytes: the
        processes of one bitness under one kernel parse their vDSO once."""
        key = (name, data)
        image = _cache.get(key)
        if image is None:
            image = _cache[key] = cls(name, memory=data)
        return image

    def __init__(self, path: str, debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS,
                 memory: Optional[bytes] = None):
        self.path = path
        self.debug_dirs = debug_dirs
        #: the image's bytes when it has no file (``from_memory``), else None
        self.memory = memory
        if memory is None:
            try:
                with open(path, "rb") as f:
                    self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise ElfError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        else:
            self._data = memory
        if self._data[:4] != b"\x7fELF":
            raise ElfError(f"{path} is not an ELF file")
        try:
            # pyelftools reads through a stream: an mmap is one, bytes are not.
            elf = ELFFile(self._data if memory is None else io.BytesIO(memory))
            self.bits: int = elf.elfclass
            self._little = elf.little_endian
            self.entry: int = elf["e_entry"]
            self.is_dyn: bool = elf["e_type"] == "ET_DYN"
            self._segments = tuple(
                _Segment(s["p_vaddr"], s["p_memsz"], s["p_offset"], s["p_filesz"], s["p_flags"])
                for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
            self._tls = next((s.header for s in elf.iter_segments()
                              if s["p_type"] == "PT_TLS"), None)
            self._sections = tuple(
                _Section(s.name, s["sh_type"], s["sh_addr"], s["sh_offset"], s["sh_size"],
                         s["sh_link"], s["sh_addralign"])
                for s in elf.iter_sections())
            dynamic = {}
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_DYNAMIC":
                    dynamic = {t.entry.d_tag: t for t in seg.iter_tags()}
        except (_PyElfError, struct.error, ValueError) as e:
            raise ElfError(f"{path} is not a valid ELF file: {e}") from None
        self.soname: Optional[str] = (dynamic["DT_SONAME"].soname
                                      if "DT_SONAME" in dynamic else None)
        flags_1 = dynamic["DT_FLAGS_1"].entry.d_val if "DT_FLAGS_1" in dynamic else 0
        # ET_DYN alone also describes shared libraries; the linker marks a
        # position-independent executable with DF_1_PIE.
        self.is_pie: bool = self.is_dyn and bool(flags_1 & _DF_1_PIE)
        flags = dynamic["DT_FLAGS"].entry.d_val if "DT_FLAGS" in dynamic else 0
        #: the loader writes into this file's code (DT_TEXTREL: non-PIC code
        #: in a PIE or a library, common on i386)
        self.has_text_relocations: bool = "DT_TEXTREL" in dynamic or bool(flags & _DF_TEXTREL)

    def __repr__(self) -> str:
        return f"<ElfImage {self.path} {self.bits}-bit{' dyn' if self.is_dyn else ''}>"

    # -- separate debug file --------------------------------------------------

    @cached_property
    def separate_debug(self) -> SeparateDebug:
        """The file's separate debug file and the candidates refused, looked
        for only when the file lacks a .symtab or DWARF of its own (gdb
        looks only then too): a file with both needs none, and notes about
        one would only mislead."""
        names = {sec.name for sec in self._sections if sec.type != "SHT_NOBITS"}
        if self.memory is not None or (".symtab" in names
                                       and names & {".debug_info", ".zdebug_info"}):
            return SeparateDebug(None)
        return separate_debug_file(self.path, self.debug_dirs)

    # -- symbols ------------------------------------------------------------

    @cached_property
    def _symbol_tables(self) -> tuple[tuple["ElfImage", _Section], ...]:
        """(image holding it, section) of each symbol table to read: the
        file's .symtab and .dynsym, and for a file without a .symtab the
        .symtab of its separate debug file."""
        tables = [(self, sec) for sec in self._sections
                  if sec.type in ("SHT_SYMTAB", "SHT_DYNSYM")]
        if not any(sec.type == "SHT_SYMTAB" for _, sec in tables):
            found = self.separate_debug.path
            if found is not None:
                debug = ElfImage.open(found, self.debug_dirs)
                tables += [(debug, sec) for sec in debug._sections if sec.type == "SHT_SYMTAB"]
        return tuple(tables)

    @cached_property
    def _entries(self) -> tuple[_Entry, ...]:
        """Defined symbols of .symtab and .dynsym, one per (name, address,
        size, kind), sorted by address then name; of duplicates (one symbol
        in both tables, or two versions of one function) the default version
        wins.  Size is part of the identity: libc keeps old versions of
        sys_errlist at one address, each with the length its ABI had."""
        best: dict[tuple[str, int, int, str], _Entry] = {}
        for owner, sec in self._symbol_tables:
            versym = owner._versym_for(sec) if sec.type == "SHT_DYNSYM" else None
            for entry in owner._read_symtab(sec, versym):
                key = entry.symbol[:4]
                if key not in best or entry.rank < best[key].rank:
                    best[key] = entry
        return tuple(sorted(best.values(), key=lambda e: (e.symbol.value, e.symbol.name)))

    def _versym_for(self, dynsym: _Section) -> Optional[bytes]:
        index = self._sections.index(dynsym)
        for sec in self._sections:
            if sec.type == "SHT_GNU_versym" and sec.link == index:
                return self._data[sec.offset:sec.offset + sec.size]
        return None

    def _raw_symbols(self, sec: _Section) -> Iterator[tuple[int, str, int, int, int, int, int]]:
        """(index, name, value, size, type, binding, shndx) of each entry of
        a symbol table, read with struct: pyelftools' per-symbol parsing
        costs more than the rest of an image's setup for libc."""
        end = "<" if self._little else ">"
        if self.bits == 64:
            fmt, order = end + "IBBHQQ", (0, 4, 5, 1, 3)   # name value size info shndx
        else:
            fmt, order = end + "IIIBBH", (0, 1, 2, 3, 5)
        entsize = struct.calcsize(fmt)
        strtab = self._sections[sec.link]
        strings = self._data[strtab.offset:strtab.offset + strtab.size]
        table = self._data[sec.offset:sec.offset + sec.size - sec.size % entsize]
        n_name, n_value, n_size, n_info, n_shndx = order
        for i, raw in enumerate(struct.iter_unpack(fmt, table)):
            at = raw[n_name]
            name = strings[at:strings.find(b"\0", at)].decode("utf-8", "replace")
            yield (i, name, raw[n_value], raw[n_size], raw[n_info] & 0xF, raw[n_info] >> 4,
                   raw[n_shndx])

    def _read_symtab(self, sec: _Section, versym: Optional[bytes]) -> Iterator[_Entry]:
        end = "<" if self._little else ">"
        flags = struct.unpack(f"{end}{len(versym) // 2}H", versym) if versym else ()
        for i, name, value, size, stt, stb, shndx in self._raw_symbols(sec):
            kind, binding = _KINDS.get(stt), _BINDINGS.get(stb)
            if kind is None or binding is None or shndx == _SHN_UNDEF or shndx >= _SHN_LORESERVE:
                continue
            # .symtab spells versions into the name (memcpy@GLIBC_2.2.5 is
            # hidden, memcpy@@GLIBC_2.14 the default); .dynsym keeps them in
            # .gnu.version.
            base, at, version = name.partition("@")
            if at:
                hidden = not version.startswith("@")
            else:
                hidden = i < len(flags) and bool(flags[i] & _VERSYM_HIDDEN)
            if base:
                yield _Entry(Symbol(base, value, size, kind, binding), hidden)

    @cached_property
    def _functions(self) -> dict[str, Symbol]:
        """Name -> the function a user means by it: the default version, then
        the strongest binding, when several share a name."""
        chosen: dict[str, _Entry] = {}
        for entry in self._entries:
            s = entry.symbol
            if s.kind != "object" and (s.name not in chosen
                                       or entry.rank < chosen[s.name].rank):
                chosen[s.name] = entry
        return {name: e.symbol for name, e in chosen.items()}

    def iter_symbols(self) -> Iterator[Symbol]:
        """Every defined function, ifunc and object, sorted by address."""
        return (e.symbol for e in self._entries)

    def iter_functions(self, pattern: Optional[str] = None) -> Iterator[Symbol]:
        """Functions and ifuncs whose name matches the fnmatch ``pattern``,
        sorted by address; aliases at one address each appear, by name."""
        for entry in self._entries:
            s = entry.symbol
            if s.kind != "object" and (pattern is None or fnmatch.fnmatchcase(s.name, pattern)):
                yield s

    def functions_named(self, name: str) -> list[Symbol]:
        """Every function a probe on ``name`` means: the one ``get_function``
        gives, and the local (static) ones of that name elsewhere, one per
        file they came from (gdb's "2 locations")."""
        chosen = self.get_function(name)
        out, seen = [chosen], {chosen.value}
        for entry in self._entries:
            s = entry.symbol
            if s.name == name and s.binding == "local" and s.kind != "object" \
                    and s.value not in seen:
                seen.add(s.value)
                out.append(s)
        return out

    def has_function(self, name: str) -> bool:
        return name in self._functions

    def get_function(self, name: str) -> Symbol:
        """The function called ``name``; ``SymbolNotFound`` names the file
        and the closest names otherwise."""
        try:
            return self._functions[name]
        except KeyError:
            pass
        if any(e.symbol.name == name for e in self._entries):
            raise SymbolNotFound(f"'{name}' in {self.path} is a data object, not a function")
        close = difflib.get_close_matches(name, self._functions, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if not self._functions:
            hint = " (the file has no function symbols: fully stripped?)"
        raise SymbolNotFound(f"no function '{name}' in {self.path}{hint}")

    def get_symbol(self, name: str) -> Symbol:
        """The function or object called ``name`` (an SDT argument may name
        a variable)."""
        if name in self._functions:
            return self._functions[name]
        objects = [e for e in self._entries if e.symbol.name == name]
        if not objects:
            raise SymbolNotFound(f"no symbol '{name}' in {self.path}")
        return min(objects, key=lambda e: e.rank).symbol

    @cached_property
    def _entry_points(self) -> tuple[list[int], list[str]]:
        """(addresses, names), sorted, of the places other code may call or
        jump to by name: functions, ifuncs, and untyped labels (a global
        label in hand-written asm has no .type)."""
        points = [(e.symbol.value, e.symbol.name) for e in self._entries
                  if e.symbol.kind != "object"]
        for owner, sec in self._symbol_tables:
            points += [(value, name) for _, name, value, _, stt, _, shndx
                       in owner._raw_symbols(sec)
                       if stt == _STT_NOTYPE and name and _SHN_UNDEF < shndx < _SHN_LORESERVE]
        points.sort()
        return [v for v, _ in points], [n for _, n in points]

    def entry_points_in(self, lo: int, hi: int) -> list[str]:
        """Names of the functions and labels starting in [lo, hi)."""
        starts, names = self._entry_points
        return names[bisect.bisect_left(starts, lo):bisect.bisect_left(starts, hi)]

    @cached_property
    def _address_table(self) -> tuple[list[int], list[int], list[Symbol]]:
        return _disjoint_ranges(self._entries)

    def functions_in(self, lo: int, hi: int) -> list[Symbol]:
        """The sized functions with code in [lo, hi), one per address, by
        the name ``symbolize`` gives."""
        starts, ends, owners = self._address_table
        out = {}
        for owner in owners[max(bisect.bisect_right(starts, lo) - 1, 0):
                            bisect.bisect_left(starts, hi)]:
            if owner.size and owner.kind != "object":
                out.setdefault(owner.value, owner)
        return list(out.values())

    def symbolize(self, vaddr: int) -> Optional[tuple[Symbol, int]]:
        """(symbol, offset into it) for a file virtual address, or None
        outside every symbol; called for every backtrace frame."""
        starts, ends, owners = self._address_table
        i = bisect.bisect_right(starts, vaddr) - 1
        if i < 0 or vaddr >= ends[i]:
            return None
        owner = owners[i]
        return owner, vaddr - owner.value

    def tls_offset(self, name: str) -> int:
        """Offset of a TLS variable from the thread pointer, for variables of
        the executable (x86 local-exec: its TLS block ends at the thread
        pointer); SDT operands like ``%fs:var@tpoff`` need it."""
        if self._tls is None:
            raise ElfError(f"{self.path} has no TLS segment")
        sym = self._tls_symbols.get(name)
        if sym is None:
            raise SymbolNotFound(f"no TLS variable '{name}' in {self.path}")
        align = max(self._tls["p_align"], 1)
        block = (self._tls["p_memsz"] + align - 1) // align * align
        return sym - block

    @cached_property
    def _tls_symbols(self) -> dict[str, int]:
        return {name.partition("@")[0]: value
                for owner, sec in self._symbol_tables
                for _, name, value, _, stt, _, shndx in owner._raw_symbols(sec)
                if stt == _STT_TLS and shndx != _SHN_UNDEF}

    # -- addresses ----------------------------------------------------------

    def _segment_at(self, vaddr: int) -> Optional[_Segment]:
        for seg in self._segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.memsz:
                return seg
        return None

    def read(self, vaddr: int, size: int, partial: bool = False) -> bytes:
        """The bytes a fresh mapping holds at file virtual address ``vaddr``
        (zeros past the file part of a segment): original instructions
        without touching the tracee.  ``partial`` returns what the segment
        has instead of failing at its end (an instruction decoder asking
        for 15 bytes near the end of .text)."""
        seg = self._segment_at(vaddr)
        if seg is None:
            raise ElfError(f"{vaddr:#x} is not in a loadable segment of {self.path}")
        stop = vaddr + size
        if stop > seg.vaddr + seg.memsz:
            if not partial:
                raise ElfError(f"{size} bytes at {vaddr:#x} run past the end of the "
                               f"segment at {seg.vaddr:#x} in {self.path}")
            stop = seg.vaddr + seg.memsz
        rel, rel_stop = vaddr - seg.vaddr, stop - seg.vaddr
        data = self._data[seg.offset + rel:seg.offset + min(rel_stop, seg.filesz)] \
            if rel < seg.filesz else b""
        return data + bytes(rel_stop - rel - len(data))

    def vaddr_for_offset(self, file_offset: int) -> int:
        for seg in self._segments:
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                return seg.vaddr + file_offset - seg.offset
        raise ElfError(f"file offset {file_offset:#x} is not loaded from {self.path}")

    def offset_for_vaddr(self, vaddr: int) -> int:
        for seg in self._segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg.offset + vaddr - seg.vaddr
        raise ElfError(f"{vaddr:#x} has no file bytes in {self.path}")

    def load_bias(self, map_start: int, map_offset: int, perms: Optional[str] = None) -> int:
        """runtime address - file vaddr, from one /proc/PID/maps line of this
        file: its start, its offset and optionally its perms ('r-xp').

        The kernel maps each PT_LOAD from its page-aligned-down offset, so
        two segments can share a file page (.rodata's and the RELRO data's
        do), and a read-only mapping of that page is then ambiguous: RELRO
        turns the data's first pages r--, like .rodata.  The file's
        lowest-address mapping, its executable mappings and its writable ones
        are never ambiguous; prefer them."""
        def fits(seg: _Segment) -> bool:
            return seg.offset // _PAGE * _PAGE <= map_offset < seg.offset + seg.filesz

        candidates = [s for s in self._segments if fits(s)]
        if perms is not None:
            # x is exact; w only proves a writable segment (RELRO drops w).
            executable, writable = perms[2:3] == "x", perms[1:2] == "w"
            candidates = [s for s in candidates if bool(s.flags & _PF_X) == executable
                          and (s.flags & _PF_W or not writable)]
        if not candidates:
            raise ElfError(f"no segment of {self.path} is mapped from offset {map_offset:#x}"
                           f"{f' with perms {perms}' if perms else ''}")
        # Of segments sharing the page, the one whose own bytes start there.
        seg = min(candidates, key=lambda s: s.offset > map_offset)
        return map_start - (seg.vaddr - seg.offset + map_offset)

    @cached_property
    def _text_relocations(self) -> tuple[list[int], list[int]]:
        """(starts, ends) of the bytes dynamic relocations write in
        executable segments, sorted by start."""
        if not self.has_text_relocations:
            return [], []
        code = self.executable_ranges()
        spans = []
        try:
            for table in self._dynamic_relocations(ELFFile(self._data)).values():
                for rel in table.iter_relocations():
                    at = rel["r_offset"]
                    if any(lo <= at < hi for lo, hi in code):
                        size = 4 if self.bits == 32 or rel["r_info_type"] in _RELOC_4_BYTES_64 \
                            else 8
                        spans.append((at, at + size))
        except (_PyElfError, struct.error, ValueError) as e:
            raise ElfError(f"{self.path}: unreadable relocations: {e}") from None
        spans.sort()
        return [a for a, _ in spans], [b for _, b in spans]

    @cached_property
    def relocation_witness(self) -> Optional[tuple[int, int, bool]]:
        """(vaddr, value, relative) of a word whose value in a process tells
        whether the loader has relocated this file there yet.  Relative, the
        loader sets it to ``value`` plus the load bias (the first relative
        relocation).  Not, it is an IRELATIVE slot, which the loader turns
        from ``value`` into what its resolver returns: the witness of a
        program loaded where it was linked (not PIE, static or not), whose
        load bias is 0, so that a relative relocation changes nothing.  None
        when the file has no such word."""
        try:
            elf = ELFFile(self._data)
            if self.is_dyn:
                return self._relative_witness(elf)
            return self._irelative_witness(elf)
        except (_PyElfError, struct.error, ValueError) as e:
            raise ElfError(f"{self.path}: unreadable relocations: {e}") from None

    def _relative_witness(self, elf) -> Optional[tuple[int, int, bool]]:
        tables = self._dynamic_relocations(elf)
        for rel in tables["RELR"].iter_relocations() if "RELR" in tables else ():
            return rel["r_offset"], self._word_at(rel["r_offset"]), True
        for kind in ("RELA", "REL"):
            for rel in tables[kind].iter_relocations() if kind in tables else ():
                if rel["r_info_type"] == _R_RELATIVE:
                    at = rel["r_offset"]
                    return at, rel["r_addend"] if kind == "RELA" else self._word_at(at), True
        return None

    @staticmethod
    def _dynamic_relocations(elf) -> dict:
        """The relocation tables PT_DYNAMIC names (REL, RELA, JMPREL, RELR),
        which the loader applies."""
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_DYNAMIC":
                return seg.get_relocation_tables()
        return {}

    def _irelative_witness(self, elf) -> Optional[tuple[int, int, bool]]:
        """From the section headers, which a static program's IRELATIVE
        relocations (applied by its libc's start-up) are only listed in."""
        kind = _R_IRELATIVE[self.bits]
        for sec in elf.iter_sections():
            if isinstance(sec, RelocationSection):
                for rel in sec.iter_relocations():
                    if rel["r_info_type"] == kind:
                        return rel["r_offset"], self._word_at(rel["r_offset"]), False
        return None

    def _word_at(self, vaddr: int) -> int:
        size = self.bits // 8
        return int.from_bytes(self.read(vaddr, size), "little" if self._little else "big")

    def relocated(self, lo: int, hi: int) -> bool:
        """Whether the loader writes any byte of [lo, hi) (file vaddrs) as it
        relocates: the code that runs there is not the file's."""
        starts, ends = self._text_relocations
        i = bisect.bisect_left(starts, hi)
        # Relocated words are at most 8 bytes: one starting 8 before lo at
        # the earliest can reach into the range.
        while i > 0 and starts[i - 1] > lo - 8:
            i -= 1
            if ends[i] > lo:
                return True
        return False

    def executable_ranges(self) -> list[tuple[int, int]]:
        """[start, end) file vaddrs of executable PT_LOAD segments: where a
        probe address may go."""
        return [(s.vaddr, s.vaddr + s.memsz) for s in self._segments if s.flags & _PF_X]

    # -- notes --------------------------------------------------------------

    def get_section_address(self, name: str) -> Optional[int]:
        for sec in self._sections:
            if sec.name == name:
                return sec.addr
        return None

    @cached_property
    def _sdt_probes(self) -> tuple[SdtProbe, ...]:
        probes: list[SdtProbe] = []
        base = self.get_section_address(".stapsdt.base")
        for sec in self._sections:
            if sec.name == ".note.stapsdt" and sec.type == "SHT_NOTE":
                probes.extend(parse_stapsdt_notes(
                    self._data[sec.offset:sec.offset + sec.size], self.bits, base,
                    align=8 if sec.addralign == 8 else 4, little=self._little))
        return tuple(probes)

    def sdt_probes(self) -> tuple[SdtProbe, ...]:
        """The file's SDT markers, in note order (several can share a
        provider and name: one per inlined or unrolled copy)."""
        return self._sdt_probes


def _disjoint_ranges(entries) -> tuple[list[int], list[int], list[Symbol]]:
    """Disjoint [start, end) ranges, each owned by the innermost symbol
    covering it, so ``symbolize`` is one bisect.  Aliases (same start and
    size) keep the best-ranked name; a zero-size symbol covers its first
    byte only."""
    best: dict[tuple[int, int], _Entry] = {}
    for entry in entries:
        s = entry.symbol
        key = (s.value, max(s.size, 1))
        if key not in best or entry.rank < best[key].rank:
            best[key] = entry
    spans = sorted(((v, v + n, e.symbol) for (v, n), e in best.items()),
                   key=lambda t: (t[0], -t[1]))
    bounds = sorted({b for start, end, _ in spans for b in (start, end)})
    starts: list[int] = []
    ends: list[int] = []
    owners: list[Symbol] = []
    stack: list[tuple[int, int, Symbol]] = []
    nxt = 0
    for lo, hi in zip(bounds, bounds[1:]):
        while nxt < len(spans) and spans[nxt][0] == lo:
            stack.append(spans[nxt])
            nxt += 1
        while stack and stack[-1][1] <= lo:
            stack.pop()
        if not stack:
            continue
        owner = stack[-1][2]
        if owners and owners[-1] is owner and ends[-1] == lo:
            ends[-1] = hi
        else:
            starts.append(lo)
            ends.append(hi)
            owners.append(owner)
    return starts, ends, owners
