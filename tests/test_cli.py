"""The command line as a user runs it: ``python -m ptrace_raw`` in a
subprocess against real tracees, its output parsed line by line or object
by object, its exit status checked like a shell script would."""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import arch as _arch
from ptrace_raw.cli_hist import Log2Hist, format_bcc, format_bpftrace
from ptrace_raw.elf import ElfImage
from ptrace_raw.maps import read_maps
from ptrace_raw.demangle import demangle
from ptrace_raw.modules import ModuleMap
from tests.conftest import TRACEES, build_c
from tests.elf.binutils import build_id, sdt_include_flags, split_debug
from tests.tracing import ask, start_service, text_bytes, tracer_pid

REPO = Path(__file__).resolve().parent.parent
HIT_LINE = re.compile(r"^(\d+\.\d{6}) (\d+)/(\d+) (\S+)(.*)$")


def cli(*args, **kw):
    """Run ``ptrace-raw ARGS``; returns the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ptrace_raw", *map(str, args)],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=env, **kw)


def cli_popen(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "ptrace_raw", *map(str, args)],
                            text=True, cwd=REPO, env=env, **kw)


def ndjson(text):
    return [json.loads(line) for line in text.splitlines()]


def hits_of(objs, probe=None):
    return [o for o in objs if o["type"] == "hit" and (probe is None or o["probe"] == probe)]


def untraced(*argv):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True).stdout


@pytest.fixture
def calls():
    """calls.c, 64-bit; tests that take ``bits`` build their own."""
    return build_c("calls.c", 64, ("-O0", "-pthread"))


@pytest.fixture
def calls_bits(build):
    return build("calls.c", flags=("-O0", "-pthread"))


# -- trace: what each probe kind prints -----------------------------------------------------

def test_entry_and_return_probes_as_json(calls_bits, bits, tmp_path):
    """Field by field: the arguments of every call in order, the return
    values, one pid/tid, times that only grow, and the command's own output
    unchanged on its stdout."""
    out = tmp_path / "hits.ndjson"
    res = cli("trace", f"uprobe:{calls_bits}:add", f"uretprobe:{calls_bits}:square", "--args", "2",
              "--json", "-o", out, "--", calls_bits, 50)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(calls_bits, 50) and res.stderr == ""
    objs = ndjson(out.read_text())
    adds = hits_of(objs, f"uprobe:{calls_bits}:add")
    squares = hits_of(objs, f"uretprobe:{calls_bits}:square")
    assert [h["args"] for h in adds] == [[i, 1] for i in range(50)]
    assert [h["retval"] for h in squares] == [(i % 7) ** 2 for i in range(50)]
    assert [h["args"][0] for h in squares] == [i % 7 for i in range(50)]
    pids = {(h["pid"], h["tid"]) for h in adds + squares}
    assert len(pids) == 1 and pids.pop()[0] > 0
    times = [h["time_ns"] for h in hits_of(objs)]
    assert times == sorted(times) and times[0] > 0
    assert len({h["ip"] for h in adds}) == 1
    assert all(h["duration_ns"] > 0 and "usdt_args" not in h and "stack" not in h for h in squares)
    assert all("retval" not in h and "duration_ns" not in h for h in adds)
    assert objs[-1] == {"type": "exit", "status": 0}
    assert {o["type"] for o in objs} == {"hit", "exit"}


def test_text_lines_go_to_stderr_with_hex_args(calls):
    res = cli("trace", f"uprobe:{calls}:add", f"{calls}:square%return", "--", calls, 3)
    assert res.returncode == 0 and res.stdout == untraced(calls, 3)
    lines = res.stderr.splitlines()
    assert len(lines) == 6
    parsed = [HIT_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m[4] for m in parsed] == [f"uprobe:{calls}:add", f"{calls}:square%return"] * 3
    assert parsed[2][5].startswith(" arg0=0x1 arg1=0x1 arg2=")
    assert re.fullmatch(r" retval=0x4 \(\d+\.\d{3} us\)", parsed[5][5])
    assert len({(m[2], m[3]) for m in parsed}) == 1


def _instructions(path, func):
    image = ElfImage.open(path)
    sym = image.get_function(func)
    arch = _arch.X86_64 if image.bits == 64 else _arch.I386
    return [i.addr for i in arch.decode(image.read(sym.value, sym.size), sym.value)], sym


def _line_of(text):
    src = (TRACEES / "calls.c").read_text().splitlines()
    return next(i for i, line in enumerate(src, 1) if text in line)


def test_every_probe_kind_counts_exactly(calls_bits, bits):
    """Glob, offset, address, every instruction, %return and source line,
    each through the command line, each counted exactly."""
    insns, add = _instructions(calls_bits, "add")
    square_insns, _ = _instructions(calls_bits, "square")
    line = _line_of('total += greet("world", 3);')
    probes = [f"uprobe:{calls_bits}:gree*", f"uprobe:{calls_bits}:add+{insns[1] - add.value:#x}",
              f"uprobe:{calls_bits}:{add.value:#x}", f"uprobe:{calls_bits}:square+*",
              f"{calls_bits}:fib%return", f"uprobe:{calls_bits}:calls.c:{line}"]
    res = cli("trace", *probes, "--count", "--json", "--", calls_bits, 40)
    assert res.returncode == 0, res.stderr
    counts = {o["probe"]: o["hits"] for o in ndjson(res.stderr) if o["type"] == "count"}
    assert counts == dict(zip(probes, [1, 40, 40, 40 * len(square_insns), 177, 1], strict=True))
    assert not hits_of(ndjson(res.stderr))
    # Only function entries are counted inline: a line's sites, or an
    # address, may lie inside another probe's patch (two nearby line
    # probes ended the trace with "lies in code an inline probe has
    # patched").
    inline = {o["message"].split("'")[1] for o in ndjson(res.stderr)
              if o["type"] == "warning" and "counted inline" in o["message"]}
    assert inline == {probes[0]}


def test_glob_and_line_hits_say_where_they_fired(calls):
    line = _line_of('total += greet("world", 3);')
    res = cli("trace", f"uprobe:{calls}:gr*", f"uprobe:{calls}:calls.c:{line}", "--", calls, 1)
    first, second = filter(None, map(HIT_LINE.match, res.stderr.splitlines()))
    assert first[5].startswith(" at main+0x")
    assert second[5].startswith(" at greet+0x0 arg0=0x")
    # a pattern of returns names the function that returned
    res = cli("trace", f"uretprobe:{calls}:gr*", "--", calls, 1)
    (ret,) = filter(None, map(HIT_LINE.match, res.stderr.splitlines()))
    assert ret[5].startswith(" at greet+0x0 retval=0x")


def test_a_marker_pattern_says_which_marker_fired(build):
    exe = build("sdt_probes.c", flags=("-O0", *sdt_include_flags()))
    res = cli("trace", f"usdt:{exe}:sdt:*", "--json", "--", exe)
    assert [h["location"] for h in hits_of(ndjson(res.stderr))] == ["sdt:tick", "sdt:data",
                                                                      "sdt:consts"]


def test_usdt_arguments(build, bits):
    exe = build("sdt_probes.c", flags=("-O0", *sdt_include_flags()))
    res = cli("trace", f"usdt:{exe}:sdt:consts", f"usdt:{exe}:sdt:tick", "--json", "--", exe)
    assert res.returncode == 2, res.stderr      # sdt_probes returns argc + argc
    tick, consts = hits_of(ndjson(res.stderr))
    assert consts["usdt_args"] == [42, -7, -1] and "args" not in consts
    assert tick["usdt_args"][:4] == [1, 200, -3, -5]
    text = cli("trace", f"usdt:{exe}:sdt:consts", "--", exe).stderr
    assert text.rstrip().endswith(f"usdt:{exe}:sdt:consts usdt_args=[42, -7, -1]")


def test_filter_selects_hits_and_sees_return_values(calls):
    res = cli("trace", f"uretprobe:{calls}:add", f"uretprobe:{calls}:square", "--args", "1",
              "--filter", "arg0 % 2 == 0 if probe.endswith(':add') else retval == 36",
              "--count", "--json", "--", calls, 50)
    counts = {o["probe"]: o["hits"] for o in ndjson(res.stderr) if o["type"] == "count"}
    assert counts == {f"uretprobe:{calls}:add": 25, f"uretprobe:{calls}:square": 7}


@pytest.mark.parametrize("option", ["--filter", "--hist"])
def test_retval_with_entry_probes_is_refused_naming_them(calls, option):
    """Entry and return probes mixed: ``retval > 1`` raised a TypeError at
    every entry hit (None > 1), hit after hit.  As bpftrace refuses retval
    in a uprobe, the expression is refused before the command runs, with
    the entry probes named."""
    res = cli("trace", f"uprobe:{calls}:add", f"uretprobe:{calls}:square", f"{calls}:greet",
              option, "retval > 1", "--", calls, 5)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (f"ptrace-raw: {option} 'retval > 1': retval is known at return probes "
                          f"only, not at uprobe:{calls}:add, {calls}:greet\n")


def test_json_stays_ndjson_when_the_filter_raises(calls):
    res = cli("trace", f"uprobe:{calls}:add", "--filter", "2 // arg0", "--json", "--", calls, 3)
    objs = ndjson(res.stderr)
    assert [o["type"] for o in objs] == ["warning", "hit", "hit", "exit"]
    assert "ZeroDivisionError" in objs[0]["message"] and f"uprobe:{calls}:add" in objs[0]["message"]
    assert [h["args"][0] for h in objs[1:3]] == [1, 2]


def test_filter_on_saved_entry_args_of_a_return_probe(calls):
    res = cli("trace", f"uretprobe:{calls}:add", "--args", "1", "--filter", "arg0 >= 45",
              "--json", "--", calls, 50)
    hits = hits_of(ndjson(res.stderr))
    assert [(h["args"], h["retval"]) for h in hits] == [([i], i + 1) for i in range(45, 50)]


def test_print_adds_values_to_hit_lines_and_json(calls_bits):
    """--print EXPR puts the value of EXPR on each hit line, as bpftrace's
    printf with str() does: cstr() reads a string argument, a return
    probe prints what its entry saved, and an expression that fails at a
    hit (here the C string at address 0) prints '?', null in JSON, without
    failing the others."""
    exe = calls_bits
    args = [f"uprobe:{exe}:greet", f"uretprobe:{exe}:greet", "--print", "cstr(arg0)",
            "--print", "arg1 * 2", "--print", "cstr(0)", "--args", "0"]
    res = cli("trace", *args, "--", exe, 1)
    assert (res.returncode, res.stdout) == (0, untraced(exe, 1)), res.stderr
    lines = [line for line in res.stderr.splitlines() if ":greet" in line]
    assert [re.sub(r"\(\d+\.\d+ us\)", "(T)", line.split(" ", 2)[2]) for line in lines] == [
        f"uprobe:{exe}:greet cstr(arg0)='world' arg1 * 2=6 cstr(0)=?",
        f"uretprobe:{exe}:greet retval=0x8 (T) cstr(arg0)='world' arg1 * 2=6 cstr(0)=?"]
    res = cli("trace", "--json", *args, "--", exe, 1)
    assert [h["print"] for h in hits_of(ndjson(res.stderr))] == [
        {"cstr(arg0)": "world", "arg1 * 2": 6, "cstr(0)": None}] * 2


def test_print_and_filter_read_locals_at_a_line_probe(build):
    """var(NAME) in an expression is the DWARF variable of that name where
    the probe hit: a line probe prints a local as it is at that pass, and
    a double compares as a number (k / 4.0 here; as its bits, every pass
    passed)."""
    exe = build("locals.c")
    line = next(n for n, text in enumerate((TRACEES / "locals.c").read_text().splitlines(), 1)
                if "LINE: outer" in text)
    res = cli("trace", "--json", f"{exe}:locals.c:{line}", "--print", "var('total')",
              "--filter", "var('ratio') >= 0.5", "--", exe, 3)
    assert res.returncode == 0, res.stderr
    assert [h["print"] for h in hits_of(ndjson(res.stderr))] == [
        {"var('total')": 10}, {"var('total')": 20}]


def test_print_shows_any_value_once_as_python_writes_it(calls):
    """A hit line shows a --print value as its repr; one JSON cannot hold
    (bytes, a list) is kept as its repr in JSON, and the hit line showed the
    repr of that string: quoted again, its quotes escaped."""
    res = cli("trace", f"uprobe:{calls}:greet", "--print", "hit.read(arg0, 5)",
              "--print", "[arg1, cstr(arg0)]", "--print", "cstr(arg0)", "--args", "0",
              "--", calls, 1)
    assert res.returncode == 0, res.stderr
    (line,) = [line for line in res.stderr.splitlines() if ":greet" in line]
    assert line.split(" ", 3)[3] == \
        "hit.read(arg0, 5)=b'world' [arg1, cstr(arg0)]=[3, 'world'] cstr(arg0)='world'"
    res = cli("trace", "--json", f"uprobe:{calls}:greet", "--print", "hit.read(arg0, 5)",
              "--print", "[arg1, cstr(arg0)]", "--", calls, 1)
    assert [h["print"] for h in hits_of(ndjson(res.stderr))] == [
        {"hit.read(arg0, 5)": "b'world'", "[arg1, cstr(arg0)]": "[3, 'world']"}]


def test_print_of_an_expression_written_on_lines_keeps_one_line_per_hit(calls):
    """An expression may span lines (a long one in a script): the hit line
    shows it with its line breaks and indentation as one space, where the
    breaks split the hit's line; JSON keeps it as given."""
    text = "(arg1\n    * 2)"
    res = cli("trace", f"uprobe:{calls}:greet", "--print", text, "--args", "0", "--", calls, 1)
    assert res.returncode == 0, res.stderr
    assert [line.split(" ", 3)[3] for line in res.stderr.splitlines()
            if ":greet" in line or "* 2" in line] == ["(arg1 * 2)=6"]
    res = cli("trace", "--json", f"uprobe:{calls}:greet", "--print", text, "--", calls, 1)
    assert [h["print"] for h in hits_of(ndjson(res.stderr))] == [{text: 6}]


def _strict_json(line):
    """A JSON object as any reader takes it: NaN and Infinity are Python's."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(line, parse_constant=refuse)


def test_print_of_nan_or_infinity_keeps_the_json_valid(calls):
    """A --print value that is NaN or an infinity went into the NDJSON bare,
    as Python's json writes it, and jq or JSON.parse refused the line: it
    is a string, as any value JSON cannot hold."""
    res = cli("trace", "--json", f"uprobe:{calls}:square", "--print", "(arg0 + 1) * 1e308 * 10",
              "--print", "float('nan')", "--print", "(arg0 + 1) / 4", "--", calls, 1)
    assert res.returncode == 0, res.stderr
    assert [h["print"] for h in hits_of(map(_strict_json, res.stderr.splitlines()))] == [
        {"(arg0 + 1) * 1e308 * 10": "inf", "float('nan')": "nan", "(arg0 + 1) / 4": 0.25}]


def test_print_of_retval_at_an_entry_probe_is_refused(calls):
    res = cli("trace", f"uprobe:{calls}:add", "--print", "retval", "--", calls, 1)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == ("ptrace-raw: --print 'retval': retval is known at return probes "
                          f"only, not at uprobe:{calls}:add\n")


def test_stack_is_symbolized(calls_bits, bits):
    res = cli("trace", f"uprobe:{calls_bits}:fib", "--stack", "--filter", "arg0 == 8", "--", calls_bits, 1)
    lines = res.stderr.splitlines()
    frames = [line.strip() for line in lines[1:4]]
    assert HIT_LINE.match(lines[0]) and lines[1].startswith("    ")
    assert frames[0].startswith("fib+0x0 (") and frames[1].startswith("fib+0x")
    assert frames[2].startswith("fib+0x")
    assert any(line.strip().startswith("main+0x") for line in lines)
    res = cli("trace", f"uprobe:{calls_bits}:add", "--stack", "--json", "--", calls_bits, 1)
    stack = hits_of(ndjson(res.stderr))[0]["stack"]
    assert [f["symbol"] for f in stack[:2]] == ["add", "main"]
    assert stack[0]["offset"] == 0 and stack[0]["module"] == str(calls_bits)


@pytest.mark.parametrize("depth, cut", [(100, True), (3, False)], ids=["deep", "shallow"])
def test_a_stack_cut_at_64_frames_says_so(build, depth, cut):
    """--stack shows 64 frames at most, and a deeper stack ended there as
    if it were whole: now a last "..." line says it goes on, and so does
    "stack_cut" in JSON.  A stack that fits is shown whole, to _start."""
    exe = build("deep.c")
    res = cli("trace", "--stack", f"uprobe:{exe}:leaf", "--", exe, depth)
    assert (res.returncode, res.stdout) == (0, f"depth={depth + 2}\n")
    hit, *frames = res.stderr.splitlines()
    assert HIT_LINE.match(hit)
    if cut:
        assert len(frames) == 65 and all(f.strip().startswith("descend+0x") for f in frames[1:64])
        assert frames[-1] == "    ... (deeper frames not shown: --stack stops at 64)"
    else:
        assert [f.strip().split("+")[0] for f in frames[:5]] == ["leaf"] + ["descend"] * 4
        assert frames[-1].strip().startswith("_start+0x")
    (obj,) = hits_of(ndjson(cli("trace", "--stack", "--json", f"uprobe:{exe}:leaf", "--",
                                exe, depth).stderr))
    assert len(obj["stack"]) == (64 if cut else len(frames))
    assert obj.get("stack_cut", False) is cut


# -- aggregations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("inline", [True, False], ids=["inline", "int3"])
def test_latency_puts_each_call_in_its_own_bucket(inline):
    """Two calls spinning 20 ms each: both in [2**24, 2**25) ns, timed
    inline or not.  Inline buckets (in ns) were converted to usecs by their
    lower bound, which can land a call a bucket low (a 1.06 s call showed
    in the 0.5-1 s row, avg 0.54 s); a sum is only shown when known."""
    exe = build_c("inline_asm.c", 64, ("-O1",))
    res = cli("trace", "--latency", f"{exe}:spin", *([] if inline else ["--no-inline"]),
              "--", exe, "spin", 2, 20000)
    assert res.returncode == 0, res.stderr
    rows = re.findall(r"^\s*(\d+) -> (\d+)\s+: (\d+)", res.stderr, re.M)
    assert [(lo, hi) for lo, hi, n in rows if n != "0"] == [("16777216", "33554431")]
    assert re.search(r"^\s+nsecs\s+: count", res.stderr, re.M)
    last = res.stderr.rstrip().splitlines()[-1]
    assert last == "count: 2" if inline else re.fullmatch(
        r"avg = \d+ nsecs, total: \d+ nsecs, count: 2", last)


def test_latency_histogram_buckets_sum_to_the_calls(calls):
    res = cli("trace", "--latency", f"{calls}:square", "--json", "--", calls, 60)
    (hist,) = [o for o in ndjson(res.stderr) if o["type"] == "hist"]
    assert hist["name"] == f"{calls}:square" and hist["unit"] == "nsecs"
    assert sum(b["count"] for b in hist["buckets"]) == 60
    for b in hist["buckets"]:
        assert b["high"] == (0 if b["low"] == 0 else 2 * b["low"] - 1)
    text = cli("trace", "--latency", f"{calls}:square", "--", calls, 60).stderr.splitlines()
    assert text.pop(0) == f"ptrace-raw: probe 'uprobe:{calls}:square': timed inline, in the tracee"
    assert text[0] == f"{calls}:square:"
    assert re.fullmatch(r"\s+nsecs\s+: count\s+distribution", text[1])
    rows = [re.fullmatch(r"\s*(\d+) -> (\d+)\s+: (\d+)\s+\|(\**)\s*\|", r) for r in text[2:-1]]
    assert all(rows) and sum(int(r[3]) for r in rows) == 60
    assert max(len(r[4]) for r in rows) == 40
    assert text[-1].endswith("count: 60")
    # --count with nothing but --latency probes prints no empty count table
    text = cli("trace", "--count", "--latency", f"{calls}:square", "--", calls, 60).stderr
    assert "hits  probe" not in text and text.rstrip().endswith("count: 60")


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "int3"])
def test_count_and_latency_say_which_path_they_took(calls_bits, inline):
    extra = () if inline else ("--no-inline",)
    res = cli("trace", "--count", f"uprobe:{calls_bits}:add", "--latency", f"{calls_bits}:square",
              "--json", *extra, "--", calls_bits, 500)
    assert res.returncode == 0, res.stderr
    objs = ndjson(res.stderr)
    said = [o["message"] for o in objs if o["type"] == "warning"]
    assert said == ([f"probe 'uprobe:{calls_bits}:add': counted inline, in the tracee",
                     f"probe 'uprobe:{calls_bits}:square': timed inline, in the tracee"]
                    if inline else [])
    assert [o["hits"] for o in objs if o["type"] == "count"] == [500]
    (hist,) = [o for o in objs if o["type"] == "hist"]
    assert sum(b["count"] for b in hist["buckets"]) == 500


def test_hist_of_an_argument_has_exact_log2_buckets(calls_bits, bits):
    res = cli("trace", f"uprobe:{calls_bits}:add", "--hist", "arg0", "--json", "--", calls_bits, 64)
    (hist,) = [o for o in ndjson(res.stderr) if o["type"] == "hist"]
    assert hist["name"] == "arg0" and hist["unit"] is None
    assert [(b["low"], b["high"], b["count"]) for b in hist["buckets"]] == [
        (0, 0, 1), (1, 1, 1), (2, 3, 2), (4, 7, 4), (8, 15, 8), (16, 31, 16), (32, 63, 32)]
    text = cli("trace", f"uprobe:{calls_bits}:add", "--hist", "arg0", "--", calls_bits, 64).stderr
    lines = text.splitlines()
    assert lines[0] == "@arg0:" and lines[1].startswith("[0]") and lines[3].startswith("[2, 4)")
    assert re.fullmatch(r"\[32, 64\)\s+32 \|@{52}\|", lines[-1])


def test_count_by_counts_hits_per_value_fewest_first(calls_bits, bits):
    """As bpftrace's @[arg0] = count(): square(i % 7) for i < 30 has 0
    and 1 five times and 2..6 four times; numbers sort by value (10 after
    9), ties by key; the command's own output is unchanged."""
    res = cli("trace", f"uprobe:{calls_bits}:square", "--count-by", "arg0", "--count-by",
              "arg0 % 12 + 5", "--", calls_bits, 30)
    assert res.returncode == 0 and res.stdout == "total=893\n", res.stderr
    assert res.stderr.splitlines() == [
        "hits  arg0", *[f"   4  {v}" for v in (2, 3, 4, 5, 6)], "   5  0", "   5  1",
        "hits  arg0 % 12 + 5", *[f"   4  {v}" for v in (7, 8, 9, 10, 11)], "   5  5", "   5  6"]


def test_count_by_keys_strings_threads_and_failures_as_print_shows_them(calls_bits):
    """Per thread: four workers calling add 100 times each; per C string,
    with a value that cannot be read (a failing expression) under '?' in
    text and null in JSON, as --print has it.  A key is read by Python at
    every hit, so no count goes inline: --count agrees."""
    res = cli("trace", f"uprobe:{calls_bits}:add", "--count-by", "tid", "--count",
              "--json", "--", calls_bits, 400, 4)
    objs = ndjson(res.stderr)
    (by_tid,) = [o for o in objs if o["type"] == "count_by"]
    assert by_tid["expr"] == "tid" and [c["hits"] for c in by_tid["counts"]] == [100] * 4
    assert len({c["key"] for c in by_tid["counts"]}) == 4
    assert [o["hits"] for o in objs if o["type"] == "count"] == [400]
    assert "inline" not in res.stderr
    res = cli("trace", f"uprobe:{calls_bits}:greet", f"uprobe:{calls_bits}:square",
              "--count-by", "cstr(arg0) if probe.endswith('greet') else cstr(0)", "--", calls_bits, 3)
    assert res.stderr.splitlines()[1:] == ["   1  'world'", "   3  ?"]


def test_count_by_a_value_python_cannot_show_counts_under_a_failure(calls):
    """A value whose repr fails (an int too long for str) is a failing
    expression, '?' as --print shows it, not a handler error per hit."""
    res = cli("trace", f"uprobe:{calls}:square", "--count-by", "10 ** 5000 + arg0", "--", calls, 3)
    assert res.returncode == 0 and res.stdout == "total=74\n", res.stderr
    assert res.stderr.splitlines() == ["hits  10 ** 5000 + arg0", "   3  ?"]


def test_count_by_call_path_function_and_process_name(build, bits):
    """ustack tells leaf's callers apart, each call site of a() its own
    path (as bpftrace's ustack does); func names the function of a pattern
    that hit; comm is the thread's name, here the process's."""
    exe = build("callers.c")
    res = cli("trace", f"uprobe:{exe}:leaf", "--count-by", "ustack", "--count-by", "comm",
              "--", exe)
    assert res.returncode == 0 and res.stdout == "sum=27\n", res.stderr
    lines = res.stderr.splitlines()
    # the kernel keeps 15 characters of a name
    assert lines[0] == "hits  ustack" and lines[4:] == ["hits  comm", f"  11  {exe.name[:15]!r}"]
    paths = [re.fullmatch(r"\s+(\d) +'leaf\+0x0 <- (\w)\+0x\w+ <- main\+0x\w+ <- (.*)'", line)
             for line in lines[1:4]]
    assert [(m[1], m[2]) for m in paths] == [("3", "a"), ("3", "a"), ("5", "b")]
    assert len({line.split("<- main")[1] for line in lines[1:3]}) == 2
    res = cli("trace", f"uprobe:{exe}:[ab]", "--count-by", "func", "--", exe)
    assert res.stderr.splitlines() == ["hits  func", "   1  'b'", "   2  'a'"]


def test_count_by_comm_is_by_thread_name_as_bpftrace_has_it(build):
    """Threads that name themselves count under their own names."""
    exe = build("named.c", flags=("-O0", "-pthread"))
    res = cli("trace", f"uprobe:{exe}:leaf", "--count-by", "comm", "--", exe)
    assert res.returncode == 0 and res.stdout == "sum=22\n", res.stderr
    assert res.stderr.splitlines() == ["hits  comm", f"   1  {exe.name[:15]!r}", "   3  'alpha'",
                                       "   5  'beta'"]


def test_ustack_names_a_frame_without_a_symbol_by_file_and_address(build, tmp_path):
    """In a stripped program a frame has no symbol: ustack names it by the
    file and its address there (the same in every process, wherever the
    program was loaded), not by its pc."""
    exe = build("callers.c")
    leaf = ElfImage.open(exe).get_function("leaf").value
    stripped = tmp_path / "callers-stripped"
    subprocess.run(["strip", "-o", str(stripped), str(exe)], check=True)
    res = cli("trace", f"uprobe:{stripped}:{leaf:#x}", "--count-by", "ustack", "--", stripped)
    assert res.returncode == 0 and res.stdout == "sum=27\n", res.stderr
    keys = [line.split(None, 1)[1] for line in res.stderr.splitlines()[1:]]
    assert len(keys) == 3 and all(k.startswith(f"'callers-stripped+{leaf:#x} <- callers-stripped+0x")
                                  for k in keys), keys


def test_histogram_bars_round_down_as_bcc_and_bpftrace_draw_them():
    """A bucket of 1 beside one of 4466 had a mark of its own, which
    funclatency and bpftrace round away; in funclatency's 40 columns 112
    is a fortieth of 4466 and gets one, 111 none."""
    hist = Log2Hist("f", "nsecs")
    for low, count in ((1, 1), (2, 111), (4, 112), (8, 2233), (16, 4466)):
        hist.add_bucket(low, count)
    bars = [line.split("|")[1].strip() for line in format_bcc(hist)[3:-1]]
    assert bars == ["", "", "*", "*" * 20, "*" * 40]
    bars = [line.split("|")[1].strip() for line in format_bpftrace(hist)[1:]]
    assert bars == ["", "@", "@", "@" * 26, "@" * 52]  # 52 wide: 111 is past a 52nd


def test_hit_lines_come_back_with_hits(calls):
    res = cli("trace", f"uprobe:{calls}:add", "--count", "--hits", "--", calls, 5)
    lines = res.stderr.splitlines()
    assert len([line for line in lines if HIT_LINE.match(line)]) == 5
    assert lines[-2:] == ["hits  probe", f"   5  uprobe:{calls}:add"]


def test_chrome_trace_has_a_duration_per_call(calls, tmp_path):
    trace = tmp_path / "trace.json"
    res = cli("trace", f"uprobe:{calls}:add", f"uretprobe:{calls}:square", "--count",
              "--print", "arg0 * 2", "--trace-out", trace, "--", calls, 30)
    assert res.returncode == 0, res.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    spans = [e for e in events if e["ph"] == "X"]
    instants = [e for e in events if e["ph"] == "i"]
    assert len(meta) == 1 and meta[0]["args"]["name"] == calls.name
    assert len(spans) == 30 and {e["name"] for e in spans} == {"square"}
    assert len(instants) == 30 and {e["name"] for e in instants} == {"add"}
    assert [e["args"]["retval"] for e in spans] == [(i % 7) ** 2 for i in range(30)]
    # --print values go with each event, as on the hit lines
    assert [e["args"]["print"] for e in instants] == [{"arg0 * 2": 2 * i} for i in range(30)]
    assert all(e["dur"] > 0 for e in spans)
    assert {(e["pid"], e["tid"]) for e in spans + instants} == {(meta[0]["pid"], meta[0]["pid"])}
    # each add(i) call comes before square(i) in main's loop
    for add, square in zip(instants, spans, strict=True):
        assert add["ts"] < square["ts"] < square["ts"] + square["dur"]


def test_script_adds_probes_with_the_tracer_global(calls, tmp_path):
    script = tmp_path / "probes.py"
    script.write_text(
        "seen = []\n"
        f"@tracer.probe('uprobe:{calls}:greet')\n"
        "def on_greet(hit):\n"
        "    print('greeted', hit.read_cstring(hit.arg(0)), flush=True)\n")
    res = cli("trace", "--script", script, "--count", "--", calls, 2)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["greeted world", untraced(calls, 2).strip()]
    assert res.stderr.splitlines()[-1] == f"   1  uprobe:{calls}:greet"


def test_script_errors_say_where(calls, tmp_path):
    """A script's syntax error, a failure while it runs and a handler's
    exception each name the line (a SyntaxError said only what)."""
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ny = (\n")
    res = cli("trace", "--script", broken, "--", calls, 1)
    assert (res.returncode, res.stderr) == (1, (
        f"ptrace-raw: script {broken} failed at line 2: SyntaxError: '(' was never closed\n"))
    failing = tmp_path / "failing.py"
    failing.write_text("import os\n\nraise ValueError('boom')\n")
    res = cli("trace", "--script", failing, "--", calls, 1)
    assert res.stderr == f"ptrace-raw: script {failing} failed at line 3: ValueError: boom\n"
    handler = tmp_path / "handler.py"
    handler.write_text("import json\n"
                       f"@tracer.probe('uprobe:{calls}:greet')\n"
                       "def on_greet(hit):\n"
                       "    return json.loads('x')\n")
    res = cli("trace", "--script", handler, "--", calls, 1)
    assert res.returncode == 0, res.stderr
    assert res.stderr == (f"ptrace-raw: handler of 'uprobe:{calls}:greet' raised "
                          "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 "
                          "(char 0) (at handler.py:4)\n")


def test_script_probe_errors_say_where(calls, tmp_path):
    """A probe a script adds that cannot be set said what was wrong, but
    not that it came from the script, nor from which line; so did an
    error of the OS in the script, which read as if the script itself
    could not be run."""
    for spec, status, why in [
            ("nocolon", 1, "bad probe 'nocolon': expected [uprobe|uretprobe|usdt:]BIN:WHERE"),
            (f"uprobe:{calls}:nosuch", 1,
             f"probe 'uprobe:{calls}:nosuch': no function 'nosuch' in {calls}")]:
        script = tmp_path / "probes.py"
        script.write_text(f"import os\n\ntracer.add_probe({spec!r})\n")
        res = cli("trace", "--script", script, "--", calls, 1)
        assert (res.returncode, res.stdout) == (status, "")
        assert res.stderr == f"ptrace-raw: script {script} failed at line 3: {why}\n"
    script = tmp_path / "reads.py"
    script.write_text("open('/no/such/file')\n")
    res = cli("trace", "--script", script, "--", calls, 1)
    assert res.stderr == (f"ptrace-raw: script {script} failed at line 1: FileNotFoundError: "
                          "[Errno 2] No such file or directory: '/no/such/file'\n")
    res = cli("trace", "--script", tmp_path / "none.py", "--", calls, 1)
    assert res.stderr == (f"ptrace-raw: cannot run script {tmp_path / 'none.py'}: "
                          "No such file or directory\n")


def _gone(pid):
    """Killed: no process, or a zombie not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("how, status", [("tracer.stop()", 0), ("sys.exit(3)", 3)],
                         ids=["stop", "exit"])
def test_a_script_handler_ends_the_trace(calls, tmp_path, how, status):
    """A handler ending the trace (bpftrace's exit()) ends it and kills the
    command, as Ctrl-C does.  stop() used to be undone by the next slice of
    the loop, and sys.exit left the command running untraced."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import sys\n"
        f"@tracer.probe('uprobe:{calls}:add')\n"
        "def on_add(hit):\n"
        "    print(hit.pid, flush=True)\n"
        f"    {how}\n")
    res = cli("trace", "--script", script, "--", calls, 10**9)
    assert res.returncode == status, res.stderr
    (pid,) = res.stdout.split()
    assert _gone(int(pid))


def test_a_failed_start_leaves_the_output_file_as_it_was(calls, tmp_path):
    """-o FILE was emptied at once, even when a bad probe then ended the
    run: now at the first line written."""
    out = tmp_path / "keep.txt"
    out.write_text("earlier results\n")
    res = cli("trace", f"uprobe:{calls}:nosuch", "-o", out, "--", calls, 1)
    assert res.returncode == 1 and out.read_text() == "earlier results\n"
    res = cli("trace", f"uprobe:{calls}:greet", "-o", out, "--", calls, 1)
    assert res.returncode == 0 and HIT_LINE.match(out.read_text())
    assert len(out.read_text().splitlines()) == 1


def test_an_output_that_fails_ends_the_trace(calls):
    """A full disk under -o: one error, exit 1, and the command is not left
    running (each batch's failure was told as a handler's error, and the
    trace went on to exit 0)."""
    res = cli("trace", f"uprobe:{calls}:add", "-o", "/dev/full", "--", calls, 10**9)
    assert res.returncode == 1
    assert res.stderr == "ptrace-raw: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_during_set_up_leaves_every_process_as_it_was(build, tmp_path, sig):
    """The signal comes while the tracer sets up (here from the script,
    run last in set-up, after the probes are set): the tracer must not die
    of it with int3s left in the process it attached to.  It ends the
    set-up: the attached process is left untouched and running, the
    spawned command killed, and the exit status is 128 + the signal."""
    exe = build("service.c")
    svc = start_service(exe)
    script = tmp_path / "signal.py"
    script.write_text(f"import os\nos.kill(os.getpid(), {int(sig)})\n")
    try:
        svc.stdout.readline()
        with open(f"/proc/{svc.pid}/maps") as f:
            text = [line.split()[0] for line in f if str(exe) in line and "r-xp" in line]
        before = text_bytes(svc.pid, *(int(x, 16) for x in text[0].split("-")))
        naptime = f"60.{os.getpid()}"  # a command line of this test's own
        res = cli("trace", "-p", svc.pid, "--script", script, f"uprobe:{exe}:handle",
                  "--", "sleep", naptime)
        assert res.returncode == 128 + sig and "Traceback" not in res.stderr, res.stderr
        assert text_bytes(svc.pid, *(int(x, 16) for x in text[0].split("-"))) == before
        assert tracer_pid(svc.pid) == 0 and ask(svc, "3") == "10"
        assert subprocess.run(["pgrep", "-f", f"^sleep {naptime}$"],
                              capture_output=True).stdout == b""
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


def test_duration_ends_tracing_with_the_summaries_and_status_zero(build):
    """-d, as BCC's funccount -d: the command, calling add for good, is killed
    at the end as Ctrl-C would kill it, and the counts are printed, but
    the exit status is 0; an attached process is left running untouched."""
    calls = build("calls.c")
    res = cli("trace", "-d", "0.3", "--count", "--no-inline", f"uprobe:{calls}:add", "--", calls,
              10 ** 15)
    assert res.returncode == 0 and res.stdout == "", res.stderr
    head, line = res.stderr.splitlines()[-2:]
    assert head.strip() == "hits  probe" and re.fullmatch(rf" *[1-9]\d*  uprobe:{calls}:add", line)
    exe = build("service.c")
    svc = start_service(exe)
    try:
        svc.stdout.readline()
        with open(f"/proc/{svc.pid}/maps") as f:
            text = [line.split()[0] for line in f if str(exe) in line and "r-xp" in line]
        span = [int(x, 16) for x in text[0].split("-")]
        before = text_bytes(svc.pid, *span)
        res = cli("trace", "-p", svc.pid, "--duration", "0.2", "--count", f"uprobe:{exe}:handle")
        assert res.returncode == 0 and res.stderr.splitlines()[-1] == f"   0  uprobe:{exe}:handle"
        assert text_bytes(svc.pid, *span) == before
        assert tracer_pid(svc.pid) == 0 and ask(svc, "3") == "10"
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "int3"])
def test_interval_summaries_are_each_intervals_own_and_add_up_to_every_hit(calls, inline):
    """-i, as BCC's funccount -i: a summary every interval, and the last
    part interval's at the end, each under its time; an inline count keeps
    counting from the start in the tracee, so each interval shows what came
    since the last.  However the intervals fall, they add up to every call."""
    n = 100_000_000 if inline else 20_000
    option = ("--count",) if inline else ("--count-by", "arg1")
    # intervals short beside the run even on a fast machine (an int3 hit
    # takes some microseconds, an inline one some nanoseconds)
    every = "0.02" if inline else "0.005"
    res = cli("trace", "-i", every, *option, f"uprobe:{calls}:add", "--json", "--", calls, n)
    assert res.returncode == 0, res.stderr
    objs = ndjson(res.stderr)
    if inline:
        assert objs[0]["message"].endswith("counted inline, in the tracee")
        objs = objs[1:]
    kinds = [o["type"] for o in objs]
    intervals = kinds.count("interval")
    assert intervals >= 2 and kinds == ["interval", "count_by" if not inline else "count"] \
        * intervals + ["exit"]
    times = [o["time_ns"] for o in objs if o["type"] == "interval"]
    assert times == sorted(times)
    hits = ([o["hits"] for o in objs if o["type"] == "count"] if inline else
            [sum(c["hits"] for c in o["counts"] if c["key"] == 1)
             for o in objs if o["type"] == "count_by"])
    assert sum(hits) == n
    # an interval longer than the run: only the summary at the end
    text = cli("trace", "-i", "30", "--count", f"uprobe:{calls}:add", "--", calls, 10).stderr
    assert re.fullmatch(r"(ptrace-raw: .*\n)?\[\d\d:\d\d:\d\d\]\nhits  probe\n  10  uprobe:.*:add\n",
                        text)


def test_a_script_probes_a_function_the_command_line_counts(calls, tmp_path):
    """--count of FUNC goes inline; a script probing FUNC too was refused
    ("lies in code an inline probe has patched"), as the inline patch went
    in first.  Set after the script's probes, the count finds the int3 and
    counts through it: both see every call."""
    script = tmp_path / "add.py"
    script.write_text(f"seen = []\n"
                      f"tracer.add_probe('uprobe:{calls}:add', lambda hit: seen.append(1))\n"
                      f"import atexit\natexit.register(lambda: print('script saw', len(seen)))\n")
    res = cli("trace", "--count", f"uprobe:{calls}:add", "--script", script, "--", calls, 300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "total=49090\nscript saw 300\n"
    assert res.stderr.splitlines()[-3:-1] == ["hits  probe", f" 300  uprobe:{calls}:add"]


def test_interval_counts_of_a_scripts_probe_add_up_to_every_hit(calls, tmp_path):
    """A script's probe counts its hits from the start, for good: each
    interval shows those since the last."""
    script = tmp_path / "square.py"
    script.write_text(f"tracer.add_probe('uprobe:{calls}:square', None)\n")
    res = cli("trace", "-i", "0.005", "--count", "--script", script, "--json", "--", calls, 20_000)
    objs = ndjson(res.stderr)
    assert res.returncode == 0 and [o["type"] for o in objs].count("interval") >= 2, res.stderr
    assert sum(o["hits"] for o in objs if o["type"] == "count") == 20_000


def test_a_duration_that_is_a_whole_number_of_intervals_ends_with_the_last_ones_summary(calls):
    """-d 0.5 -i 0.25 prints two summaries, as funccount -d 10 -i 5 does:
    the second interval's end is the duration's, and its summary the last,
    not one more before a last one that holds what came while detaching
    (both times binary fractions, which float sums reach exactly too)."""
    res = cli("trace", "-d", "0.5", "-i", "0.25", "--count", f"uprobe:{calls}:add", "--json",
              "--", calls, 10 ** 15)
    assert res.returncode == 0, res.stderr
    kinds = [o["type"] for o in ndjson(res.stderr) if o["type"] != "warning"]
    # one summary only if the tracer was held up past the first interval
    assert kinds in (["interval", "count"] * 2 + ["exit"], ["interval", "count", "exit"])


def test_interval_counts_of_a_pattern_by_int3_add_up_per_function(calls):
    """-i with --count of a pattern counted by int3 probes: each interval
    splits its hits by function, and the intervals after the first count
    too (they counted into a table the summary no longer read)."""
    n = 20_000
    res = cli("trace", "-i", "0.005", "--count", "--no-inline", f"uprobe:{calls}:[as]*", "--json",
              "--", calls, n)
    assert res.returncode == 0, res.stderr
    objs = ndjson(res.stderr)
    assert [o["type"] for o in objs].count("interval") >= 2
    counts = [o for o in objs if o["type"] == "count" and o["hits"]]
    assert {o["location"] for o in counts} == {"add", "square"}
    assert [sum(o["hits"] for o in counts if o["location"] == f) for f in ("add", "square")] \
        == [n, n]


def test_a_command_started_ignoring_signals_passes_that_on(calls):
    """Under nohup (SIGHUP ignored), or with SIGINT ignored by the shell
    that ran it in the background, the traced command ignores them too,
    as it would untraced: holding the stop signals must leave those be."""
    def ignore():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    res = cli("trace", "--count", f"uprobe:{calls}:add", "--", "grep", "SigIgn",
              "/proc/self/status", preexec_fn=ignore)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[1], 16) & 0b11 == 0b11


@pytest.mark.parametrize("command", [["list", "{calls}"], ["demo"]])
def test_list_and_demo_end_on_a_signal_as_usual(calls, monkeypatch, command):
    """Only ``trace`` sets probes, so only it holds the stop signals while
    it runs; ``list`` and ``demo`` die of them, or raise KeyboardInterrupt,
    as any program does."""
    from ptrace_raw import cli as cli_module
    from ptrace_raw.held_signals import HeldSignals

    seen = {}

    def record(opts):
        seen.update({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
        return 0

    monkeypatch.setattr(cli_module, f"_{command[0]}", record)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert cli_module.main([a.format(calls=calls) for a in command], held=HeldSignals()) == 0
    assert seen == before


#: ``python -c`` code that runs ``python -m ptrace_raw ARGS`` with a Ctrl-C
#: sent at the first import its __main__ makes: while the command's own
#: modules load, before it can hold the stop signals
_CTRL_C_AT_FIRST_IMPORT = """
import os, runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe()
        while frame is not None:
            if frame.f_code.co_filename.endswith(os.path.join("ptrace_raw", "__main__.py")):
                sys.meta_path.remove(self)
                print("Ctrl-C at", name, file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGINT)
                return None
            frame = frame.f_back
        return None

sys.meta_path.insert(0, CtrlC())
runpy.run_module("ptrace_raw", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_the_command_loads_ends_it_quietly(calls):
    """Ctrl-C in the first instants, while ptrace-raw loads its own modules:
    a KeyboardInterrupt traceback (and exit status -2).  It ends the run
    as a Ctrl-C during set-up does: status 130, the command never run, not
    a word but the hook's."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", _CTRL_C_AT_FIRST_IMPORT, "trace",
                          f"uprobe:{calls}:add", "--", str(calls), "1"],
                         capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert (res.returncode, res.stdout) == (130, "")
    assert re.fullmatch(r"Ctrl-C at ptrace_raw\.\w+\n", res.stderr), res.stderr


def test_ctrl_c_leaves_a_stuck_script(calls, tmp_path):
    """A script runs with Ctrl-C raising KeyboardInterrupt as usual, so one
    that never returns can still be left (the command is killed)."""
    script = tmp_path / "stuck.py"
    script.write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                      "time.sleep(120)\n")
    res = cli("trace", "--script", script, f"uprobe:{calls}:add", "--", calls, 2)
    assert res.returncode == 130 and res.stdout == "" and "Traceback" not in res.stderr


def test_follow_forks(build):
    exe = build("cli_child.c")
    followed = cli("trace", f"uprobe:{exe}:work", "--args", "1", "--json", "-f", "--", exe, 0, 2)
    hits = hits_of(ndjson(followed.stderr))
    assert [h["args"] for h in hits] == [[1], [100], [101]]
    assert len({h["pid"] for h in hits}) == 3
    alone = cli("trace", f"uprobe:{exe}:work", "--json", "--", exe, 0, 2)
    assert len(hits_of(ndjson(alone.stderr))) == 1 and alone.stdout == "done 3\n"


# -- exit status ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, expected", [(0, 0), (3, 3), (-signal.SIGABRT, 128 + 6),
                                              (-signal.SIGSEGV, 128 + 11)])
def test_the_commands_exit_status_becomes_ours(status, expected):
    exe = build_c("cli_child.c")
    res = cli("trace", f"uprobe:{exe}:work", "--json", "-c", f"{exe} {status}")
    assert res.returncode == expected
    assert ndjson(res.stderr)[-1] == {"type": "exit", "status": expected}
    assert res.stdout == "done 3\n"


# -- Ctrl-C and broken pipes --------------------------------------------------------------------------

def _patched(pid, exe, func):
    """Whether ``func`` of ``exe`` in process ``pid`` starts with an int3."""
    mods = ModuleMap()
    mods.refresh(read_maps(pid))
    mod = mods.of_file(str(exe))[0]
    addr = mod.image.get_function(func).value + mod.bias
    return text_bytes(pid, addr, addr + 1) == b"\xcc"


def _wait_until(condition, what, limit=20.0):
    """Polls /proc-derived state, bounded."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_ctrl_c_on_an_attached_process_leaves_it_alive_and_intact(build, bits):
    exe = build("service.c")
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().startswith("ready")
        before = [m for m in read_maps(svc.pid) if m.is_exec and m.path.startswith("/")]
        text = {m.start: text_bytes(svc.pid, m.start, m.end) for m in before}
        tracer = cli_popen("trace", "-p", svc.pid, f"uprobe:{exe}:handle", "--count", "--hits",
                           stderr=subprocess.PIPE)
        _wait_until(lambda: _patched(svc.pid, exe, "handle"), "the probe to be set")
        assert ask(svc, "3") == "10"
        # a lone hit reaches a pipe within a second, not at exit
        assert select.select([tracer.stderr], [], [], 10)[0], "the hit line never came"
        assert HIT_LINE.match(tracer.stderr.readline())[5].startswith(" arg0=0x3 ")
        tracer.send_signal(signal.SIGINT)
        err = tracer.communicate(timeout=30)[1]
        assert tracer.returncode == 0, err
        assert err.splitlines() == ["hits  probe", f"   1  uprobe:{exe}:handle"]
        assert tracer_pid(svc.pid) == 0
        assert {m.start: text_bytes(svc.pid, m.start, m.end) for m in before} == text
        assert ask(svc, "4") == "17"
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)
    assert svc.returncode == 0


def test_a_signal_the_tracer_was_started_ignoring_does_not_end_the_trace(calls):
    """Under nohup, a closed terminal's SIGHUP must not end the trace, nor
    a Ctrl-C at the terminal one started from a script in the background
    (SIGINT ignored): set-up left them ignored, but each run() of the
    trace caught them anyway, and the first one ended it (exit 0, the
    process detached, its next calls not traced)."""
    exe = build_c("service.c", 64, ("-O0",))
    svc = start_service(exe)

    def ignore():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        assert svc.stdout.readline().startswith("ready")
        tracer = cli_popen("trace", "-p", svc.pid, f"uprobe:{exe}:handle",
                           stderr=subprocess.PIPE, preexec_fn=ignore)
        _wait_until(lambda: _patched(svc.pid, exe, "handle"), "the probe to be set")
        for n, sig in [(3, signal.SIGHUP), (4, signal.SIGINT), (5, None)]:
            assert ask(svc, str(n)) == str(n * n + 1)
            hit = HIT_LINE.match(tracer.stderr.readline())
            assert hit and hit[5].startswith(f" arg0={n:#x} "), f"no hit for {n}"
            if sig is not None:
                tracer.send_signal(sig)
        tracer.send_signal(signal.SIGTERM)
        assert tracer.wait(timeout=30) == 0, tracer.stderr.read()
        assert tracer_pid(svc.pid) == 0 and ask(svc, "6") == "37"
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


def test_ctrl_c_kills_a_spawned_command_and_prints_the_summary(build):
    exe = build("service.c")
    tracer = cli_popen("trace", f"uprobe:{exe}:handle", "--count", "--json", "--", exe,
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert ask(tracer, "5") == "ready 1"      # the service answers "ready" first
    assert tracer.stdout.readline().strip() == "26"
    tracer.send_signal(signal.SIGINT)
    # communicate() would close the service's stdin, and EOF ends it on its own
    assert tracer.wait(timeout=30) == 130
    err = tracer.stderr.read()
    tracer.stdin.close()
    assert ndjson(err)[-2:] == [{"type": "count", "probe": f"uprobe:{exe}:handle", "hits": 1},
                                {"type": "exit", "status": 130}]


def test_a_closed_pipe_ends_tracing_quietly(calls):
    tracer = cli_popen("trace", f"uprobe:{calls}:add", "-o", "/dev/stdout", "--", calls, 10 ** 7,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert HIT_LINE.match(tracer.stdout.readline())
    tracer.stdout.close()
    assert tracer.wait(timeout=30) == 128 + signal.SIGPIPE
    assert tracer.stderr.read() == ""


# -- list ---------------------------------------------------------------------------------------------

def test_list_functions_with_sizes(calls_bits, bits):
    res = cli("list", calls_bits)
    assert res.returncode == 0
    image = ElfImage.open(calls_bits)
    for name in ("add", "square", "greet", "fib", "main"):
        sym = image.get_function(name)
        assert re.search(rf"^    {sym.value:#0{2 + bits // 4}x}\s+{sym.size:#x}  {name}$",
                         res.stdout, re.M), name
    only = cli("list", calls_bits, "s*").stdout.splitlines()
    assert only[0] == f"{calls_bits} ({bits}-bit)" and any(line.endswith("  square") for line in only)
    assert not any(line.endswith("  add") for line in only)


@pytest.mark.skipif(not shutil.which("g++"), reason="needs g++ to build the C++ program")
def test_list_shows_and_matches_cpp_functions_demangled(tmp_path):
    program = tmp_path / "names"
    subprocess.run(["g++", "-O0", "-o", str(program), str(TRACEES / "dwarf_names.cpp")],
                   check=True)
    res = cli("list", program, "count_words*")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()[2:]
    symbol = line.split()[2]
    assert symbol.startswith("_Z11count_words")
    assert line.endswith(f"  {symbol}  ({demangle(symbol)})")
    assert demangle(symbol).startswith("count_words(std::map<")
    assert cli("list", program, symbol).stdout == res.stdout
    # the symbol is what a probe names
    assert cli("trace", "--count", f"uprobe:{program}:{symbol}", "--", program).returncode == 0


def test_list_usdt_markers_and_lines(build):
    exe = build("sdt_probes.c", flags=("-O0", *sdt_include_flags()))
    res = cli("list", exe, "sdt:*")
    assert "  usdt markers (3): address, provider:name, arguments" in res.stdout
    assert re.search(r"^    0x[0-9a-f]+ sdt:consts  -4@\$42 -4@\$-7 -1@\$-1$", res.stdout, re.M)
    assert "functions" not in res.stdout
    lines = cli("list", "--lines", exe, "sdt_probes.c").stdout.splitlines()
    assert lines[1] == "  source lines (1 file):"
    assert lines[2].startswith(f"    {TRACEES / 'sdt_probes.c'}: ")


def test_debug_file_directory_finds_a_stripped_programs_debug_file(calls, tmp_path):
    """--debug-file-directory says where separate debug files are, for
    list and trace alike: a stripped program's debug file there, found by
    build ID, gives its functions, lines and line probes back.  A
    directory that is not there is a usage error, not a silent miss."""
    bid = build_id(calls)
    debug_dir = tmp_path / "debug"
    program = split_debug(calls, tmp_path / "calls", debug_dir / ".build-id" / bid[:2] /
                          f"{bid[2:]}.debug", link=False)
    listed = cli("list", "--lines", "--debug-file-directory", debug_dir, program)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^    0x[0-9a-f]+ +0x[0-9a-f]+  square$", listed.stdout, re.M)
    assert f"    {TRACEES / 'calls.c'}: " in listed.stdout
    line = _line_of('total += greet("world", 3);')
    probe = f"uprobe:{program}:calls.c:{line}"
    res = cli("trace", "--count", "--json", "--debug-file-directory", debug_dir, probe, "--",
              program, 40)
    assert res.returncode == 0, res.stderr
    assert [(o["probe"], o["hits"]) for o in ndjson(res.stderr) if o["type"] == "count"] == \
        [(probe, 1)]
    res = cli("list", "--debug-file-directory", tmp_path / "nowhere", program)
    assert res.returncode == 2
    assert res.stderr == (f"ptrace-raw: --debug-file-directory: debug file directory "
                          f"{tmp_path / 'nowhere'} is not a directory\n")


def test_a_debug_file_refused_is_said_by_list_and_by_a_spec_it_leaves_empty(calls, tmp_path):
    """A stripped program whose .gnu_debuglink names another build's debug
    file: list showed nothing ("nothing to probe"), and a spec for one of
    its functions was refused before tracing with no word of the debug
    file, the one thing the user has to fix."""
    debug = tmp_path / "calls.debug"
    program = split_debug(calls, tmp_path / "calls", debug)
    other = build_c("calls.c", 64, ("-O2",))
    subprocess.run(["objcopy", "--only-keep-debug", str(other), str(debug)], check=True)
    why = f"{debug} does not match {program} (CRC 0x"
    listed = cli("list", program)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == f"{program} (64-bit)"
    assert listed.stdout.splitlines()[1].startswith(f"  note: {why}")
    res = cli("trace", f"uprobe:{program}:square", "--", program, 1)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"ptrace-raw: probe 'uprobe:{program}:square': no function "
                                 f"'square' in {program}")
    assert why in res.stderr and len(res.stderr.splitlines()) == 1


def test_a_32_bit_commands_library_specs_are_checked_against_its_libraries():
    """Specs are checked before the command starts, a library one against
    the loader's cache: for a 32-bit command that was the 64-bit libc, so
    a function only the 32-bit one has (vm86) was refused, and the notes
    of the 64-bit check contradicted those of the real install."""
    from ptrace_raw.libraries import resolve_binary
    libc32 = ElfImage.open(resolve_binary("libc", bits=32))
    if not libc32.has_function("vm86"):
        pytest.skip("this 32-bit libc has no vm86")
    exe = build_c("calls.c", 32, ("-O0", "-pthread"))
    res = cli("trace", "--count", "--no-inline", "uprobe:libc:vm86", "--", exe, 1)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[-2:] == ["hits  probe", "   0  uprobe:libc:vm86"]


def test_list_a_process_reads_every_mapped_file(build, bits):
    exe = build("service.c")
    svc = start_service(exe)
    try:
        svc.stdout.readline()
        res = cli("list", "-p", svc.pid, "handle")
        assert res.returncode == 0
        assert res.stdout.splitlines()[0] == f"{exe} ({bits}-bit)"
        everything = cli("list", "-p", svc.pid, "malloc").stdout
        assert re.search(rf"^/.*libc\.so\.6 \({bits}-bit\)$", everything, re.M)
        assert tracer_pid(svc.pid) == 0
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


# -- errors -------------------------------------------------------------------------------------------

def _reaped_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("args, status, message", [
    (["trace", "nocolon", "--", "true"], 2,
     "ptrace-raw: bad probe 'nocolon': expected [uprobe|uretprobe|usdt:]BIN:WHERE"),
    (["trace", "uprobe:{calls}:add", "--filter", "retval > 1", "--", "{calls}"], 2,
     "ptrace-raw: --filter 'retval > 1': retval is known at return probes only, not at "
     "uprobe:{calls}:add"),
    (["trace", "kprobe:do_sys_open", "--", "true"], 2,
     "ptrace-raw: bad probe 'kprobe:do_sys_open': kprobe probes are the kernel's; ptrace-raw "
     "traces user space (uprobe, uretprobe, usdt)"),
    (["trace", "uprobe:{calls}:nosuch", "--", "{calls}"], 1,
     "ptrace-raw: probe 'uprobe:{calls}:nosuch': no function 'nosuch' in {calls}"),
    (["trace", "uprobe:/no/such/file:f", "--", "true"], 1,
     "ptrace-raw: probe 'uprobe:/no/such/file:f': /no/such/file: no such file"),
    (["trace", "uprobe:{calls}:add", "-p", "{dead}"], 1,
     "ptrace-raw: cannot attach to pid {dead}: no such process"),
    (["trace", "uprobe:{calls}:add", "--", "/no/such/cmd"], 1,
     "ptrace-raw: cannot run '/no/such/cmd': no such file"),
    (["trace", "uprobe:{calls}:add", "--filter", "arg0 ==", "--", "{calls}"], 2,
     "ptrace-raw: --filter 'arg0 ==': invalid expression: invalid syntax"),
    (["trace", "uprobe:{calls}:add", "-d", "0", "--", "{calls}"], 2,
     "ptrace-raw: --duration: 0 is not a number of seconds above 0"),
    (["trace", "uprobe:{calls}:add", "-d", "nan", "--", "{calls}"], 2,
     "ptrace-raw: --duration: nan is not a number of seconds above 0"),
    (["trace", "uprobe:{calls}:add", "-i", "1", "--", "{calls}"], 2,
     "ptrace-raw: --interval: nothing to print every interval: give --count, --count-by, "
     "--latency or --hist"),
    (["trace", "uprobe:{calls}:add", "--count-by", "retval", "--", "{calls}"], 2,
     "ptrace-raw: --count-by 'retval': retval is known at return probes only, not at "
     "uprobe:{calls}:add"),
    (["trace", "uprobe:{calls}:add", "--count-by", "(arg0", "--", "{calls}"], 2,
     "ptrace-raw: --count-by '(arg0': invalid expression: '(' was never closed"),
    (["trace", "uprobe:{calls}:add", "--hist", "nosuch + 1", "--", "{calls}"], 2,
     ("ptrace-raw: --hist 'nosuch + 1': unknown name 'nosuch' (use arg0.., retval, pid, tid, "
      "comm, probe, func, ip, ustack, cstr, var, hit)")),
    (["trace", "uprobe:{calls}:add"], 2,
     "ptrace-raw: nothing to trace: give -p PID, -c CMD or -- CMD ARGS"),
    (["trace", "-p", "x", "uprobe:{calls}:add"], 2,
     "ptrace-raw: argument -p/--pid: invalid int value: 'x' (see 'ptrace-raw trace --help')"),
    (["trace", "uprobe:{calls}:add", "-c", "'"], 2,
     "ptrace-raw: -c \"'\": no closing quotation"),
    (["trace", "uprobe:{calls}:add", "--trace-out", "/no/such/dir/t.json", "--", "{calls}"], 1,
     "ptrace-raw: cannot write /no/such/dir/t.json: No such file or directory"),
    (["list", "/etc/passwd"], 1, "ptrace-raw: /etc/passwd is not an ELF file"),
    (["list", "/tmp"], 1, "ptrace-raw: /tmp is a directory"),
    (["trace", "uprobe:tests:f", "--", "true"], 1,
     "ptrace-raw: probe 'uprobe:tests:f': tests is a directory"),
    (["trace", "--count", "--latency", "{calls}:a*", "--", "{calls}"], 2,
     "ptrace-raw: --latency '{calls}:a*': needs one function, not a pattern"),
    (["trace", "uprobe:/dev/null:f", "--", "true"], 1,
     "ptrace-raw: probe 'uprobe:/dev/null:f': /dev/null is not a regular file"),
    (["list", "-p", "{dead}"], 1, "ptrace-raw: cannot list pid {dead}: no such process"),
])
def test_user_errors_are_one_line(calls, args, status, message):
    fill = {"calls": calls, "dead": _reaped_pid()}
    res = cli(*[a.format(**fill) for a in args])
    assert (res.returncode, res.stderr) == (status, message.format(**fill) + "\n")
    assert res.stdout == ""


def _until_zombie(pid):
    """Polls the process's state, bounded."""
    deadline = time.monotonic() + 30
    while not _gone(pid):
        assert time.monotonic() < deadline
        time.sleep(0.001)


def _attach_refused(spec, pid, why):
    res = cli("trace", spec, "-p", pid)
    assert (res.returncode, res.stderr) == (1, f"ptrace-raw: cannot attach to pid {pid}: {why}\n")


def test_attach_refuses_a_thread_id_and_a_zombie(calls):
    """-p with a thread's id attached that thread alone and labelled its
    hits with the thread id as pid; a zombie was "not permitted"."""
    threaded = subprocess.Popen(
        [sys.executable, "-c", "import sys, threading\n"
         "t = threading.Thread(target=sys.stdin.read, daemon=True); t.start()\n"
         "print(t.native_id, flush=True); t.join()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    zombie = subprocess.Popen(["true"])
    try:
        tid = int(threaded.stdout.readline())
        _attach_refused(f"uprobe:{calls}:add", tid, f"it is a thread of process "
                        f"{threaded.pid}, which is what can be attached to")
        _until_zombie(zombie.pid)
        _attach_refused(f"uprobe:{calls}:add", zombie.pid,
                        "it has exited (a zombie its parent has not reaped)")
    finally:
        threaded.communicate("")
        zombie.wait()


def test_attach_refuses_a_process_whose_main_thread_exited():
    """Its main thread is a zombie, but the process runs on: it is not
    "exited", as it was called for a while."""
    exe = build_c("leaderless.c", 64, ("-O0", "-pthread"))
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE)
    try:
        _until_zombie(proc.pid)  # the main thread's state
        _attach_refused(f"uprobe:{exe}:waiter", proc.pid, "its main thread has exited (the "
                        "others run on), and a process is attached through it")
    finally:
        proc.communicate(b"x")


def test_a_pid_given_twice_is_traced_once(build):
    """-p X -p X refused X as "already traced" by ourselves."""
    exe = build("service.c")
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().startswith("ready")
        tracer = cli_popen("trace", "-p", svc.pid, "-p", svc.pid, f"uprobe:{exe}:handle",
                           "--count", "--no-inline", stderr=subprocess.PIPE)
        _wait_until(lambda: _patched(svc.pid, exe, "handle"), "the probe to be set")
        assert ask(svc, "5") == "26"
        tracer.send_signal(signal.SIGINT)
        err = tracer.communicate(timeout=30)[1]
        assert tracer.returncode == 0, err
        assert err.splitlines() == ["hits  probe", f"   1  uprobe:{exe}:handle"]
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


def test_a_closed_stderr_does_not_stop_the_command(calls):
    """Started with 2>&-: nothing of ours can be shown, but the command
    runs, with our exit status its own (it never ran: an AttributeError
    at the first write ended the tracer)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "ptrace_raw", "trace", f"uprobe:{calls}:add",
                          "--", str(calls), "3"], stdout=subprocess.PIPE, text=True,
                         timeout=60, cwd=REPO, env=env, preexec_fn=lambda: os.close(2))
    assert (res.returncode, res.stdout) == (0, untraced(calls, 3))


def test_an_output_that_cannot_be_written_is_one_line(calls):
    res = cli("trace", "--count", f"uprobe:{calls}:add", "-o", "/dev/full", "--", calls, "5")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.endswith("ptrace-raw: cannot write the output: No space left on device\n")


def test_a_bad_probe_never_lets_the_command_run(calls):
    res = cli("trace", f"uprobe:{calls}:add", f"uprobe:{calls}:nosuch", "--", calls, 1)
    assert res.returncode == 1 and res.stdout == ""


def test_a_bad_probe_leaves_a_process_to_attach_to_untouched(build):
    """Every spec is checked before the tracer attaches: attaching and a
    first good probe would map areas for the tracer's code, which stay
    after the detach that the bad one causes."""
    exe = build("service.c")
    svc = start_service(exe)
    try:
        svc.stdout.readline()
        with open(f"/proc/{svc.pid}/maps") as f:
            before = f.read()
        res = cli("trace", "-p", svc.pid, f"uprobe:{exe}:handle", f"uprobe:{exe}:nosuch")
        assert (res.returncode, res.stderr) == (
            1, f"ptrace-raw: probe 'uprobe:{exe}:nosuch': no function 'nosuch' in {exe}\n")
        with open(f"/proc/{svc.pid}/maps") as f:
            assert f.read() == before
        assert tracer_pid(svc.pid) == 0 and ask(svc, "3") == "10"
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)


def test_debug_shows_the_traceback_and_json_reports_errors(calls):
    res = cli("trace", "--debug", f"uprobe:{calls}:nosuch", "--", calls)
    assert "Traceback" in res.stderr and res.stderr.endswith("no function 'nosuch' in "
                                                              f"{calls}\n")
    objs = ndjson(cli("trace", "--json", f"uprobe:{calls}:nosuch", "--", calls).stderr)
    assert objs == [{"type": "error", "message": f"probe 'uprobe:{calls}:nosuch': no function "
                                                 f"'nosuch' in {calls}"},
                    {"type": "exit", "status": 1}]


@pytest.mark.parametrize("args, message", [
    (["nocolon"], "bad probe 'nocolon': expected [uprobe|uretprobe|usdt:]BIN:WHERE"),
    (["uprobe:{calls}:add", "--filter", "arg0 =="],
     "--filter 'arg0 ==': invalid expression: invalid syntax"),
], ids=["spec", "filter"])
def test_json_reports_usage_errors_as_objects(calls, tmp_path, args, message):
    """A spec that does not parse (or a bad --filter) was a plain line
    under --json, where every other error is an "error" object and the
    "exit" one; with -o FILE the objects go there and the line to stderr."""
    args = [a.format(calls=calls) for a in args]
    message = message.format(calls=calls)
    res = cli("trace", "--json", *args, "--", calls, 1)
    assert (res.returncode, res.stdout) == (2, "")
    assert ndjson(res.stderr) == [{"type": "error", "message": message},
                                  {"type": "exit", "status": 2}]
    out = tmp_path / "out.ndjson"
    res = cli("trace", "--json", "-o", out, *args, "--", calls, 1)
    assert (res.returncode, res.stderr) == (2, f"ptrace-raw: {message}\n")
    assert ndjson(out.read_text()) == [{"type": "error", "message": message},
                                       {"type": "exit", "status": 2}]


def test_debug_goes_before_the_command_too(tmp_path):
    """``ptrace-raw --debug list ...`` was refused ("unrecognized
    arguments"): --debug is a global option, taken before the command as
    after it, tracebacks and all."""
    res = cli("--debug", "list", "/etc/passwd")
    assert res.returncode == 1 and "Traceback" in res.stderr
    assert res.stderr.endswith("\nptrace-raw: /etc/passwd is not an ELF file\n")
    failing = tmp_path / "failing.py"
    failing.write_text("raise ValueError('boom')\n")
    res = cli("--debug", "trace", "--script", failing, "--", "true")
    assert res.returncode == 1 and res.stderr.startswith("Traceback")
    assert res.stderr.endswith("ValueError: boom\n")
    assert "--debug" in cli("--help").stdout


def test_help_and_version():
    text = cli("trace", "--help").stdout
    for example in ("uprobe:BIN:FUNC ", "uprobe:BIN:FUNC+0x10", "uprobe:BIN:0x401136",
                    "uprobe:BIN:FUNC+*", "uprobe:BIN:str*", "uretprobe:BIN:FUNC",
                    "BIN:FUNC%return", "usdt:BIN:PROVIDER:NAME", "uprobe:BIN:FILE.c:LINE",
                    "-o FILE, else to stderr"):
        assert example in text
    assert cli("--version").stdout == "ptrace-raw 0.1.0\n"


def test_demo_shows_probe_hits_and_a_histogram():
    res = cli("demo")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "usdt:demo:demo:tick usdt_args=[0, " in out
    assert "greet() was called with ['ptrace-raw']" in out
    assert re.search(r"^avg = \d+ usecs, total: \d+ usecs, count: 600$", out, re.M)
    assert re.search(r"probe hits: -?[\d.]+ us per hit$", out, re.M)


def test_json_stays_json_when_a_count_falls_back_to_int3(bits, tmp_path):
    """--count on a libc IFUNC of a spawned command: the count waits for
    libc, and cannot patch the implementation the IFUNC selects (no sized
    symbol), so an int3 probe stands in for it then, once: every
    word we say about it (and about the IFUNC) must still be an NDJSON
    object, and the calls are counted once each.  An empty debug file
    directory keeps libc's symbols its own (libc6-dbg's .symtab sizes the
    implementation)."""
    exe = build_c("ifuncs.c", bits, ("-O0", "-fno-builtin"))
    res = cli("trace", "--count", "--json", "--debug-file-directory", tmp_path,
              "uprobe:libc:memrchr", "--", exe, 3)
    assert res.returncode == 0 and res.stdout == untraced(exe, 3)
    objs = ndjson(res.stderr)
    assert objs[-1] == {"type": "exit", "status": 0}
    fell_back = any(o["type"] == "warning" and "cannot run inline" in o["message"]
                    for o in objs)
    counts = [o["hits"] for o in objs if o["type"] == "count"]
    assert counts == [3] and fell_back


def test_a_glob_over_libc_says_each_note_once(calls_bits, bits):
    """``libc:*`` counted: the inline attempt resolves the glob, then the
    int3 probe standing in for it (some libc function is too short to
    patch) resolves it again, and each said the IFUNC notes.  On i386 the
    out-of-line area mapped for its thousands of sites above 2 GiB read
    as a negative address, and writing there was a traceback."""
    res = cli("trace", "--count", "libc:*", "--", calls_bits, 3)
    assert (res.returncode, res.stdout) == (0, untraced(calls_bits, 3)), res.stderr
    lines = res.stderr.splitlines()
    assert any(": IFUNC, " in line for line in lines)
    assert [line for line in lines if lines.count(line) > 1] == []


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "int3"])
def test_count_of_a_pattern_has_a_line_per_function(calls_bits, inline):
    """``--count 'PROG:[asg]*'`` printed one total for the pattern; now, as
    funccount, a line per function it matched that was called, fewest hits
    first, each named as the spec of that function alone.  A probe on one
    function keeps its line.  In JSON the pattern stays "probe" and the
    function is its "location"."""
    extra = () if inline else ("--no-inline",)
    pattern = f"{calls_bits}:[asg]*"
    probes = [pattern, f"uretprobe:{calls_bits}:fi*", f"uprobe:{calls_bits}:fib"]
    res = cli("trace", "--count", *extra, *probes, "--", calls_bits, 5)
    assert (res.returncode, res.stdout) == (0, untraced(calls_bits, 5)), res.stderr
    lines = res.stderr.splitlines()
    assert (f"ptrace-raw: probe '{pattern}': counted inline, in the tracee" in lines) is inline
    assert lines[lines.index("hits  probe"):] == [
        "hits  probe", f"   1  {calls_bits}:greet", f"   5  {calls_bits}:add",
        f"   5  {calls_bits}:square", f" 177  uretprobe:{calls_bits}:fib",
        f" 177  uprobe:{calls_bits}:fib"]
    res = cli("trace", "--count", "--json", *extra, *probes, "--", calls_bits, 5)
    assert [o for o in ndjson(res.stderr) if o["type"] == "count"] == [
        {"type": "count", "probe": pattern, "location": "greet", "hits": 1},
        {"type": "count", "probe": pattern, "location": "add", "hits": 5},
        {"type": "count", "probe": pattern, "location": "square", "hits": 5},
        {"type": "count", "probe": probes[1], "location": "fib", "hits": 177},
        {"type": "count", "probe": probes[2], "hits": 177}]


def test_count_of_a_pattern_falling_back_to_int3_still_splits(tmp_path):
    """An inline count that falls back to an int3 probe (x86_64 glibc's
    IFUNC implementations have no sized symbol to patch safely, unless
    libc's debug file is read: none is, here) counts each function too;
    the IFUNC goes by its own name, not by its implementation's."""
    exe = build_c("ifuncs.c", 64, ("-O0", "-fno-builtin"))
    res = cli("trace", "--debug-file-directory", str(tmp_path), "--count", "libc:memr*",
              "libc:wcsl*", "--", exe, 3)
    assert (res.returncode, res.stdout) == (0, untraced(exe, 3)), res.stderr
    lines = res.stderr.splitlines()
    assert any("libc:memr*' cannot run inline" in line for line in lines)
    assert lines[lines.index("hits  probe"):] == ["hits  probe", "   3  libc:memrchr",
                                                  "   3  libc:wcslen"]


def test_count_of_a_pattern_names_an_alias_as_users_know_it(calls_bits):
    """printf and _IO_printf are one function of glibc, and a pattern
    matching both named the count line after the first by address and
    name, _IO_printf: now after the one a backtrace shows too."""
    res = cli("trace", "--count", "libc:*printf", "--", calls_bits, 1)
    assert res.stderr.splitlines()[-2:] == ["hits  probe", "   1  libc:printf"]


def test_count_of_a_marker_pattern_has_a_line_per_marker(build):
    exe = build("sdt_probes.c", flags=("-O0", *sdt_include_flags()))
    res = cli("trace", "--count", f"usdt:{exe}:sdt:*", "--", exe)
    lines = res.stderr.splitlines()
    assert lines[lines.index("hits  probe"):] == [
        "hits  probe", f"   1  usdt:{exe}:sdt:consts", f"   1  usdt:{exe}:sdt:data",
        f"   1  usdt:{exe}:sdt:tick"]


def test_count_gives_the_same_numbers_whatever_the_order_of_its_probes(calls):
    """--count sets its inline probes after the int3 ones.  Set first, an
    inline patch at a function's entry made a return probe there fail, and
    hid the instructions it covers from FUNC+*."""
    specs = [f"uprobe:{calls}:square", f"uretprobe:{calls}:square", f"uprobe:{calls}:square+*"]
    tables = []
    for order in (specs, specs[::-1]):
        res = cli("trace", "--count", *order, "--", calls, "50")
        assert res.returncode == 0, res.stderr
        lines = res.stderr.splitlines()
        table = lines[lines.index("hits  probe") + 1:]
        tables.append({probe: int(hits) for hits, probe in (line.split() for line in table)})
    assert tables[0] == tables[1]
    assert tables[0][specs[0]] == tables[0][specs[1]] == 50
    assert tables[0][specs[2]] % 50 == 0 and tables[0][specs[2]] > 3 * 50


def test_probes_and_options_mix_in_any_order(calls):
    res = cli("trace", f"uprobe:{calls}:add", "--count", f"uprobe:{calls}:square",
              "--no-inline", "--", calls, "7")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines[lines.index("hits  probe") + 1:] == [f"   7  uprobe:{calls}:add",
                                                      f"   7  uprobe:{calls}:square"]


def test_hits_shows_every_return_that_latency_times(calls):
    res = cli("trace", "--latency", f"{calls}:square", "--hits", "--", calls, "4")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if HIT_LINE.match(line)]
    assert [HIT_LINE.match(line).group(4) for line in lines] == [f"uretprobe:{calls}:square"] * 4
    assert all(re.search(r"retval=0x[0-9a-f]+ \(\d+\.\d{3} us\)$", line) for line in lines)
    assert "count: 4" in res.stderr


def test_a_failed_run_leaves_an_existing_trace_out_file_alone(calls, tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_text("precious\n")
    res = cli("trace", "--trace-out", kept, f"uprobe:{calls}:nosuch", "--", calls)
    assert res.returncode == 1 and kept.read_text() == "precious\n"
