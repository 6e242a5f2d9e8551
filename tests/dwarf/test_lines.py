"""Source-line probe sites checked against gdb's ``break FILE:LINE``.

gdb is the reference: for every line of ``dwarf_lines.c`` that has code we
ask gdb for its breakpoint locations and compare addresses, for -O0, -O2
and -O2 -funroll-loops builds at both bitnesses.  The one documented
difference: on a function's opening line gdb skips the prologue and we stay
at the entry, so there we only check that gdb's address lies in the same
function, after ours.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from ptrace_raw.debuginfo import debug_file
from ptrace_raw.errors import TracerError
from ptrace_raw.lines import NoCodeAtLine, _units, iter_source_lines, line_sites, source_line
from tests.conftest import TRACEES, build_c

SOURCE = TRACEES / "dwarf_lines.c"
FLAGS = [("-O0",), ("-O2",), ("-O2", "-funroll-loops")]
FLAG_IDS = ["O0", "O2", "O2-unroll"]


def marker(name):
    """The line number carrying ``LINE: name``."""
    for n, text in enumerate(SOURCE.read_text().splitlines(), 1):
        if f"LINE: {name} " in text + " ":
            return n
    raise KeyError(name)


def functions(program):
    """{name: (start, end)} of the program's function symbols."""
    with open(program, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name: (s["st_value"], s["st_value"] + s["st_size"])
                for s in symtab.iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_value"]}


def gdb_locations(program, lines):
    """{line: set of addresses} from one gdb run setting every breakpoint."""
    cmd = ["gdb", "-nx", "-batch"]
    for line in lines:
        cmd += ["-ex", f"break {SOURCE.name}:{line}"]
    cmd += ["-ex", "info breakpoints", str(program)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    found, current = {}, None
    for text in out.splitlines():
        m = re.match(r"^(\d+)\s+breakpoint\s+keep\s+y\s+(0x[0-9a-f]+|<MULTIPLE>)", text)
        if m:
            current = lines[int(m.group(1)) - 1]
            found[current] = set()
            if m.group(2) != "<MULTIPLE>":
                found[current].add(int(m.group(2), 16))
            continue
        m = re.match(r"^\d+\.\d+\s+y\s+(0x[0-9a-f]+)", text)
        if m:
            found[current].add(int(m.group(1), 16))
    return found


def source_lines(program):
    (name, lines), = [(f, ls) for f, ls in iter_source_lines(program) if f.endswith(SOURCE.name)]
    return lines


@pytest.mark.skipif(not shutil.which("gdb"), reason="gdb is the reference for line sites")
@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
def test_sites_match_gdb_on_every_line(bits, flags):
    program = build_c(SOURCE, bits, flags)
    lines = source_lines(program)
    gdb = gdb_locations(program, lines)
    entries = functions(program)
    assert len(gdb) == len(lines)
    for line in lines:
        mine = {s.address for s in line_sites(program, SOURCE.name, line)}
        theirs = gdb[line]
        # On an opening line gdb skips the prologue, if any, of the same
        # function: pair each of our entry sites with gdb's address in it.
        for addr in sorted(mine - theirs):
            (lo, hi), = [r for r in entries.values() if r[0] == addr]
            moved = [t for t in theirs - mine if lo <= t < hi]
            assert len(moved) == 1, f"line {line}: ours {addr:#x}, gdb {sorted(map(hex, theirs))}"
            theirs = theirs - set(moved) | {addr}
        assert mine == theirs, \
            f"line {line}: ours {sorted(map(hex, mine))}, gdb {sorted(map(hex, gdb[line]))}"


def test_inlined_function_has_a_site_per_copy(bits):
    program = build_c(SOURCE, bits, ("-O0",))
    # always_inline at -O0: clamp has two inlined copies in clamp_both.
    sites = line_sites(program, SOURCE.name, marker("clamp_test"))
    lo, hi = functions(program)["clamp_both"]
    assert len(sites) == 2
    assert all(s.function == "clamp" and lo <= s.address < hi for s in sites)
    assert sites[0].file == str(SOURCE)


def statement_rows(program, line):
    (unit,) = [u for u in _units(program) if u.could_name(SOURCE.name)]
    return [r for r in unit.rows() if r.line == line and unit.paths()[r.file] == str(SOURCE)]


def test_a_line_spread_over_rows_of_one_scope_is_one_site(bits):
    # The for line has an init row and a test row far apart at -O0; the
    # unrolled body has many rows.  Both are one site, as in gdb.
    program = build_c(SOURCE, bits, ("-O0",))
    assert len(statement_rows(program, marker("loop_head"))) >= 2
    assert [s.function for s in line_sites(program, SOURCE.name, marker("loop_head"))] == ["sum_loop"]
    unrolled = build_c(SOURCE, bits, ("-O2", "-funroll-loops"))
    assert len(statement_rows(unrolled, marker("unrolled_body"))) >= 4
    assert len(line_sites(unrolled, SOURCE.name, marker("unrolled_body"))) == 1


def test_no_code_names_the_nearest_lines(bits):
    program = build_c(SOURCE, bits, ("-O0",))
    comment = marker("main_sum") - 2
    assert "no code" in SOURCE.read_text().splitlines()[comment - 1]
    with pytest.raises(NoCodeAtLine) as info:
        line_sites(program, SOURCE.name, comment)
    lines = source_lines(program)
    assert info.value.before == max(n for n in lines if n < comment)
    assert info.value.after == marker("main_sum")
    assert f"dwarf_lines.c:{info.value.after}" in str(info.value)
    assert isinstance(info.value, TracerError)


def test_file_matches_by_basename_or_path_suffix():
    program = build_c(SOURCE, 64, ("-O0",))
    line = marker("loop_body")
    expected = line_sites(program, "dwarf_lines.c", line)
    assert line_sites(program, "tracees/dwarf_lines.c", line) == expected
    assert line_sites(program, str(SOURCE), line) == expected
    for wrong in ("lines.c", "other.c"):
        with pytest.raises(TracerError):
            line_sites(program, wrong, line)


def test_iter_source_lines_lists_lines_with_code():
    program = build_c(SOURCE, 64, ("-O0",))
    lines = source_lines(program)
    assert lines == sorted(set(lines))
    assert {marker("loop_body"), marker("call_one"), marker("main_sum")} <= set(lines)
    assert marker("main_sum") - 2 not in lines
    # A file filter gives the same lines, for that file only.
    assert list(iter_source_lines(program, "tracees/dwarf_lines.c")) == [(str(SOURCE), lines)]


@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_a_relative_compilation_directory_is_not_doubled(tmp_path, bits, version):
    """A build whose compilation directory was mapped to a relative one
    (-fdebug-prefix-map, as Debian builds libc: "stdlib") names its files
    "stdlib/msort.c"; a file in the unit's own directory was joined with
    that directory twice, "stdlib/stdlib/msort.c"."""
    where = tmp_path / "stdlib"
    where.mkdir()
    shutil.copy(SOURCE, where / SOURCE.name)
    program = tmp_path / "prog"
    subprocess.run(["gcc", f"-m{bits}", version, "-O0", f"-fdebug-prefix-map={tmp_path}/=",
                    "-o", str(program), SOURCE.name], cwd=where, check=True)
    expected = f"stdlib/{SOURCE.name}"
    assert [name for name, _ in iter_source_lines(program)] == [expected]
    (site,) = line_sites(program, expected, marker("main_sum"))
    assert source_line(program, site.address) == (expected, marker("main_sum"))


@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_kept_files_list_alone_and_spare_the_rows_of_other_programs(version):
    """``list --lines BIN PATTERN`` decoded every line program and then
    dropped the files the pattern did not match: 13 s for libc's debug
    file whatever the pattern.  A DWARF 5 header names its files in full,
    so a program naming no kept file is skipped undecoded."""
    program = build_c("statics.c", 64, ("-O0", version),
                      libs=(str(TRACEES / "statics_other.c"),))
    every = dict(iter_source_lines(program))
    assert sorted(os.path.basename(name) for name in every) == ["statics.c", "statics_other.c"]
    debug_file(program).derived.clear()
    kept = list(iter_source_lines(program, keep=lambda name: name.endswith("/statics_other.c")))
    assert [(os.path.basename(name), nums) for name, nums in kept] == [
        ("statics_other.c", every[kept[0][0]])]
    decoded = {next(os.path.basename(name) for name, _ in unit._files.values()
                    if name.endswith(".c")): unit._rows is not None
               for unit in _units(program)}
    assert decoded == {"statics.c": version == "-gdwarf-4", "statics_other.c": True}


def test_line_lookups_in_many_files_keep_a_bounded_number_open(tmp_path):
    """Every file a line lookup read stayed cached with its line tables (a
    backtrace through a hundred libraries reads a hundred), each holding
    its file open: a tracer would run out of descriptors.  The tables now
    go with the file when it leaves the cache of open files (32)."""
    program = build_c(SOURCE, 64, ("-O0",))
    site = line_sites(program, SOURCE.name, marker("main_sum"))[0].address
    copies = []
    for i in range(80):
        copies.append(tmp_path / f"copy{i}")
        shutil.copy(program, copies[-1])
    before = len(os.listdir("/proc/self/fd"))
    for copy in copies:
        assert source_line(copy, site) == (str(SOURCE), marker("main_sum"))
        assert dict(iter_source_lines(copy))[str(SOURCE)]
    gc.collect()  # a file's line units refer back to it: a cycle
    assert len(os.listdir("/proc/self/fd")) - before <= 32
