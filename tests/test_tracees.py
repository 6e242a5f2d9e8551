"""Spawning, attaching, detaching and the loop's transparency, on real
64-bit and 32-bit tracees."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import arch
from ptrace_raw.errors import AttachError
from ptrace_raw.thread import thread_features
from tests.tracing import (TracerThread, ask, pipe_pair, plain_tracer, proc_state,
                           start_service, tracer_pid)


def test_spawn_runs_to_exit_with_code_and_output_unchanged(build):
    exe = build("hello.c")
    r, w = pipe_pair()
    with plain_tracer() as t:
        proc = t.spawn([exe, "3", "two words"], stdout=w)
        os.close(w)
        t.run()
    assert r.read() == "arg1=3\narg2=two words\n"
    assert proc.exit_code == 3 and proc.exit_signal is None


def test_spawn_stops_before_the_first_instruction(build, bits):
    exe = build("hello.c")
    with plain_tracer() as t:
        proc = t.spawn([exe], stdout=subprocess.DEVNULL)
        thread = proc.leader
        regs = thread.get_regs()
        assert thread.arch is (arch.X86_64 if bits == 64 else arch.I386)
        ip = thread.arch.ip(regs)
        loader = [m for m in proc.maps() if ip in m]
        assert loader and "ld-linux" in loader[0].path
        t.run()
    assert proc.exit_code == 0


def test_memory_and_register_round_trips(build, bits):
    exe = build("hello.c")
    with plain_tracer() as t:
        proc = t.spawn([exe, "5"], stdout=subprocess.DEVNULL)
        thread = proc.leader
        a = thread.arch
        regs = thread.get_regs()
        sp = a.sp(regs)
        original = proc.read(sp - 64, 64)
        proc.write(sp - 64, bytes(range(64)))
        assert proc.read(sp - 64, 64) == bytes(range(64))
        proc.write(sp - 64, original)
        text = [m for m in proc.maps() if m.is_exec and "ld-linux" in m.path][0]
        before = proc.read(text.start, 16)
        proc.write(text.start, b"\xcc" * 16)  # read-only text is writable
        assert proc.read(text.start, 16) == b"\xcc" * 16
        proc.write(text.start, before)
        saved = a.get_reg(regs, "rbx" if bits == 64 else "ebx")
        a.set_reg(regs, "rbx" if bits == 64 else "ebx", 0x1234)
        thread.mark_regs_dirty()
        assert proc.read(sp - 64, 64) == original
        thread.get_regs()
        assert a.get_reg(regs, "rbx" if bits == 64 else "ebx") == 0x1234
        a.set_reg(regs, "rbx" if bits == 64 else "ebx", saved)
        t.run()
    assert proc.exit_code == 5


def test_program_memory_moves_exactly_the_bytes_asked_at_any_size(build, bits):
    """What emulated instructions read and write through: accesses of
    changing sizes (the iovec lengths are reused while the size repeats)
    each move exactly their own bytes, checked through /proc/PID/mem; and
    unlike /proc/PID/mem it refuses read-only text, as the program's own
    store would fault there."""
    exe = build("hello.c")
    with plain_tracer() as t:
        proc = t.spawn([exe, "4"], stdout=subprocess.DEVNULL)
        thread = proc.leader
        mem = thread.program_memory
        base = thread.arch.sp(thread.get_regs()) - 256
        original = proc.read(base, 200)
        proc.write(base, bytes(200))
        expect = bytearray(200)
        for at, size in ((8, 8), (8, 8), (17, 4), (40, 2), (0, 8), (60, 64), (128, 72), (3, 1)):
            data = bytes((at * 7 + i) & 0xFF or 1 for i in range(size))
            mem.write(base + at, data)
            expect[at:at + size] = data
            assert mem.read(base + at, size) == data
            assert proc.read(base, 200) == bytes(expect)
            assert mem.read(base + at + 1, 2) == bytes(expect[at + 1:at + 3])
        proc.write(base, original)
        text = [m for m in proc.maps() if m.is_exec and "ld-linux" in m.path][0]
        code = proc.read(text.start, 8)
        with pytest.raises(OSError):
            mem.write(text.start, b"\xcc" * 8)
        assert mem.read(text.start, 8) == code
        t.run()
    assert proc.exit_code == 4


def test_read_cstring_caps_length(build):
    exe = build("hello.c")
    with plain_tracer() as t:
        proc = t.spawn([exe, "0", "hello-world"], stdout=subprocess.DEVNULL)
        a = proc.leader.arch
        regs = proc.leader.get_regs()
        argv = a.sp(regs) + a.word_size
        argv2 = a.read_word(proc.memory, argv + 2 * a.word_size)
        assert proc.read_cstring(argv2) == b"hello-world"
        assert proc.read_cstring(argv2, 5) == b"hello"
        t.run()


def test_signals_reach_the_tracee_exactly_once(build):
    exe = build("signals.c")
    r, w = pipe_pair()
    with plain_tracer() as t:
        proc = t.spawn([exe, "200"], stdout=w)
        os.close(w)
        t.run()
    assert r.read() == "usr1=200 alrm_at_least=1\n"
    assert proc.exit_code == 0


def test_attach_multithreaded_then_detach_keeps_it_correct(build):
    exe = build("workers.c", flags=("-O0", "-pthread"))
    svc = start_service(exe, 3)
    try:
        assert svc.stdout.readline().strip() == "ready 3"
        assert ask(svc, "7") == "49 3"

        def body(t):
            proc = t.attach(svc.pid)
            seen = set(proc.threads)
            assert all(th.stopped for th in proc.threads.values())
            assert tracer_pid(svc.pid) == threading.get_native_id()
            t.detach()
            return seen

        tt = TracerThread(body, plain=True)
        tt.start()
        seen = tt.join_checked()
        assert len(seen) == 4
        assert tracer_pid(svc.pid) == 0
        assert ask(svc, "12") == "144 3"
    finally:
        svc.kill()
        svc.wait()


def test_threads_created_while_traced_are_seen(build):
    exe = build("workers.c", flags=("-O0", "-pthread"))
    svc = start_service(exe, 1)
    try:
        assert svc.stdout.readline().strip() == "ready 1"
        state = {}

        def body(t):
            proc = t.attach(svc.pid)
            state["before"] = len(proc.threads)
            return proc

        def reply_then_stop():
            assert ask(svc, "spawn") == "workers 2"
            assert ask(svc, "spawn") == "workers 3"
            state["done"] = True

        helper = threading.Thread(target=reply_then_stop)

        def traced(t):
            proc = body(t)
            helper.start()
            while not state.get("done") or len(proc.threads) < 4:
                t.run(timeout=0.05)
            state["after"] = len(proc.threads)
            t.detach()

        tt = TracerThread(traced, plain=True)
        tt.start()
        tt.join_checked()
        helper.join()
        assert (state["before"], state["after"]) == (2, 4)
        assert ask(svc, "3") == "9 3"
    finally:
        svc.kill()
        svc.wait()


def test_sigstop_and_sigcont_from_outside_behave_as_untraced(build):
    exe = build("stopme.c")
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().strip() == "ready"
        events = {}

        def traced(t):
            t.attach(svc.pid)
            os.kill(svc.pid, signal.SIGSTOP)
            while proc_state(svc.pid) not in "Tt":
                t.run(timeout=0.05)
            events["stopped"] = proc_state(svc.pid)
            svc.stdin.write("abc\n")
            svc.stdin.flush()
            os.kill(svc.pid, signal.SIGCONT)
            t.run(timeout=0.5)
            t.detach()

        tt = TracerThread(traced, plain=True)
        tt.start()
        tt.join_checked()
        assert events["stopped"] in "Tt"
        assert svc.stdout.readline().strip() == "4"
        assert ask(svc, "hello") == "6"
    finally:
        svc.kill()
        svc.wait()


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent/prog"], "cannot run '/nonexistent/prog': no such file"),
    (["no-such-command-xyz"], "cannot run 'no-such-command-xyz': command not found"),
    (["/etc/passwd"], "cannot run '/etc/passwd': not an executable file"),
    (["/tmp"], "cannot run '/tmp': not an executable file"),
])
def test_bad_programs_give_one_clear_line(argv, message):
    with plain_tracer() as t:
        with pytest.raises(AttachError) as err:
            t.spawn(argv)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_bad_pids_give_one_clear_line(build):
    with plain_tracer() as t:
        with pytest.raises(AttachError, match=r"cannot attach to pid 999999999: no such process"):
            t.attach(999999999)
        with pytest.raises(AttachError, match="that is the tracer itself"):
            t.attach(os.getpid())
        with pytest.raises(AttachError, match="not a process id"):
            t.attach(-3)


def test_second_tracer_is_refused_and_nothing_is_left_stopped(build):
    exe = build("stopme.c")
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().strip() == "ready"
        gdb = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-ex", f"attach {svc.pid}",
                                "-ex", "shell read x", "-ex", "detach"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        while tracer_pid(svc.pid) == 0:
            if gdb.poll() is not None:
                pytest.skip("gdb could not attach here")
        with plain_tracer() as t:
            with pytest.raises(AttachError, match=f"cannot attach to pid {svc.pid}: already traced by pid"):
                t.attach(svc.pid)
        gdb.communicate("\n", timeout=30)
        assert ask(svc, "xy") == "3"
    finally:
        svc.kill()
        svc.wait()


def test_thread_features_from_proc_status():
    """The kernel's status line for a thread with a CET shadow stack, which
    return probes must leave alone (no machine here has one to trace)."""
    status = "Name:\tapp\nx86_Thread_features:\tshstk wrss\nx86_Thread_features_locked:\tshstk\n"
    assert thread_features(status) == {"shstk", "wrss"}
    assert thread_features("Name:\tapp\nx86_Thread_features_locked:\tshstk\n") == set()


def _stopped_service(exe, *args):
    """A service started untraced, then stopped by SIGSTOP (seen stopped)."""
    p = start_service(exe, *args)
    os.kill(p.pid, signal.SIGSTOP)
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    return p


def _trace_attached(p, exe, serve):
    """Attach to ``p`` from a tracer thread, probe inline_asm's f_riprel,
    and return what ``serve(tracer, probe)`` returns."""
    def body(t):
        t.attach(p.pid)
        return serve(t, t.add_probe(f"uprobe:{exe}:f_riprel"))

    tt = TracerThread(body)
    tt.start()
    return tt.join_checked()


def test_attach_to_a_stopped_process_leaves_it_stopped(build, bits):
    """A process stopped by SIGSTOP when we attach stays stopped while
    traced and after detach, and SIGCONT lets it finish untouched.  Setting
    a boosted probe maps an area by a system call run in the stopped
    thread, which takes it out of its group-stop: the loop's LISTEN then
    failed (EIO) and the detach waited forever."""
    exe = build("inline_asm.c", flags=("-O1",))
    p = _stopped_service(exe, "until")
    try:

        def serve(t, probe):
            t.run(timeout=0.2)
            return probe.hits, proc_state(p.pid)

        hits, state_traced = _trace_attached(p, exe, serve)
        # Detach wakes the thread to stop again on its own: it passes
        # through R on the way, briefly (a busy machine may take a while).
        give_up = time.monotonic() + 30
        state = proc_state(p.pid)
        while state == "R" and time.monotonic() < give_up:
            state = proc_state(p.pid)
        assert (hits, state_traced, state) == (0, "t", "T")
        os.kill(p.pid, signal.SIGCONT)
        p.stdin.close()
        assert p.stdout.read() == "until ok\n" and p.wait(timeout=30) == 0
    finally:
        p.kill()
        p.wait()


def test_spawn_passes_on_the_ignored_signals_it_was_started_with(build):
    """A command run under ``nohup`` or a shell's ``trap '' INT`` keeps
    those signals ignored when it runs traced, as it would untraced; only
    SIGPIPE, which Python ignores for itself, goes back to its default."""
    exe = build("sigdisp.c")
    script = (
        "import signal, subprocess, sys\n"
        "from ptrace_raw.tracer import Tracer\n"
        "for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "with Tracer() as t:\n"
        "    t.spawn([sys.argv[1]])\n"
        "    t.run()\n")
    out = subprocess.run([sys.executable, "-c", script, str(exe)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert (out.stdout, out.stderr) == ("1:ign 2:ign 15:ign 13:dfl \n", "")


def test_a_stopped_process_continued_during_an_injection_runs_on(build, bits, monkeypatch):
    """A SIGCONT that ends the group-stop while the tracer injects a system
    call into a stopped process (here: sent just as the injection ends, by
    wrapping the step that puts the thread back in its group-stop): the
    thread must come back running, not wait for a group-stop that will
    not come, and get its SIGCONT."""
    from ptrace_raw.process import Process
    regroup = Process._regroup

    def continued_first(self, thread):
        os.kill(self.pid, signal.SIGCONT)
        regroup(self, thread)

    monkeypatch.setattr(Process, "_regroup", continued_first)
    exe = build("inline_asm.c", flags=("-O1",))
    p = _stopped_service(exe, "until")
    try:

        def serve(t, probe):
            while not probe.hits:
                t.run(timeout=0.05)
            return probe.hits

        assert _trace_attached(p, exe, serve) > 0
        p.stdin.close()
        assert p.stdout.read() == "until ok\n" and p.wait(timeout=30) == 0
    finally:
        p.kill()
        p.wait()
