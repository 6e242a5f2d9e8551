"""USDT markers, source-line probes, DWARF backtraces and named arguments
on live tracees, 64- and 32-bit, -O0 and -O2; the same from the separate
debug file of a stripped program or library."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from ptrace_raw.elf import ElfImage
from ptrace_raw.errors import ProbeError
from ptrace_raw.lines import line_sites
from ptrace_raw.tracer import Tracer
from tests.conftest import TRACEES, build_c
from tests.elf.binutils import build_id, run, sdt_include_flags, split_debug


def _line_of(marker, source="markers.c"):
    for number, text in enumerate((TRACEES / source).read_text().splitlines(), 1):
        if f"LINE: {marker}" in text:
            return number
    raise LookupError(marker)


def _def_line(func):
    for number, text in enumerate((TRACEES / "markers.c").read_text().splitlines(), 1):
        if f" {func}(" in text and text.startswith("__attribute__"):
            return number
    raise LookupError(func)


@pytest.fixture
def markers(build):
    def _build(opt="-O0", extra=()):
        return build("markers.c", flags=(opt, *extra, *sdt_include_flags()))
    return _build


def _run(exe, n, probes, debug_dirs=None, **kw):
    r, w = os.pipe()
    with Tracer(debug_dirs=debug_dirs) as t:
        proc = t.spawn([str(exe), str(n)], stdout=w)
        os.close(w)
        made = [t.add_probe(spec, fn, **kw) for spec, fn in probes]
        t.run()
    with os.fdopen(r) as f:
        out = f.read()
    return out, proc, made


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_usdt_arguments_and_semaphores(markers, opt):
    exe = markers(opt)
    untraced = subprocess.run([str(exe), "6"], capture_output=True, text=True).stdout
    assert "enabled=0" in untraced
    plain, tick = [], []
    out, proc, (p1, p2) = _run(exe, 6, [
        (f"usdt:{exe}:app:plain", lambda h: plain.append(tuple(h.usdt_args))),
        (f"usdt:{exe}:app:tick", lambda h: tick.append((h.usdt_args[0],
                                                        h.read_cstring(h.usdt_args[1])))),
    ])
    assert proc.exit_code == 0
    assert out == untraced.replace("enabled=0", "enabled=6")  # the semaphore was raised
    assert plain == [(i, -i) for i in range(6)]
    assert tick == [(i, "tick") for i in range(6)]


def test_probe_removed_after_exec_leaves_the_new_images_semaphores(bits):
    """Two copies of one non-PIE program have their markers and semaphores
    at the same addresses.  The first execs the second; a probe on the
    first's marker is removed there, from the second's probe handler: the
    second's semaphore, which its own probe raised, must stay raised."""
    flags = ("-O0", "-no-pie", *sdt_include_flags())
    first, second = (build_c("markers.c", bits, flags, name=f"markers_{n}") for n in "ab")
    assert first.read_bytes() == second.read_bytes()  # one program: the same addresses
    untraced = subprocess.run([str(second), "6"], capture_output=True, text=True).stdout
    ticks = {"first": 0, "second": 0}
    r, w = os.pipe()
    with Tracer() as t:
        proc = t.spawn([str(first), "3", str(second), "6"], stdout=w)
        os.close(w)
        old = t.add_probe(f"usdt:{first}:app:tick", lambda h: ticks.update(first=ticks["first"] + 1))

        def on_second(hit):
            if not ticks["second"] and not old.removed:
                t.remove_probe(old)
            ticks["second"] += 1
        t.add_probe(f"usdt:{second}:app:tick", on_second)
        t.run()
    with os.fdopen(r) as f:
        first_out, second_out = f.read().splitlines()
    assert proc.exit_code == 0
    assert ticks == {"first": 3, "second": 6}
    assert second_out == untraced.strip().replace("enabled=0", "enabled=6")
    assert "enabled=3" in first_out


def test_unknown_usdt_marker_names_the_ones_there(markers):
    exe = markers()
    with Tracer() as t:
        t.spawn([str(exe)], stdout=subprocess.DEVNULL)
        with pytest.raises(ProbeError, match=r"no USDT marker app:nope .* app:plain"):
            t.add_probe(f"usdt:{exe}:app:nope")
        t.run()


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_line_probe_fires_once_per_iteration(markers, opt):
    exe = markers(opt)
    line = _line_of("loop_body")
    out, proc, (probe,) = _run(exe, 37, [(f"uprobe:{exe}:markers.c:{line}", None)])
    assert proc.exit_code == 0 and probe.hits == 37
    (note,) = probe.notes
    count, _, where = note.partition(" site")
    assert re.fullmatch(rf"s?: (markers\.c:{line} in main at 0x[0-9a-f]+(, |$))+", where)
    assert where.count(" at 0x") == int(count)


def test_line_without_code_names_its_neighbours(markers):
    exe = markers()
    with Tracer() as t:
        t.spawn([str(exe)], stdout=subprocess.DEVNULL)
        with pytest.raises(ProbeError, match=r"markers\.c:2\b.*line"):
            t.add_probe(f"uprobe:{exe}:markers.c:2")
        t.run()


@pytest.mark.parametrize("opt", [("-O0",), ("-O2", "-fomit-frame-pointer")])
def test_backtrace_through_qsort_without_frame_pointers(markers, opt):
    exe = markers(opt[0], opt[1:])
    stacks, lines = [], []

    def on_compare(hit):
        frames = hit.backtrace()
        stacks.append([f.symbol for f in frames])
        lines.append([(os.path.basename(f.file), f.line) if f.file else None for f in frames])

    _run(exe, 1, [(f"uprobe:{exe}:compare", on_compare)])
    assert stacks
    stack = stacks[0]
    assert stack[0] == "compare"
    ours = [s for s in stack if s in ("compare", "level3", "level2", "level1", "main")]
    assert ours == ["compare", "level3", "level2", "level1", "main"], stack
    assert stack.index("level3") > 1  # libc's sort frames sit between
    first = _def_line("compare")
    assert lines[0][0][0] == "markers.c" and first <= lines[0][0][1] <= first + 3  # in compare
    main_frame = [w for w in lines[0] if w and w[0] == "markers.c"][-1]
    assert main_frame == ("markers.c", _line_of("level1_call"))


def test_backtrace_shows_real_return_address_under_a_return_probe(markers):
    exe = markers()
    stacks = []
    _run(exe, 1, [(f"uretprobe:{exe}:level2", None), (f"uretprobe:{exe}:level3", None),
                  (f"uprobe:{exe}:compare", lambda h: stacks.append(
                      [f.symbol for f in h.backtrace()]))])
    ours = [s for s in stacks[0] if s in ("compare", "level3", "level2", "level1", "main")]
    assert ours == ["compare", "level3", "level2", "level1", "main"]


def test_backtraces_in_two_processes_of_one_program_name_each_ones_own_addresses(build):
    """A backtrace keeps the frames it named (symbol, source line) by
    image and file address: two processes of one PIE, loaded at different
    addresses, must each see their own pcs, the same names and lines."""
    exe = build("callers.c", flags=("-O0", "-g"))
    seen = {}

    def on_leaf(hit):
        seen.setdefault(hit.pid, []).append((hit.ip, [(f.pc, f.symbol, f.line)
                                                      for f in hit.backtrace()]))

    with Tracer() as t:
        procs = [t.spawn([str(exe)], stdout=subprocess.DEVNULL) for _ in range(2)]
        t.add_probe(f"uprobe:{exe}:leaf", on_leaf)
        t.run()
    assert [p.exit_code for p in procs] == [0, 0]
    (ip0, first), (ip1, second) = (seen[p.pid][0] for p in procs)
    assert ip0 != ip1, "ASLR gave both processes one load address"
    assert first[0][0] == ip0 and second[0][0] == ip1
    assert [f[0] - ip0 for f in first[:3]] == [f[0] - ip1 for f in second[:3]]
    assert [f[1:] for f in first] == [f[1:] for f in second]
    assert [f[1] for f in first[:3]] == ["leaf", "a", "main"] and first[1][2] is not None


def _signal_backtrace(build, mode, flags):
    """The backtrace at in_handler in tracees/sigframes.c, run in ``mode``:
    main -> outer -> interrupted, whose store faults -> (SIGSEGV) the
    handler -> in_handler."""
    exe = build("sigframes.c", flags=flags)
    stacks = []
    out, proc, _ = _run(exe, mode, [(f"uprobe:{exe}:in_handler",
                                     lambda h: stacks.append(h.backtrace()))])
    assert proc.exit_code == 0 and out == "stored 1\n"
    (frames,) = stacks
    return exe, frames


@pytest.mark.parametrize("mode", ["plain", "siginfo", "altstack"])
@pytest.mark.parametrize("opt", [("-O0",), ("-O2", "-fomit-frame-pointer")],
                         ids=["O0", "O2-nofp"])
def test_backtrace_goes_from_a_signal_handler_to_the_interrupted_code(build, bits, mode, opt):
    """Below a signal handler come the signal trampoline and then the code
    the signal interrupted, its callers up to main.  On i386 glibc lets the
    kernel return through the vDSO's sigreturn (rt_sigreturn for an
    SA_SIGINFO handler), which only the vDSO's own CFI describes, and the
    vDSO has no file: the walk fell back to frame pointers there, losing
    the interrupted frame (or, without frame pointers, everything after).
    On x86_64 the trampoline is glibc's __restore_rt, with CFI in libc."""
    _, frames = _signal_backtrace(build, mode, opt)
    names = [f.symbol for f in frames]
    assert names[:2] == ["in_handler", "on_plain" if mode == "plain" else "on_siginfo"], names
    trampoline = frames[2]
    if bits == 32:
        expected = "__kernel_sigreturn" if mode == "plain" else "__kernel_rt_sigreturn"
        assert (trampoline.module, trampoline.symbol) == ("[vdso]", expected)
    else:
        assert os.path.basename(trampoline.module).startswith("libc.so")
    assert names[3:6] == ["interrupted", "outer", "main"], names


def test_frame_a_signal_interrupted_is_at_the_interrupted_instruction(build, bits):
    """A frame a signal interrupted is at the instruction that was to run
    (here the faulting store, the first of its line), not at a return
    address after a call: its source line was looked up at pc - 1 as a
    caller's is, which gave the line before."""
    exe, frames = _signal_backtrace(build, "siginfo", ("-O0",))
    frame = frames[3]
    assert frame.symbol == "interrupted"
    line = _line_of("fault", "sigframes.c")
    (site,) = line_sites(exe, "sigframes.c", line)
    assert ElfImage.open(exe).get_function("interrupted").value + frame.offset == site.address
    assert (os.path.basename(frame.file), frame.line) == ("sigframes.c", line)


def test_a_caller_whose_last_instruction_calls_a_noreturn_function_is_named(build, bits):
    """last_call's call to fail_now is its last instruction, so the return
    address is after's first byte: the caller must be named from the call
    (pc - 1), as its line already is, not from the return address."""
    exe = build("noreturn.c", flags=("-O2", "-falign-functions=1"))
    image = ElfImage.open(exe)
    last = image.get_function("last_call")
    assert last.value + last.size == image.get_function("after").value
    stacks = []
    out, proc, _ = _run(exe, 1, [(f"uprobe:{exe}:leaf", lambda h: stacks.append(h.backtrace()))])
    assert (out, proc.exit_code) == ("6\n", 7)
    (frames,) = stacks
    assert [f.symbol for f in frames[:4]] == ["leaf", "fail_now", "last_call", "main"]
    assert frames[2].offset == last.size


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_named_arguments_from_dwarf(markers, opt):
    exe = markers(opt)
    seen = []
    _run(exe, 1, [(f"uprobe:{exe}:typed", lambda h: seen.append((h.args, h.format_args(strings=True))))])
    args, text = seen[0]
    assert list(args) == ["count", "mask", "label", "ptr"]
    assert args["count"] == -3 and args["mask"] == 0xFFFFFFF0
    assert text["label"].endswith('"xyz"')
    assert text["ptr"].startswith("0x")


def test_named_arguments_the_abi_places_elsewhere_are_unknown(markers, bits):
    """Parameters were read as integer argument i, whatever their type: a
    float came out as the next int's register, a long long on i386 as its
    low half, and everything after a struct by value from the wrong slot.
    What the ABI puts where we do not read is None ("?"), the rest right;
    past the entry (a line probe) nothing is told."""
    exe = markers("-O0")
    seen = []
    _run(exe, 1, [(f"uprobe:{exe}:mixed+*", lambda h: seen.append((h.args, h.format_args())))])
    (args, text), *later = seen
    if bits == 64:   # floats in xmm registers; everything after the struct unknown
        assert args == {"f": None, "q": -5000000000, "d": None, "k": -4, "by_value": None,
                        "last": None}
    else:            # all on the stack, in whole 4-byte slots
        assert args == {"f": args["f"], "q": -5000000000, "d": args["d"], "k": -4,
                        "by_value": None, "last": 11}
        assert (text["f"], text["d"]) == ("1.5", "-2.25")
    assert text["by_value"] == "?" and later and all(a is None for a, _ in later)


# -- separate debug files ---------------------------------------------------------
# A stripped program or library whose DWARF and .symtab were moved out, as
# Debian's -dbgsym packages ship them.  None was looked for: a line probe
# on it failed with "no line information", its arguments had no names,
# a function only .symtab named could not be probed, and where CFI was
# only in .debug_frame a backtrace stopped at the first frame.  Each test
# gives the tracer a temporary debug file directory.

def _split(tmp_path, exe, how, name="prog", compress=False):
    """(stripped copy of ``exe``, debug file directory, debug file), the
    debug file where ``how`` says gdb looks: by build ID under the
    directory, or named by .gnu_debuglink and next to the copy, in its
    .debug/, or under the directory by the copy's own directory."""
    debug_dir = tmp_path / "debug"
    debug_dir.mkdir()
    program = tmp_path / "bin" / name
    if how == "build-id":
        bid = build_id(exe)
        debug = debug_dir / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    else:
        where = {"same-dir": program.parent, ".debug": program.parent / ".debug",
                 ".debug/NAME": program.parent / ".debug",
                 "debug-dir": debug_dir / os.path.realpath(program.parent).lstrip("/")}[how]
        # .debug/NAME: the debug file has the program's own name, so the
        # first place the link sends gdb to is the program itself.
        debug = where / (name if how == ".debug/NAME" else f"{name}.debug")
    split_debug(exe, program, debug, link=how != "build-id", compress=compress)
    return program, debug_dir, debug


@pytest.mark.parametrize("how", ["same-dir", ".debug", ".debug/NAME", "debug-dir", "build-id"])
def test_stripped_program_reads_its_separate_debug_file(markers, tmp_path, how):
    program, debug_dir, _ = _split(tmp_path, markers(), how)
    line = _line_of("loop_body")
    seen = []
    out, proc, (body, typed) = _run(program, 7, [
        (f"uprobe:{program}:markers.c:{line}", None),
        (f"uprobe:{program}:typed", lambda h: seen.append((h.args, h.format_args(strings=True)))),
    ], debug_dirs=str(debug_dir))
    assert proc.exit_code == 0 and body.hits == 7 and typed.hits == 1
    (args, text), = seen
    assert args == {"count": -3, "mask": 0xFFFFFFF0, "label": args["label"], "ptr": args["ptr"]}
    assert text["label"].endswith('"xyz"')
    assert not [n for n in body.notes + typed.notes if "not used" in n]


def test_an_unreadable_debug_file_is_a_note_not_a_traceback(markers, tmp_path):
    """A debug link to a file the tracer may not read (mode 000, and root
    without the capability that overrides it, as a user tracing their own
    program meets with another user's file): its CRC check raised
    PermissionError out of every spec and of list."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        pytest.skip("root reads any file, and setpriv is missing to drop that")
    program, _, debug = _split(tmp_path, markers("-O0"), "same-dir")
    os.chmod(debug, 0)
    check = ("from ptrace_raw.errors import ProbeError\n"
             "from ptrace_raw.tracer import Tracer\n"
             "try:\n"
             f"    Tracer().check_probe('uprobe:{program}:markers.c:1')\n"
             "except ProbeError as exc:\n"
             "    print(exc)\n")
    drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    res = subprocess.run([*drop, sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.stderr == ""
    assert res.stdout == (f"probe 'uprobe:{program}:markers.c:1': {program} has no line "
                          f"information for markers.c ({debug} cannot be read (Permission "
                          f"denied): not used)\n")


def test_static_function_of_a_stripped_program_is_named_by_its_debug_file(build, tmp_path):
    """A static function is in .symtab only, which strip removes: the
    debug file's .symtab names it (both of statics.c's helpers)."""
    exe = build("statics.c", libs=(str(TRACEES / "statics_other.c"),))
    program, debug_dir, _ = _split(tmp_path, exe, "same-dir")
    xs = []
    out, proc, (helper,) = _run(program, 0, [(f"uprobe:{program}:helper",
                                              lambda h: xs.append(h.args["x"]))],
                                debug_dirs=str(debug_dir))
    assert out == "sum=12\n" and proc.exit_code == 0
    assert helper.hits == 6 and sorted(xs) == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("how", ["same-dir", "build-id"])
def test_debug_file_of_another_build_is_refused_with_a_note(markers, tmp_path, how):
    """Another build's debug file where this one's should be (its CRC is
    not the one .gnu_debuglink records, or its build ID is not the
    program's): using it would put probes at its build's addresses.  A
    probe that then names nothing says why in its error, which is all a
    spec checked before tracing says; one that resolves says it as a
    note."""
    program, debug_dir, debug = _split(tmp_path, markers("-O0"), how)
    run("objcopy", "--only-keep-debug", markers("-O2"), debug)
    line = _line_of("loop_body")
    why = (r"does not match \S+ \(CRC 0x[0-9a-f]{8}, its \.gnu_debuglink says 0x[0-9a-f]{8}\)"
           if how == "same-dir" else r"is not the debug file of \S+ \(build ID \w+, not \w+\)")
    said = []
    with Tracer(debug_dirs=str(debug_dir), on_message=said.append) as t:
        t.spawn([str(program)], stdout=subprocess.DEVNULL)
        with pytest.raises(ProbeError) as refused:
            t.check_probe(f"uprobe:{program}:markers.c:{line}")
        assert re.fullmatch(rf"probe '\S+': \S+ has no line information for markers\.c "
                            rf"\(\S+ {why}: not used\)", str(refused.value))
        with pytest.raises(ProbeError, match=r"has no line information for markers\.c"):
            t.add_probe(f"uprobe:{program}:markers.c:{line}")
        main = ElfImage.open(markers("-O0")).get_function("main").value
        t.add_probe(f"uprobe:{program}:{main:#x}")
        t.run()
    (note,) = [m for m in said if os.path.realpath(debug) in m]
    assert re.fullmatch(rf"probe '\S+': \S+ {why}: not used", note)


_DWZ_SOURCE = """#include <stdio.h>
struct point { int x, y; };
__attribute__((noinline)) int %s(int count, struct point *pt, const char *label)
{ return count + pt->x + (int)label[0]; }
int main(int argc, char **argv)
{ struct point p = {1, 2}; printf("%%d\\n", %s(argc, &p, "xyz")); return 0; }
"""


def test_named_arguments_through_a_dwz_supplementary_file(tmp_path, bits):
    """dwz (run on Debian's -dbgsym files) moves DIEs two programs share,
    here struct point, into a supplementary file that .gnu_debugaltlink
    names; a DIE referring into it made hit.args raise NotImplementedError
    (pyelftools was not given a way to open that file)."""
    if shutil.which("dwz") is None:
        pytest.skip("dwz is not installed")
    programs = []
    for name in ("first", "second"):
        (tmp_path / f"{name}.c").write_text(_DWZ_SOURCE % (name, name))
        run("gcc", f"-m{bits}", "-g", "-O0", "-o", tmp_path / name, tmp_path / f"{name}.c")
        programs.append(tmp_path / name)
    common = tmp_path / "common.debug"
    run("dwz", "-m", common, "-M", common, *programs)
    seen = []
    out, proc, _ = _run(programs[0], 1, [(f"uprobe:{programs[0]}:first",
                                          lambda h: seen.append((h.args["count"],
                                                                 h.read_cstring(h.args["label"]))))])
    assert (out, proc.exit_code) == ("123\n", 0)
    assert seen == [(2, "xyz")]


def test_a_debug_file_pyelftools_cannot_inflate_is_said_not_a_traceback(markers, tmp_path):
    """A debug file compressed with zstd, which this pyelftools cannot
    inflate: line probes said nothing useful but a traceback
    (ELFCompressionError), and so did every backtrace.  Now a line probe
    says why it has no lines, and backtraces walk .eh_frame."""
    program, debug_dir, debug = _split(tmp_path, markers("-O0"), "build-id")
    try:
        run("objcopy", "--compress-debug-sections=zstd", debug)
    except subprocess.CalledProcessError:
        pytest.skip("objcopy cannot compress with zstd")
    with Tracer(debug_dirs=str(debug_dir)) as t:
        with pytest.raises(ProbeError, match=rf"has no line information for markers\.c \(the "
                                             rf"DWARF of {re.escape(str(debug))} cannot be read"):
            t.check_probe(f"uprobe:{program}:markers.c:{_line_of('loop_body')}")
    frames = []
    _run(program, 1, [(f"uprobe:{program}:compare", lambda h: frames.append(h.backtrace()))],
         debug_dirs=str(debug_dir))
    names = [f.symbol for f in frames[0]]
    assert [s for s in names if s in ("compare", "level3", "main")] == ["compare", "level3", "main"]


def test_backtrace_from_the_debug_frame_of_a_separate_debug_file(markers, tmp_path):
    """Built without unwind tables, the program's CFI is in .debug_frame,
    which strip moves to the debug file; without frame pointers nothing
    else can walk its frames.  The debug file is compressed, as Debian's
    are (a compressed .debug_frame was skipped even in the program)."""
    exe = markers("-O2", ("-fomit-frame-pointer", "-fno-asynchronous-unwind-tables",
                          "-fno-unwind-tables"))
    program, debug_dir, _ = _split(tmp_path, exe, "build-id", compress=True)
    frames = []
    _run(program, 1, [(f"uprobe:{program}:compare", lambda h: frames.append(h.backtrace()))],
         debug_dirs=str(debug_dir))
    names = [f.symbol for f in frames[0]]
    ours = [s for s in names if s in ("compare", "level3", "level2", "level1", "main")]
    assert ours == ["compare", "level3", "level2", "level1", "main"], names
    (main,) = [f for f in frames[0] if f.symbol == "main"]
    assert (os.path.basename(main.file), main.line) == ("markers.c", _line_of("level1_call"))


def test_stripped_library_reads_its_separate_debug_file(build, bits, tmp_path):
    lib = build_c("plugin.c", bits, ("-O2", "-shared", "-fPIC"), name="plugin.so")
    exe = build("libuser.c", flags=("-O0", "-fno-builtin"), libs=("-ldl",))
    plugin, debug_dir, _ = _split(tmp_path, lib, ".debug", name="plugin.so")
    xs = []
    r, w = os.pipe()
    with Tracer(debug_dirs=str(debug_dir)) as t:
        proc = t.spawn([str(exe), str(plugin), "4"], stdout=w)
        os.close(w)
        work = t.add_probe(f"uprobe:{plugin}:plugin_work", lambda h: xs.append(h.args))
        body = t.add_probe(f"uprobe:{plugin}:plugin.c:6")
        t.run()
    with os.fdopen(r) as f:
        assert f.read() == f"total={4 * 8 + sum(i * 10 + 1 for i in range(4))}\n"
    assert proc.exit_code == 0 and work.hits == body.hits == 4
    assert xs == [{"x": i} for i in range(4)]


def test_split_dwarf_is_said_to_be_unread(markers):
    """-gsplit-dwarf leaves a skeleton unit in the program and the DIEs in
    a .dwo file, which is not read: hit.args was None with nothing said,
    and a line's rows, which the DIEs group into one site per scope, were
    as many sites, also unsaid."""
    exe = markers("-O0", ("-gsplit-dwarf",))
    seen = []
    _, proc, (compare, body) = _run(exe, 1, [
        (f"uprobe:{exe}:compare", lambda h: seen.append(h.args)),
        (f"uprobe:{exe}:markers.c:{_line_of('loop_body')}", None)])
    assert proc.exit_code == 0 and len(seen) == compare.hits > 1
    assert all(args is None for args in seen)
    (note,) = [n for n in compare.notes if "split DWARF" in n]
    assert re.search(r"\.dwo are described there, which is not read", note)
    (note,) = [n for n in body.notes if "split DWARF" in n]
    assert re.search(r"\.dwo\) is not read: each address of the line is a site", note)


def _vars_at_lines(exe, n, markers, source="locals.c"):
    """[(marker, hit.vars, hit.format_vars(strings=True))] per hit of a
    probe on each marked line of ``source``, in hit order."""
    seen = []
    with Tracer(on_message=lambda message: None) as t:
        proc = t.spawn([str(exe), str(n)], stdout=subprocess.DEVNULL)
        for marker in markers:
            t.add_probe(f"uprobe:{exe}:{source}:{_line_of(marker, source)}",
                        lambda h, m=marker: seen.append((m, h.vars, h.format_vars(True))))
        t.run()
    assert proc.exit_code == 0
    return seen


def test_variables_in_scope_at_a_line_probe(build):
    """At a line probe, ``hit.vars`` has the function's parameters and the
    locals of every block holding the line, read where DWARF puts them:
    a block's own ``total`` hides the function's, a static is read at its
    address plus the load bias, a char pointer shows its string and a
    double its value (a float in ``vars``, not its bits, which compared
    wrong), each time with the loop's values of that pass."""
    seen = _vars_at_lines(build("locals.c"), 3, ["inner", "outer"])
    assert [(m, v["base"], v["k"], v["seen"], v["total"]) for m, v, _ in seen] == [
        ("inner", 0, 1, 1, -1), ("outer", 0, 1, 1, 0),
        ("inner", 1, 2, 2, -2), ("outer", 1, 2, 2, 10),
        ("inner", 2, 3, 3, -3), ("outer", 2, 3, 3, 20)]
    assert [v["ratio"] for _, v, _ in seen] == [0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    texts = [(text["label"].split(" ", 1)[1], text["ratio"], text["total"]) for _, _, text in seen]
    assert texts == [('"odd"', "0.25", "-1"), ('"odd"', "0.25", "0"),
                     ('"even"', "0.5", "-2"), ('"even"', "0.5", "10"),
                     ('"odd"', "0.75", "-3"), ('"odd"', "0.75", "20")]


def _gdb_vars(exe, n, marker):
    """gdb's ``info args`` and ``info locals`` at each stop on the line."""
    line = _line_of(marker, "locals.c")
    cmd = ["gdb", "-nx", "-batch", "-ex", f"break locals.c:{line}", "-ex", "run"]
    for _ in range(n):
        cmd += ["-ex", "echo STOP\\n", "-ex", "info args", "-ex", "info locals", "-ex", "continue"]
    out = subprocess.run(cmd + ["--args", str(exe), str(n)], capture_output=True, text=True,
                         timeout=120).stdout
    stops = []
    for text in out.splitlines():
        if text == "STOP":
            stops.append({})
        elif stops and re.match(r"^\w+ = ", text):
            name, value = text.split(" = ", 1)
            stops[-1].setdefault(name, value)
    return stops


@pytest.mark.parametrize("marker", ["inner", "outer"])
def test_variables_at_O2_agree_with_gdb(build, marker):
    """Optimized code moves variables between registers and the stack and
    drops dead ones: each value read at -O2 is the one gdb shows there
    (pointers compared by their strings, as addresses differ between the
    runs), and what we cannot read ("?": optimized out, or computed by
    typed DWARF operations) is still named.  Parameters and the static
    are always read."""
    exe = build("locals.c", flags=("-O2",))
    ours = [text for _, _, text in _vars_at_lines(exe, 3, [marker])]
    theirs = _gdb_vars(exe, 3, marker)
    assert len(ours) == len(theirs) == 3

    def plain(value):
        return re.sub(r"0x[0-9a-f]+ ", "", value)

    for mine, gdb in zip(ours, theirs):
        assert set(mine) == set(gdb)
        assert {name for name, value in mine.items() if value != "?"} >= {"base", "k", "seen"}
        assert {name: plain(v) for name, v in mine.items() if v != "?"} == \
            {name: plain(gdb[name]) for name, v in mine.items() if v != "?"}


def _vars_at_entries(exe, func):
    """{go: hit.vars} at each entry of ``func`` in derefs.c, and what the
    tracer said."""
    seen, said = {}, []
    with Tracer(on_message=said.append) as t:
        proc = t.spawn([str(exe)], stdout=subprocess.DEVNULL)
        t.add_probe(f"uprobe:{exe}:{func}", lambda h: seen.__setitem__(h.vars["go"], h.vars))
        t.run()
    assert proc.exit_code == 0
    return seen, said


def test_a_variable_read_through_an_unmapped_pointer_has_no_value(build):
    """A local DWARF computes through a pointer (here before the function
    follows it, and it never does) reads as None where the pointer is not
    mapped, as gdb's "Cannot access memory": on x86_64 the top page is an
    address past a file offset's range, and reading it raised
    OverflowError out of hit.vars."""
    seen, said = _vars_at_entries(build("derefs.c", flags=("-O2",)), "sum_longs")
    assert [(go, v["sum"]) for go, v in sorted(seen.items())] == [(0, None), (1, 42)]
    assert not [m for m in said if "raised" in m]


def test_a_variable_read_through_deref_size_has_its_value(build):
    """gcc -O2 reads an int or a short through a pointer with
    DW_OP_deref_size (*x + *y, the short sign-extended by shifts); that
    read as None where gdb shows the value."""
    seen, said = _vars_at_entries(build("derefs.c", flags=("-O2",)), "sum_ints")
    assert [(go, v["sum"]) for go, v in sorted(seen.items())] == [(0, None), (1, -42)]
    assert not [m for m in said if "raised" in m]


@pytest.mark.skipif(not shutil.which("clang"), reason="needs clang to build the program")
def test_a_static_at_an_address_index_is_read(bits):
    """clang's DWARF 5 places a static at DW_OP_addrx, an index into its
    unit's address table (.debug_addr) rather than the address itself: the
    static read as None.  Read at that address plus the load bias (PIE)."""
    seen = _vars_at_lines(build_c("locals.c", bits, ("-O0",), cc="clang"), 3, ["inner"])
    assert [v["seen"] for _, v, _ in seen] == [1, 2, 3]


def test_a_float_constant_in_an_inlined_call_is_read(build):
    """-O2 places a float or double an inlined call gets as a constant with
    DW_OP_implicit_value, its bytes in the expression: reading it raised
    IndexError out of hit.vars (the bytes are the operation's only
    argument), wherever the inlined code was."""
    seen = _vars_at_lines(build("folded.c", flags=("-O2",)), 2, ["scale"], "folded.c")
    assert [(text["factor"], text["bias"], text["k"]) for _, _, text in seen] == [
        ("2.5", "-0.75", "0"), ("2.5", "-0.75", "1")]


def test_a_float_constant_of_a_function_copy_is_read(build):
    """The copy -O2 makes of a function for the one double all its calls
    pass gives that parameter, and a local computed from it, as constants
    whose bytes DWARF holds in a block (DW_AT_const_value): they read as
    None, where gdb prints them."""
    seen = _vars_at_lines(build("folded.c", flags=("-O2",)), 2, ["shift"], "folded.c")
    assert [(text["by"], text["half"], text["k"]) for _, _, text in seen] == [
        ("2.5", "1.25", "0"), ("2.5", "1.25", "1")]


def test_a_nameless_variable_is_not_listed(build):
    """gcc -O2 gives a variable-length array's bound a variable of its own,
    artificial and nameless: it was listed as "?", a name no program has,
    which gdb does not show either (nor would a second one fit)."""
    seen = _vars_at_lines(build("vla.c", flags=("-O2",)), 3, ["fill"], "vla.c")
    assert [sorted(v) for _, v, _ in seen] == [["n", "tag"]]


def test_a_location_list_pyelftools_cannot_parse_has_no_value(build):
    """gcc's -gvariable-location-views=incompat5 puts view pairs in DWARF 5
    location lists (DW_LLE_view_pair), which pyelftools cannot parse: that
    raised out of hit.vars, so none of the variables could be read.  The
    variables of such lists have no value; the others are read."""
    seen = _vars_at_lines(build("locals.c", flags=("-O2", "-gvariable-location-views=incompat5")),
                          3, ["outer"])
    assert [(v["seen"], v["total"]) for _, v, _ in seen] == [(1, None), (2, None), (3, None)]


@pytest.mark.parametrize("cc", ["gcc", pytest.param("clang", marks=pytest.mark.skipif(
    not shutil.which("clang"), reason="needs clang to build the program"))])
def test_a_parameter_left_out_of_an_inlined_copy_hides_the_callers(bits, cc):
    """In an inlined call, a name is the callee's even where the copy has
    no DIE for it (clang leaves out an unused parameter; its abstract
    origin still lists it, and gdb shows it as optimized out): the
    caller's variable of that name was read instead, its 7 for the
    callee's 0."""
    exe = build_c("shadow.c", bits, ("-O1",), cc=cc)
    seen = _vars_at_lines(exe, 7, ["report"], "shadow.c")
    assert [v["level"] for _, v, _ in seen] == [0 if cc == "gcc" else None] * 2


def test_a_value_whose_first_piece_is_a_constant_has_none(build):
    """A location in pieces has no value here, even when its first piece
    is a constant (DW_OP_implicit_value, DW_OP_stack_value): that piece
    was taken for the whole, and a complex float 0 + 3i read as 0."""
    seen = _vars_at_lines(build("pieces.c", flags=("-O1",)), 3, ["pieces"], "pieces.c")
    assert [(text["x"], v["z"]) for _, v, text in seen] == [("3.0", None)]


def test_a_complex_argument_is_none_and_the_next_reads_right(build):
    """A float _Complex takes no integer register on x86_64 (it travels in
    xmm0): read as an integer, it took the next argument's register, so
    ``z`` showed ``a``'s value and ``a`` the one after.  It is None, as a
    float in a register is, and ``a`` reads right, at both bitnesses; in
    ``vars`` it is None too, as nothing reads a complex as one value."""
    exe = build("complexargs.c")
    seen = []
    with Tracer(on_message=lambda message: None) as t:
        proc = t.spawn([str(exe), "2"], stdout=subprocess.DEVNULL)
        t.add_probe(f"uprobe:{exe}:scaled",
                    lambda h: seen.append((h.args, h.format_args(), h.vars["z"])))
        t.run()
    assert proc.exit_code == 0
    assert seen == [({"z": None, "a": 7}, {"z": "?", "a": "7"}, None),
                    ({"z": None, "a": 8}, {"z": "?", "a": "8"}, None)]


def test_arguments_of_a_function_returning_through_memory_read_right(build):
    """A function whose result goes through memory gets where to put it
    as a hidden first argument: every named argument read one place off
    (a the hidden pointer, b a's value).  A big struct goes so at both
    bitnesses; a 16-byte struct and a double _Complex on i386 only."""
    exe = build("sret.c", flags=("-O0", "-g"))
    seen = {}
    with Tracer(on_message=lambda message: None) as t:
        proc = t.spawn([str(exe)], stdout=subprocess.DEVNULL)
        for name in ("make_big", "make_pair", "make_complex"):
            t.add_probe(f"uprobe:{exe}:{name}", lambda h, name=name: seen.update({name: h.args}))
        t.run()
    assert proc.exit_code == 0
    assert seen == {"make_big": {"a": 11, "b": 12, "c": 13}, "make_pair": {"a": 21, "b": 22},
                    "make_complex": {"re": 31, "im": 32}}


def test_integers_after_complex_doubles_and_spilled_floats_read_right(build, bits):
    """A double _Complex takes two xmm registers and no integer one on
    x86_64: the integers after it were None, though their registers held
    them.  A ninth double finds the xmm registers taken and goes on the
    stack, before the stack's integers: it reads from there now, and ``g``
    and ``h``, read from the slots before theirs, read right.  The doubles
    in xmm registers are None, as on i386 none is."""
    exe = build("complexargs.c")
    seen = {}
    with Tracer(on_message=lambda message: None) as t:
        proc = t.spawn([str(exe), "2"], stdout=subprocess.DEVNULL)
        for name in ("rotated", "spilled"):
            t.add_probe(f"uprobe:{exe}:{name}",
                        lambda h, name=name: seen.setdefault(name, []).append(h.args))
        t.run()
    assert proc.exit_code == 0
    assert seen["rotated"] == [{"z": None, "a": 20 + i, "w": None, "b": 30 + i} for i in (0, 1)]
    doubles = {f"x{k}": k + 0.5 if bits == 32 or k >= 8 else None for k in range(10)}
    assert seen["spilled"] == [dict(a=1, b=2, c=3, d=4, e=5, f=6, **doubles, g=40 + i, h=50 + i)
                               for i in (0, 1)]
