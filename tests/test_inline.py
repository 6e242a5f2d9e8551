"""Inline probes on real tracees: counts, records and latency histograms
kept inside the tracee with no stop per hit, checked exactly against the
program's own behaviour, against the int3 path, and after detach; 64- and
32-bit."""

import os
import subprocess
import threading

import pytest

from ptrace_raw.elf import ElfImage
from ptrace_raw.errors import ProbeError
from ptrace_raw.tracer import Tracer
from tests.conftest import build_c
from tests.tracing import TracerThread, pipe_pair, text_bytes, trace_fork_during

_RELOCATED = ("f_riprel", "f_call", "f_jmp", "f_jcc", "f_cmp", "f_pc")
_REFUSED = {"f_tiny": "fewer than 5 bytes", "f_loop": "lands at f_loop+0x2", "f_sys": "cannot run inline"}


def _traced_then_detached(body, *ends):
    """``body(t)`` on a tracer thread, which detaches as it returns; then
    the test's copies of the tracee's pipe ends are closed."""
    tt = TracerThread(body)
    tt.start()
    result = tt.join_checked()
    for fd in ends:
        os.close(fd)
    return result


def _exits_ok(pid):
    """The detached tracee, still our child, finishes with status 0."""
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def _counted(exe, args, func, then=None, spec="uprobe"):
    """``exe ARGS`` traced with a counter on ``func`` (and ``then(t,
    counter)`` before the run): (its stdout, the process, the counter)."""
    r, w = pipe_pair()
    with Tracer() as t:
        proc = t.spawn([str(exe), *map(str, args)], stdout=w)
        os.close(w)
        counter = t.count(f"{spec}:{exe}:{func}")
        if then is not None:
            then(t, counter)
        t.run()
    return r.read(), proc, counter


def _untraced(argv):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          check=True).stdout


def _has_avx() -> bool:
    with open("/proc/cpuinfo") as f:
        return any(line.startswith("flags") and " avx " in line + " " for line in f)


@pytest.mark.skipif(not _has_avx(), reason="the CPU has no AVX")
def test_a_function_that_begins_with_a_vex_instruction_counts_inline(build, bits):
    """glibc's AVX2 string functions begin with VEX instructions (strchr's
    with vmovd); relocating one into the trampoline raised a TypeError, so
    README's own count of libc:str* ended the tracer with a traceback."""
    exe = build("vexfirst.c", flags=("-O2",))
    out, proc, counter = _counted(exe, [7], "vex_first")
    assert (out, proc.exit_code) == ("sum=28\n", 0)
    assert counter.inline and counter.value == 7


@pytest.mark.parametrize("how", ["fork", "vfork"])
def test_a_count_set_while_another_thread_forks_counts_the_child(build, how):
    """As for int3 probes (test_processes): the handler lets the other
    thread fork, waits until it stops there, then sets an inline count; the
    child, which copies its parent as it was, must be patched too: its 20
    calls and the parent's 10 are counted."""
    exe = build("forkduring.c", flags=("-O0", "-pthread"))
    made = {}
    out, proc = trace_fork_during(exe, how, lambda t: made.update(count=t.count(f"uprobe:{exe}:f")))
    assert out == "child status 0\n" and proc.exit_code == 0
    assert made["count"].inline and made["count"].value == 30


def test_counts_are_exact_over_eight_threads(build, bits):
    """8 threads x 1,000,000 calls each: every one counted, output unchanged."""
    exe = build("calls.c", flags=("-O1", "-pthread"))
    argv = [exe, 8_000_000, 8]
    r, w = pipe_pair()
    with Tracer() as t:
        proc = t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        counter = t.count(f"uprobe:{exe}:add")
        t.run()
    assert counter.inline and proc.exit_code == 0
    assert counter.value == 8_000_000
    assert r.read() == _untraced(argv)


def test_records_are_exact_while_the_ring_wraps(build, bits):
    """A 256-record ring read live by another thread while 4 threads write
    200,000 records: every (tid, args) pair arrives at most once, each
    thread's records come in order, and what did not arrive is exactly
    what ``lost`` counts."""
    exe = build("calls.c", flags=("-O1", "-pthread"))
    n, threads = 200_000, 4
    got, done = [], threading.Event()

    def body(t):
        t.spawn([str(exe), str(n), str(threads)], stdout=subprocess.DEVNULL)
        rec = t.record(f"uprobe:{exe}:add", args=2, capacity=256)
        started.set()
        holder.append(rec)
        t.run()
        done.set()
        return rec

    started, holder = threading.Event(), []
    tt = TracerThread(body)
    tt.start()
    assert started.wait(30)
    while not done.is_set():
        got.extend(holder[0])
        os.sched_yield()  # drain again; correctness never depends on when
    rec = tt.join_checked()
    got.extend(rec)
    assert rec.inline
    assert len(got) + rec.lost == n
    assert len(set(got)) == len(got)
    by_tid = {}
    for tid, (i, worker) in got:
        by_tid.setdefault(tid, []).append((worker, i))
    assert len(by_tid) <= threads
    for seen in by_tid.values():
        assert len({w for w, _ in seen}) == 1, "one tid, one worker"
        assert [i for _, i in seen] == sorted(i for _, i in seen)
    assert 0 < len(got)


def test_a_full_ring_counts_every_loss(build, bits):
    """Nobody reads until the end: the first ``capacity`` records stay, the
    rest are lost, and the loss counter says exactly how many."""
    exe = build("calls.c", flags=("-O1",))
    with Tracer() as t:
        t.spawn([str(exe), "5000"], stdout=subprocess.DEVNULL)
        rec = t.record(f"uprobe:{exe}:add", args=2, capacity=1024)
        t.run()
    got = list(rec)
    assert [args for _, args in got] == [(i, 1) for i in range(1024)]
    assert rec.lost == 5000 - 1024
    assert list(rec) == []


def test_latency_agrees_with_the_int3_path(build, bits):
    """A function busy for 1.5 ms lands in the [2**20, 2**21) ns bucket
    whether timed inline (TSC in the tracee) or by the int3 return probe
    (the tracer's clock at two stops)."""
    exe = build("inline_asm.c", flags=("-O1",))
    argv = [str(exe), "spin", "40", "1500"]
    with Tracer() as t:
        t.spawn(argv, stdout=subprocess.DEVNULL)
        hist = t.latency(f"uprobe:{exe}:spin")
        t.run()
    assert hist.inline
    int3 = {}

    def on_return(hit):
        ns = hit.time_ns - hit.entry_time_ns
        low = 1 << (ns.bit_length() - 1)
        int3[low] = int3.get(low, 0) + 1

    with Tracer() as t:
        t.spawn(argv, stdout=subprocess.DEVNULL)
        t.add_probe(f"uretprobe:{exe}:spin", on_return)
        t.run()
    assert sum(hist.buckets.values()) == sum(int3.values()) == 40
    # A descheduled call stretches into a later bucket, for either timer:
    # on a loaded machine (the suite run beside CI) even the most common
    # bucket moved, so only the lowest must agree.
    assert min(hist.buckets) == min(int3) == 1 << 20


def test_relocated_calls_jumps_and_riprel_leave_output_unchanged(build, bits, capfd):
    """Sites whose patched bytes hold rip-relative operands, calls (one
    that reads its own return address), short and conditional jumps run
    inline and the program prints what it prints untraced; sites that
    cannot be patched fall back to int3 probes, say so once, and count the
    same."""
    exe = build("inline_asm.c", flags=("-O1",))
    argv = [exe, "calls", 3000]
    r, w = pipe_pair()
    with Tracer() as t:
        t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        counters = {name: t.count(f"uprobe:{exe}:{name}") for name in (*_RELOCATED, *_REFUSED)}
        t.run()
    assert r.read() == _untraced(argv)
    err = capfd.readouterr().err
    for name, counter in counters.items():
        assert counter.value == 3000, name
        assert counter.inline == (name in _RELOCATED), name
    for name, why in _REFUSED.items():
        line = [ln for ln in err.splitlines() if f":{name}'" in ln]
        assert len(line) == 1 and why in line[0] and "int3 probe" in line[0], err


def test_int3_fallbacks_record_and_time_like_inline_ones(build, bits, capfd):
    exe = build("inline_asm.c", flags=("-O1",))
    with Tracer() as t:
        t.spawn([str(exe), "calls", "100"], stdout=subprocess.DEVNULL)
        rec = t.record(f"uprobe:{exe}:f_tiny", args=1)
        hist = t.latency(f"uprobe:{exe}:f_loop")
        t.run()
    assert not rec.inline and not hist.inline
    assert len(list(rec)) == 100 and rec.lost == 0
    assert sum(hist.buckets.values()) == 100
    assert capfd.readouterr().err.count("cannot run inline") == 2


def test_detach_restores_text_and_hijacked_return_addresses(build, bits):
    """Detach while a thread sits inside a timed function: the text is the
    file's again, byte for byte, and the function returns to its own
    caller, not through the (still mapped) return stub."""
    exe = build("inline_asm.c", flags=("-O1",))
    image = ElfImage.open(str(exe))
    funcs = ("wait_line", "f_riprel", "f_call")
    r, w = pipe_pair()
    stdin_r, stdin_w = os.pipe()

    def body(t):
        proc = t.spawn([str(exe), "wait"], stdin=stdin_r, stdout=w)
        bias = proc.probe_state.modules.of_file(os.path.realpath(exe))[0].bias
        t.latency(f"uprobe:{exe}:wait_line")
        t.count(f"uprobe:{exe}:f_riprel")
        t.count(f"uprobe:{exe}:f_call")
        addrs = {f: image.get_function(f).value + bias for f in funcs}
        patched = {f: proc.read(a, 5) for f, a in addrs.items()}
        t.run(timeout=0.3)
        return proc.pid, addrs, patched

    pid, addrs, patched = _traced_then_detached(body, stdin_r, w)
    for f, addr in addrs.items():
        original = image.read(image.get_function(f).value, 5)
        assert patched[f][0] == 0xe9 and patched[f] != original
        assert text_bytes(pid, addr, addr + 5) == original, f
    os.write(stdin_w, b"go\n")
    os.close(stdin_w)
    assert r.read() == "return address own\n"


def test_detach_mid_handler_leaves_no_trap_flag(build, bits):
    """Detach steps threads out of the handlers, which save and restore the
    flags (pushf ... popf): stepped, that pair keeps the step's trap flag
    set after the detach, and the program died of SIGTRAP at its next
    instruction.  A thread is inside a latency handler at most detaches
    (7 in 8 before the fix), so several rounds: each program must run on
    untouched and finish with right results."""
    exe = build("inline_asm.c", flags=("-O1",))
    for _ in range(6):
        r, w = pipe_pair()
        stdin_r, stdin_w = os.pipe()

        def body(t):
            proc = t.spawn([str(exe), "until"], stdin=stdin_r, stdout=w)
            lat = t.latency(f"uprobe:{exe}:f_riprel")
            while not sum(lat.buckets.values()):
                t.run(timeout=0.02)
            return proc.pid, lat.inline

        pid, inline = _traced_then_detached(body, stdin_r, w, stdin_w)
        assert inline and r.read() == "until ok\n"
        _exits_ok(pid)


@pytest.mark.parametrize("follow", [False, True], ids=["unfollowed", "followed"])
def test_forked_children(build, bits, follow):
    """forktree forks 4 children that call work() 1..4 times; the parent
    calls it twice.  Unfollowed children get the original text back before
    they run (only the parent's 2 calls count); followed ones share the
    counter through the inherited mapping (2 + 10)."""
    exe = build("forktree.c", flags=("-O0",))
    r, w = pipe_pair()
    with Tracer(follow_forks=follow) as t:
        proc = t.spawn([str(exe), "4"], stdout=w)
        os.close(w)
        counter = t.count(f"uprobe:{exe}:work")
        t.run()
    assert r.read() == "ok=4 sum=4\n" and proc.exit_code == 0
    assert counter.inline and counter.value == (12 if follow else 2)


@pytest.mark.parametrize("follow", [False, True], ids=["unfollowed", "followed"])
@pytest.mark.parametrize("kind", ["count", "latency", "record"])
def test_a_vfork_child_counts_only_when_followed(build, bits, kind, follow):
    """A vfork child (posix_spawn's, a shell's) runs in its parent's memory,
    inline patches included, until it execs or exits: unfollowed, its 5
    calls counted as the parent's (--count libc:execve counted the execve
    of every posix_spawn and Python subprocess), where int3 probes count
    none.  The parent's other thread calls work() 3 times meanwhile, and
    those count: 6 calls, or 11 with the child followed."""
    exe = build("vforkwork.c", flags=("-O0", "-pthread"))
    r, w = pipe_pair()
    with Tracer(follow_forks=follow) as t:
        proc = t.spawn([str(exe)], stdout=w)
        os.close(w)
        probe = getattr(t, kind)(f"uprobe:{exe}:work")
        t.run()
    assert r.read() == "child status 0 sum 12\n" and proc.exit_code == 0
    assert probe.inline
    calls = 11 if follow else 6
    if kind == "count":
        assert probe.value == calls
    elif kind == "latency":
        assert sum(probe.buckets.values()) == calls
    else:
        tids = [tid for tid, _ in probe]
        assert len(tids) == calls and tids.count(proc.pid) == calls - 3


@pytest.mark.parametrize("follow, calls", [(False, 1), (True, 2)], ids=["nofollow", "follow"])
def test_timing_vfork_itself(build, bits, follow, calls):
    """--latency libc:vfork killed every program that vforked with SIGILL:
    the child returns from the vfork its parent called, on the parent's
    stack and thread pointer, so through the return stub, which popped
    the parent's shadow-stack entry (and timed the child's return); the
    parent's own return then found none, and the stub's ud2 ran.  Not
    followed, the child now goes back without popping or timing: one
    call, the parent's.  Followed, its return is timed (a traced process's
    return, as a return probe sees it), and the forker's slot is put back
    when the child is done: two calls."""
    exe = build("vforkwork.c", flags=("-O0", "-pthread"))
    r, w = pipe_pair()
    with Tracer(follow_forks=follow) as t:
        proc = t.spawn([str(exe)], stdout=w)
        os.close(w)
        hist = t.latency("uprobe:libc:vfork")
        t.run()
    assert r.read() == "child status 0 sum 12\n" and proc.exit_code == 0
    assert hist.inline and sum(hist.buckets.values()) == calls


def test_a_vfork_without_a_thread_pointer_is_counted(build, bits):
    """A program with no TLS (no libc: fs or gs base 0) that vforked made
    the tracer fail reading the forker's thread pointer at address 0,
    killing the trace.  Such a child cannot be told apart, so its call
    counts, as before the vfork guard: 3."""
    exe = build("vfork_notls.c", flags=("-O0", "-static", "-nostdlib", "-fno-stack-protector"))
    with Tracer() as t:
        proc = t.spawn([str(exe)])
        counter = t.count(f"uprobe:{exe}:work")
        t.run()
    assert proc.exit_code == 0 and counter.inline and counter.value == 3


@pytest.mark.parametrize("kind", ["count", "latency", "record"])
def test_a_probe_set_after_a_fork_counts_each_call_once(build, bits, kind):
    """A followed child shares its parent's inline data area (the mapping
    is inherited).  A probe set after the fork takes a cell in each
    process: they took the same one, from allocators copied at the fork,
    so every call was counted twice (8 calls read as 16)."""
    exe = build("forklater.c", flags=("-O0",))
    r, w = pipe_pair()
    made = {}

    def at_ready(hit):
        if not made:
            made["probe"] = getattr(t, kind)(f"uprobe:{exe}:two")

    with Tracer(follow_forks=True) as t:
        proc = t.spawn([str(exe), "3", "5"], stdout=w)
        os.close(w)
        t.count(f"uprobe:{exe}:main")
        t.add_probe(f"uprobe:{exe}:ready", at_ready)
        t.run()
    assert r.read() == "child=0 sum=20\n" and proc.exit_code == 0
    probe = made["probe"]
    assert probe.inline
    if kind == "count":
        assert probe.value == 8
    elif kind == "latency":
        assert sum(probe.buckets.values()) == 8
    else:
        tids = [tid for tid, _ in probe]
        assert len(tids) == 8 and tids.count(proc.pid) == 5


def test_an_int3_count_of_one_function_runs_no_handler_per_hit(build):
    """A count that falls back to int3 (a return probe never runs inline)
    needs a handler per hit only to tell a pattern's functions apart."""
    exe = build("calls.c", flags=("-O0", "-pthread"))
    out, proc, counter = _counted(exe, [3], "add", spec="uretprobe")
    assert out.startswith("total=") and proc.exit_code == 0
    assert not counter.inline and counter.probe.handler is None
    assert (counter.value, counter.by_function) == (3, {"add": 3})


@pytest.mark.parametrize("spec", ["uprobe", "uretprobe"], ids=["inline", "int3"])
def test_by_function_counts_every_function_a_pattern_matched(build, spec):
    """calls 3: add 3 times, worker never (no threads).  Inline, every
    matched function had its line, 0 included; with the int3 stand-in (a
    return probe never runs inline) only those hit did."""
    exe = build("calls.c", flags=("-O0", "-pthread"))
    r, w = pipe_pair()
    with Tracer() as t:
        proc = t.spawn([str(exe), "3"], stdout=w)
        os.close(w)
        counter = t.count(f"{spec}:{exe}:[aw]*")
        t.run()
    assert r.read().startswith("total=") and proc.exit_code == 0
    assert counter.inline == (spec == "uprobe")
    assert counter.by_function == {"add": 3, "worker": 0}


def test_an_int3_probe_inside_an_inline_patch_is_refused(build):
    exe = build("calls.c", flags=("-O0", "-pthread"))
    with Tracer() as t:
        proc = t.spawn([str(exe), "10"], stdout=subprocess.DEVNULL)
        counter = t.count(f"uprobe:{exe}:add")
        assert counter.inline
        with pytest.raises(ProbeError, match="inline probe has patched"):
            t.add_probe(f"uprobe:{exe}:add+0x1")
        every = t.add_probe(f"uprobe:{exe}:add+*")
        assert any("patched by an inline probe" in n for n in every.notes)
        t.run()
    assert proc.exit_code == 0 and counter.value == 10


@pytest.mark.parametrize("to_copy", [True, False], ids=["at-copy", "at-home"])
def test_no_jump_is_patched_under_a_thread_about_to_run_a_boosted_copy(build, bits, capfd,
                                                                       to_copy):
    """A thread at the start of a push's boosted copy jumps back to just
    after the push: a jump patched over those bytes would be cut in two
    under it.  The moment is arranged from a handler: its int3 probe
    removed, the hitting thread sent to the copy, then a counter asked for
    the same function while the thread is still stopped there.  Left at
    home instead, the thread runs the new jump, which counts its call."""
    exe = build("calls.c", flags=("-O0",))
    r, w = pipe_pair()
    made = []

    def first_hit(hit):
        if made:
            return
        ps = hit.process.probe_state
        slot = next(s for s, home in ps.boosted.items() if home == hit.ip)
        t.remove_probe(int3)
        if to_copy:
            hit.regs["rip" if hit.arch.bits == 64 else "eip"] = slot
        made.append(t.count(f"uprobe:{exe}:add"))

    with Tracer() as t:
        proc = t.spawn([str(exe), "100"], stdout=w)
        os.close(w)
        int3 = t.add_probe(f"uprobe:{exe}:add", first_hit)
        t.run()
    assert r.read() == _untraced([exe, 100]) and proc.exit_code == 0
    (counter,) = made
    assert int3.hits == 1 and counter.inline != to_copy
    assert counter.value == (99 if to_copy else 100)
    err = capfd.readouterr().err
    assert ("running a copy of an instruction the patch covers" in err) == to_copy


def test_no_jump_is_patched_over_a_call_not_returned_from(build, bits, capfd):
    """f_icall calls through a register one byte in: a thread inside the
    callee returns three bytes into f_icall, into the middle of a jump
    patched meanwhile (it died of SIGILL).  The counter is asked for from
    a probe in the callee: it must fall back to an int3 probe."""
    exe = build("inline_asm.c", flags=("-O1",))
    r, w = pipe_pair()
    made = []
    with Tracer() as t:
        proc = t.spawn([str(exe), "icall"], stdout=w)
        os.close(w)
        t.add_probe(f"uprobe:{exe}:callback",
                    lambda hit: made.append(t.count(f"uprobe:{exe}:f_icall")))
        t.run()
    assert r.read() == "icall returned\n" and proc.exit_code == 0
    (counter,) = made
    assert not counter.inline and counter.value == 0
    assert "returns to f_icall+0x3, inside them" in capfd.readouterr().err


@pytest.mark.parametrize("outer, inner", [("f_outer", "f_inner"), ("f_outer2", "f_label")],
                         ids=["function", "label"])
def test_no_jump_is_patched_over_another_functions_entry(build, bits, capfd, outer, inner):
    """f_inner (a function) and f_label (a label with no type) start two
    bytes into the function before them: a jump over its first five bytes
    would cut their first instruction (every call of them died of
    SIGSEGV)."""
    exe = build("inline_asm.c", flags=("-O1",))
    out, proc, counter = _counted(exe, ["inner", 50], outer)
    assert out == _untraced([exe, "inner", 50]) and proc.exit_code == 0
    assert not counter.inline and counter.value == 0
    assert f"function {inner} starts inside the bytes" in capfd.readouterr().err


def test_no_jump_is_patched_where_another_function_jumps_in(build, bits, capfd):
    """pre() jumps into target() past its first instruction, as glibc's
    mempcpy does into memmove: with the jump patched over target's first
    bytes, pre's jump landed inside it, and the program died of SIGTRAP
    (--count libc:memcpy killed sort, which calls mempcpy)."""
    exe = build("jumpin.c", flags=("-O1",))
    out, proc, counter = _counted(exe, [50], "target")
    assert out == _untraced([exe, 50]) == "sum=2700\n" and proc.exit_code == 0
    assert not counter.inline and counter.value == 50
    assert "a branch of pre lands at target+" in capfd.readouterr().err


def test_detach_after_a_longjmp_out_of_a_timed_call(build, bits):
    """The first call of jump_or_wait leaves by longjmp, and its shadow-stack
    entry stays; the second, from the same frame, hijacks the same stack
    slot and blocks in read() when the tracer detaches.  The slot must get
    the second call's return address back: the stale entry, put back
    after it, sent the call back to the first call site."""
    exe = build("inline_asm.c", flags=("-O1",))
    r, w = pipe_pair()
    stdin_r, stdin_w = os.pipe()

    def body(t):
        proc = t.spawn([str(exe), "longjmp"], stdin=stdin_r, stdout=w)
        timed = t.latency(f"uprobe:{exe}:jump_or_wait")
        t.add_probe(f"uprobe:{exe}:marker", lambda hit: t.stop())
        t.run()
        return proc.pid, timed.inline

    pid, inline = _traced_then_detached(body, stdin_r, w)
    os.write(stdin_w, b"go\n")
    os.close(stdin_w)
    assert inline and r.read() == "longjmp: 7\n"
    _exits_ok(pid)


@pytest.mark.parametrize("func, inline", [("f_riprel", True), ("f_tiny", False)],
                         ids=["inline", "int3"])
def test_a_removed_counter_counts_no_more(build, bits, func, inline):
    """remove_probe takes a counter's patches (or its int3 fallback) out;
    it used to ignore a counter, which went on counting."""
    exe = build("inline_asm.c", flags=("-O1",))
    out, proc, counter = _counted(exe, ["phases", 100], func, lambda t, counter: t.add_probe(
        f"uprobe:{exe}:marker", lambda hit: t.remove_probe(counter)))
    assert out == _untraced([exe, "phases", 100]) and proc.exit_code == 0
    assert counter.inline == inline and counter.value == 100


def test_a_library_unloaded_under_a_counter_is_not_written_to(build, bits):
    """A counter set in a dlopen'ed library; the library is closed and
    another is loaded where it was; the tracer detaches.  The patch went
    with the first library's pages, and the detach wrote the first
    library's bytes over the second's code (the program died).  Now
    nothing of it is restored."""
    flags = ("-O2", "-shared", "-fPIC")
    first = build_c("plugin.c", bits, flags, name="plugin.so")
    second = build_c("plugin.c", bits, (*flags, "-DSCALE=1000"), name="plugin1000.so")
    exe = build("dlcycle.c", libs=("-ldl",))
    r, w = pipe_pair()
    made, starts = [], []

    def on_dlsym(hit):
        lib = second if made else first
        starts.append(hit.process.probe_state.modules.of_file(os.path.realpath(lib))[0].start)
        if not made:
            made.append(t.count(f"uprobe:{first}:plugin_work"))
        else:
            t.stop()

    with Tracer() as t:
        proc = t.spawn([str(exe), str(first), str(second)], stdout=w)
        os.close(w)
        t.add_probe("uprobe:libc:dlsym", on_dlsym)
        t.run()
    assert r.read() == "total=3003\n"
    _exits_ok(proc.pid)
    assert starts[0] == starts[1], "the second library was mapped elsewhere: nothing tested"
    (counter,) = made
    assert counter.inline and counter.value == 1


def test_a_counter_waits_for_its_library_and_comes_back_with_it(build, bits):
    """Set before the library is loaded, a counter waits for it (it fell
    back to int3), and is patched again each time the library comes back
    (it counted the first load's calls only)."""
    plugin = build_c("plugin.c", bits, ("-O2", "-shared", "-fPIC"), name="plugin.so")
    exe = build("dlcycle.c", libs=("-ldl",))
    r, w = pipe_pair()
    with Tracer() as t:
        proc = t.spawn([str(exe), str(plugin)], stdout=w)
        os.close(w)
        counter = t.count(f"uprobe:{plugin}:plugin_work")
        t.run()
    assert r.read() == "total=33\n" and proc.exit_code == 0
    assert counter.inline and counter.value == 3
