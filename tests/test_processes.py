"""Many processes and threads at once, forks and execs, and hostile
conditions: faults, signals mid-step, SIGKILL mid-hit, handler errors and
an interrupted tracer."""

import collections
import contextlib
import ctypes
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ptrace_raw.tracer import Tracer
from ptrace_raw.xol import XolError
from tests.conftest import build_c
from tests.tracing import (TracerThread, ask, maps_of, pipe_pair, start_service, text_bytes,
                           trace_fork_during, tracer_pid)


def _run(argv, probes, follow=False):
    r, w = os.pipe()
    with Tracer(follow_forks=follow) as t:
        proc = t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        made = [t.add_probe(spec, fn) for spec, fn in probes]
        t.run()
    with os.fdopen(r) as f:
        return f.read(), proc, made


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "nofollow"])
def test_fork_tree_with_execs_gives_exact_per_pid_counts(build, bits, follow):
    exe = build("forktree.c")
    calls = build("calls.c", flags=("-O0", "-pthread"))
    per = collections.Counter()
    out, proc, (work, add) = _run([exe, 20, calls], [
        (f"uprobe:{exe}:work", lambda h: per.update([h.pid])),
        (f"uprobe:{calls}:add", None),
    ], follow)
    assert proc.exit_code == 0
    assert out.splitlines()[-1] == "ok=20 sum=4"
    assert sorted(out.splitlines()[:-1]) == sorted(
        subprocess.run([str(exe), "20", str(calls)], capture_output=True, text=True).stdout.splitlines()[:-1])
    if follow:
        assert per[proc.pid] == 2
        assert sorted(n for pid, n in per.items() if pid != proc.pid) == list(range(1, 21))
        assert add.hits == 3 + 7 + 11 + 15 + 19  # the exec'd children run calls N
    else:
        assert dict(per) == {proc.pid: 2} and add.hits == 0


def test_exec_into_a_program_of_the_other_bitness(build, bits):
    """Nothing read for the old image (its mode above all) may outlive the
    exec: the new image gets its area, probes and arguments in its own."""
    launcher = build("execer.c")
    target = build_c("calls.c", 96 - bits, ("-O0", "-pthread"))
    seen = []
    out, proc, (add,) = _run([launcher, target, 4], [
        (f"uprobe:{target}:add", lambda h: seen.append((h.arg(0), h.arg(1), h.arch.bits))),
    ])
    assert out == subprocess.run([str(target), "4"], capture_output=True, text=True).stdout
    assert proc.exit_code == 0
    assert seen == [(i, 1, 96 - bits) for i in range(4)]


@pytest.mark.parametrize("how", ["fork", "vfork"])
@pytest.mark.parametrize("change", ["add", "remove"])
def test_a_child_forked_while_a_handler_changes_probes_gets_the_change(build, change, how):
    """The handler lets the other thread fork (a byte on its stdin), waits
    until it stops at the fork event, then adds or removes a probe.
    Stopping the process to change it serves that fork: the child copies
    the probes as they were, and must then get the change too.  It got
    neither: an added probe missed the child's 20 calls, a removed one
    still ran its handler for them.  A vfork child shares its parent's
    probes: changed once, not twice (the probe would run twice at every
    hit)."""
    exe = build("forkduring.c", flags=("-O0", "-pthread"))
    calls, made = [], {}

    def add(t):
        made["f"] = t.add_probe(f"uprobe:{exe}:f", lambda hit: calls.append(hit.pid))

    if change == "add":
        out, proc = trace_fork_during(exe, how, add)
    else:
        out, proc = trace_fork_during(exe, how, lambda t: t.remove_probe(made["f"]), before=add)
    assert out == "child status 0\n" and proc.exit_code == 0
    mine = calls.count(proc.pid)
    children = collections.Counter(pid for pid in calls if pid != proc.pid)
    assert (mine, list(children.values())) == ((10, [20]) if change == "add" else (0, []))


@pytest.mark.parametrize("how", ["fork", "vfork"])
def test_a_fork_child_takes_over_a_step_slot_written_after_the_fork(build, how):
    """trigger+1 is a stepped instruction (a popf).  Its handler lets the
    other thread fork and waits until it stops at the fork event; only then
    is main's step slot written, in the parent alone.  The fork child takes
    that slot over for its own calls to trigger(): it was told the slot
    held the copy, stepped an empty slot and died (a vfork child shares
    the parent's memory, slot included)."""
    exe = build("forkduring.c", flags=("-O0", "-pthread"))
    out, proc = trace_fork_during(exe, how, lambda t: None)
    assert out == "child status 0\n" and proc.exit_code == 0


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "nofollow"])
def test_vfork_and_exec(build, follow):
    exe = build("vforker.c")
    hello = build("hello.c")
    per = collections.Counter()
    out, proc, (work, main) = _run([exe, hello], [
        (f"uprobe:{exe}:work", lambda h: per.update([h.pid])),
        (f"uprobe:{hello}:main", None),
    ], follow)
    assert out == "arg1=7\nok=2 s=5\n" and proc.exit_code == 0
    assert per.pop(proc.pid) == 2
    assert (sum(per.values()), main.hits) == ((1, 1) if follow else (0, 0))
    # Every process is gone, the child that exec'd untraced included: no
    # probe still says it is set in one (a pid that may come back).
    assert work.sites == {} and main.sites == {}


def test_thread_storm(build):
    exe = build("storm.c", flags=("-O0", "-pthread"))
    out, proc, (work,) = _run([exe, 15, 8, 40], [(f"uprobe:{exe}:work", None)])
    assert proc.exit_code == 0 and work.hits == 15 * 8 * 40
    assert out == subprocess.run([str(exe), "15", "8", "40"], capture_output=True, text=True).stdout


def test_faults_in_slots_and_signals_during_steps(build):
    """Faults of boosted copies (a load, a neg of memory, a ret) and of a
    stepped one (a popf) are the program's own, at its instructions;
    signals sent while a thread steps stepme's popf arrive once each."""
    exe = build("faults.c", flags=("-O2", "-pthread"))
    out, proc, made = _run([exe, 3000], [(f"uprobe:{exe}:{fn}+*", None) for fn in
                                          ("faulty", "faulty2", "stepme", "badret", "stepfault")])
    assert out == "faults_at_home=12 received=3000 bad=0 info_bad=0\n" and proc.exit_code == 0
    assert made[0].hits >= 3 and made[1].hits >= 3 and made[2].hits > 0
    assert made[3].hits == made[4].hits == 6


def test_sigkill_mid_hit_spares_the_other_tracees(build):
    exe = build("calls.c", flags=("-O0", "-pthread"))
    with Tracer() as t:
        victim = t.spawn([str(exe), "1000"], stdout=subprocess.DEVNULL)
        other = t.spawn([str(exe), "500"], stdout=subprocess.DEVNULL)
        counts = collections.Counter()

        def on_add(hit):
            counts[hit.pid] += 1
            if hit.pid == victim.pid and counts[hit.pid] == 100:
                os.kill(victim.pid, signal.SIGKILL)

        t.add_probe(f"uprobe:{exe}:add", on_add)
        t.run()
    assert victim.exit_signal == signal.SIGKILL
    assert other.exit_code == 0 and counts[other.pid] == 500
    assert counts[victim.pid] == 100


def test_handler_errors_lose_no_hits(build, capsys):
    exe = build("calls.c", flags=("-O0", "-pthread"))
    seen = []

    def flaky(hit):
        seen.append(hit.arg(0))
        if hit.arg(0) % 3 == 0:
            raise ValueError("boom")

    out, proc, (add,) = _run([exe, 300], [(f"uprobe:{exe}:add", flaky)])
    assert proc.exit_code == 0 and seen == list(range(300)) and add.hits == 300
    err = capsys.readouterr().err
    assert err.count("handler of 'uprobe:") == 10 and "further handler errors are counted" in err


def test_a_handler_failing_on_every_hit_keeps_a_bounded_list(build):
    """Each exception holds its traceback: a handler that fails on every
    hit of a long run must not keep them all (memory grew without bound);
    the first ones are kept, the rest counted."""
    from ptrace_raw.probes import KEPT_ERRORS
    exe = build("calls.c", flags=("-O0", "-pthread"))
    with Tracer(on_message=lambda text: None) as t:
        proc = t.spawn([str(exe), "400"], stdout=subprocess.DEVNULL)
        add = t.add_probe(f"uprobe:{exe}:add", lambda hit: 1 // 0)
        t.run()
    assert proc.exit_code == 0 and add.hits == 400
    assert (len(t.engine.errors), t.engine.error_count) == (KEPT_ERRORS, 400)


def test_fatal_handler_error_stops_and_detaches(build):
    exe = build("calls.c", flags=("-O0", "-pthread"))
    r, w = os.pipe()
    with pytest.raises(ValueError, match="stop here"):
        with Tracer(fatal_errors=True) as t:
            proc = t.spawn([str(exe), "50"], stdout=w)
            t.add_probe(f"uprobe:{exe}:add", lambda h: (_ for _ in ()).throw(ValueError("stop here")))
            t.run()
    os.close(w)
    _, status = os.waitpid(proc.pid, 0)  # detached: it finishes untraced
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert os.read(r, 100).startswith(b"total=")


def test_fatal_error_in_the_last_return_handler_is_raised(build):
    """Raised at the trampoline's own stop, not at a next hit that may
    never come: here the only call returns once."""
    exe = build("calls.c", flags=("-O0", "-pthread"))
    r, w = os.pipe()
    with pytest.raises(ValueError, match="at return"):
        with Tracer(fatal_errors=True) as t:
            t.spawn([str(exe), "1"], stdout=w)
            t.add_probe(f"uretprobe:{exe}:add", lambda h: (_ for _ in ()).throw(ValueError("at return")))
            t.run()
    os.close(w)
    assert os.read(r, 100).startswith(b"total=")


def test_several_attached_processes_in_one_loop(build):
    exe = build("service.c", flags=("-O0",))
    svcs = [start_service(exe) for _ in range(3)]
    try:
        for s in svcs:
            assert s.stdout.readline().strip() == "ready 1"
        per = collections.Counter()
        import threading

        def traced():
            with Tracer() as t:
                for s in svcs:
                    t.attach(s.pid)
                t.add_probe(f"uprobe:{exe}:handle", lambda h: per.update([h.pid]))
                for i, s in enumerate(svcs):
                    s.stdin.write(f"{i}\n" * (i + 1))
                    s.stdin.flush()
                while sum(per.values()) < 6:
                    t.run(timeout=0.1)
                t.detach()

        th = threading.Thread(target=traced)
        th.start()
        th.join(60)
        assert {s.pid: per[s.pid] for s in svcs} == {s.pid: i + 1 for i, s in enumerate(svcs)}
        for i, s in enumerate(svcs):
            assert [s.stdout.readline().strip() for _ in range(i + 1)] == [str(i * i + 1)] * (i + 1)
            assert ask(s, "3") == "10"
    finally:
        for s in svcs:
            s.kill()
            s.wait()


_INTERRUPTED_TRACER = textwrap.dedent("""
    import sys
    from ptrace_raw.tracer import Tracer
    pid, exe = int(sys.argv[1]), sys.argv[2]
    with Tracer() as t:
        t.attach(pid)
        first = []
        def on_hit(hit):
            if not first:
                first.append(1)
                print("hit", flush=True)
        for spec in ("spin", "ret_depth", "spin+*", "handle"):
            t.add_probe(f"uprobe:{exe}:{spec}", on_hit)
        t.add_probe(f"uretprobe:{exe}:ret_depth")
        print("attached", flush=True)
        t.run()
    print("detached", flush=True)
""")


@pytest.mark.parametrize("round_", range(6))
def test_interrupted_tracer_leaves_the_tracee_intact(build, bits, round_):
    exe = build("busy.c", flags=("-O2", "-pthread"))
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().strip() == "ready"
        text = next(m for m in maps_of(svc.pid) if m[2] == "r-xp" and m[3] == os.path.realpath(exe))
        before = text_bytes(svc.pid, text[0], text[1])
        tracer = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_TRACER, str(svc.pid), str(exe)],
                                  stdout=subprocess.PIPE, text=True,
                                  cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert tracer.stdout.readline().strip() == "attached"
        assert tracer.stdout.readline().strip() == "hit"
        for _ in range(random.Random(round_).randrange(200_000)):
            pass  # a moment chosen at random, without sleeping
        tracer.send_signal((signal.SIGINT, signal.SIGTERM, signal.SIGHUP)[round_ % 3])
        assert tracer.stdout.read().strip() == "detached"
        assert tracer.wait(60) == 0
        assert text_bytes(svc.pid, text[0], text[1]) == before
        assert ask(svc, "100") == "5050"
        assert ask(svc, "7") == "28"
    finally:
        svc.kill()
        svc.wait()



@pytest.mark.parametrize("follow", [True, False], ids=["follow", "nofollow"])
def test_return_probe_pending_across_fork(build, follow):
    exe = build("forkret.c")
    rets = []
    out, proc, (split,) = _run([exe], [(f"uretprobe:{exe}:split",
                                        lambda h: rets.append((h.pid, h.retval)))], follow)
    assert sorted(out.splitlines()) == ["child 111", "parent 222 child_ok=1"]
    assert proc.exit_code == 0
    assert (proc.pid, 222) in rets
    assert sorted(v for _, v in rets) == ([111, 222] if follow else [222])


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "nofollow"])
def test_a_vfork_child_never_borrows_its_parents_step_slot(build, follow):
    exe = build("vforkstep.c")
    out, proc, (fa, fb) = _run([exe], [(f"uprobe:{exe}:fa+*", None), (f"uprobe:{exe}:fb+*", None)],
                               follow)
    assert out == "fa(5)=-5 child=252 fa(7)=-7\n" and proc.exit_code == 0
    assert fa.hits == 2 * 5  # five instructions, two calls
    assert fb.hits == (5 if follow else 0)  # an unfollowed vfork child runs silently


def test_detach_in_the_middle_of_a_stepped_rep_copy(build):
    exe = build("repcopy.c", flags=("-O2",))
    r, w = os.pipe()
    with Tracer() as t:
        proc = t.spawn([str(exe)], stdout=w)
        os.close(w)
        cp = t.add_probe(f"uprobe:{exe}:cp+*")
        while cp.hits < 2 and proc.alive:  # at the rep instruction
            t.run(timeout=0.05)
        t.run(timeout=0.2)
        finished = not proc.alive
        t.detach()
    if not finished:
        _, status = os.waitpid(proc.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    else:
        assert proc.exit_code == 0
    assert os.fdopen(r).read() == "copying\ndone 0\n"


def test_probes_come_back_with_a_library_loaded_again(build, bits):
    plugin = build_c("plugin.c", bits, ("-O2", "-shared", "-fPIC"), name="plugin.so")
    exe = build("dlcycle.c", libs=("-ldl",))
    out, proc, (entry, ret) = _run([exe, plugin], [(f"uprobe:{plugin}:plugin_work", None),
                                                   (f"uretprobe:{plugin}:plugin_work", None)])
    assert out == "total=33\n" and proc.exit_code == 0
    assert (entry.hits, ret.hits) == (3, 3)


def test_a_binary_touched_while_traced_keeps_its_probes(build, bits):
    """The traced program's file is touched (as a package upgrade replaces
    files) while it runs: at the next dlclose its module looked gone, its
    sites were dropped and set again over their own int3s, which the
    detach then wrote back: the program died of SIGTRAP once detached."""
    plugin = build_c("plugin.c", bits, ("-O2", "-shared", "-fPIC"), name="plugin.so")
    exe = build("dlcycle.c", libs=("-ldl",))
    r, w = pipe_pair()
    calls = []

    def on_dlsym(hit):
        calls.append(hit)
        if len(calls) == 1:
            os.utime(exe)
        else:
            t.stop()  # after a dlclose and a dlopen: detach here

    with Tracer() as t:
        proc = t.spawn([str(exe), str(plugin)], stdout=w)
        os.close(w)
        add_up = t.add_probe(f"uprobe:{exe}:add_up")
        t.add_probe("uprobe:libc:dlsym", on_dlsym)
        t.run()
    assert r.read() == "total=33\n" and add_up.hits == 1
    _, status = os.waitpid(proc.pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_probes_added_and_removed_from_a_handler_during_a_thread_storm(build):
    exe = build("storm.c", flags=("-O0", "-pthread"))
    with Tracer() as t:
        proc = t.spawn([str(exe), "10", "8", "100"], stdout=subprocess.DEVNULL)

        def churn(hit):
            if hit.probe.hits % 50 == 0:
                t.remove_probe(t.add_probe(f"uprobe:{exe}:body"))

        work = t.add_probe(f"uprobe:{exe}:work", churn)
        t.run()
    assert proc.exit_code == 0 and work.hits == 10 * 8 * 100


def test_many_boosted_sites_share_few_areas(build):
    exe = build("mix.c", flags=("-O2",))
    seen = {}
    with Tracer() as t:
        proc = t.spawn([str(exe)], stdout=subprocess.DEVNULL)

        def at_main(hit):
            if not seen:
                probe = t.add_probe("uprobe:libc:mem*+*")
                ps = proc.probe_state
                seen["boosted"] = sum(1 for s in ps.bps.sites.values() if s.boost_slot is not None)
                seen["areas"] = len(ps.xol.areas)
                t.remove_probe(probe)

        t.add_probe(f"uprobe:{exe}:main", at_main)
        t.run()
    assert proc.exit_code == 0
    slots_per_area = (64 * 1024) // 32
    assert seen["boosted"] > 100
    assert seen["areas"] <= 2 + seen["boosted"] // slots_per_area


def test_a_probe_switched_on_and_off_keeps_one_boosted_slot(build, bits):
    """Boosted slots are never freed (a thread may still be inside one), so
    a probe removed and added again at one place, as a tool switching it on
    and off does, must take its own slot again rather than a new one each
    time; and that slot must still run the instruction right."""
    exe = build("calls.c")
    hits = []
    r, w = pipe_pair()
    with Tracer() as t:
        proc = t.spawn([str(exe), "500"], stdout=w)
        os.close(w)
        spec = f"uprobe:{exe}:square"
        probe = t.add_probe(spec, hits.append)
        ps = proc.probe_state
        (addr,) = probe.sites[proc.pid]
        slot, used = ps.bps.sites[addr].boost_slot, [a.next for a in ps.xol.areas]
        assert slot is not None
        for _ in range(100):
            t.remove_probe(probe)
            probe = t.add_probe(spec, hits.append)
        assert ps.bps.sites[addr].boost_slot == slot and [a.next for a in ps.xol.areas] == used
        t.run()
    assert proc.exit_code == 0 and len(hits) == 500
    # calls.c: add(i, 1) + square(i % 7) for each i, then greet and fib(10)
    assert r.read() == f"total={sum(i + 1 + (i % 7) ** 2 for i in range(500)) + 8 + 55}\n"


def test_stop_from_another_thread_ends_a_run_blocked_in_waitpid(build):
    """An embedding program's other thread (its Ctrl-C handler, say) calls
    stop() while the loop waits for a tracee that is itself waiting."""
    import threading
    exe = build("service.c", flags=("-O0",))
    svc = start_service(exe)
    try:
        assert svc.stdout.readline().strip() == "ready 1"
        t = Tracer()
        ready, hits = threading.Event(), []

        def body():
            t.attach(svc.pid)
            t.add_probe(f"uprobe:{exe}:handle", hits.append)
            ready.set()
            t.run()
            t.detach()

        th = threading.Thread(target=body, daemon=True)
        th.start()
        ready.wait(60)
        # The reply comes after the hit was served: the loop is then back
        # in waitpid, or on its way there, with nothing more to come.
        assert ask(svc, "3") == "10" and len(hits) == 1
        t.stop()
        th.join(60)
        assert not th.is_alive(), "stop() did not wake the loop"
        assert ask(svc, "4") == "17" and len(hits) == 1
    finally:
        svc.kill()
        svc.wait()


def test_an_area_the_kernel_places_out_of_reach_is_given_back():
    """No free range lies within +-2 GiB of an address in the middle of the
    empty half of the address space, so the kernel picks one: it is out of
    reach, and must be unmapped rather than leaked."""
    exe = build_c("hello.c", 64)
    seen = {}
    with Tracer() as t:
        proc = t.spawn([str(exe)], stdout=subprocess.DEVNULL)

        def at_main(hit):
            xol = proc.probe_state.xol
            before = maps_of(proc.pid)
            try:
                xol.area_near(proc, hit.thread, 0x4000_0000_0000, hit.arch, 32)
            except XolError as exc:
                seen["error"] = str(exc)
            seen["maps"] = (before, maps_of(proc.pid))

        t.add_probe(f"uprobe:{exe}:main", at_main)
        t.run()
    assert proc.exit_code == 0
    assert "out of reach" in seen["error"]
    before, after = seen["maps"]
    assert after == before


def test_probes_fire_in_every_stage_of_a_shell_pipeline(build):
    calls = build("calls.c", flags=("-O0", "-pthread"))
    service = build("service.c")
    out, proc, (add, handle) = _run(
        ["/bin/sh", "-c", f"'{calls}' 5 | '{service}'"],
        [(f"uprobe:{calls}:add", None), (f"uprobe:{service}:handle", None)], follow=True)
    assert proc.exit_code == 0
    assert out == "ready 1\n1\n"  # service answers calls' one line "total=..." (atol: 0)
    assert (add.hits, handle.hits) == (5, 1)


def test_an_image_we_cannot_trace_runs_on_untraced(tmp_path, capfd):
    """A seccomp filter that refuses executable mmaps, installed before an
    exec: the new image cannot get its out-of-line area.  The tracer says so
    in one line, lets that process run on untraced and still reaps it."""
    launcher = build_c("nox_launcher.c", 64)
    target = build_c("hello.c", 64, ("-static",), name="hello-static")
    with Tracer() as t:
        proc = t.spawn([str(launcher), str(target), "4"], stdout=subprocess.DEVNULL)
        main = t.add_probe(f"uprobe:{target}:main")
        t.run()
    assert proc.exit_code == 4 and main.hits == 0
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"ptrace-raw: pid {proc.pid} runs on untraced: cannot map an out-of-line area "
                   f"near {err[0].split('near ')[1].split()[0]} in pid {proc.pid}: mmap failed: "
                   "Operation not permitted (a seccomp filter or security module forbids "
                   "executable mappings)"]


def test_subprocesses_of_the_embedders_other_threads_keep_their_exit_status():
    """A program embedding the tracer runs subprocesses from another thread
    while the loop waits for its tracee: the loop must not reap them, or
    their waits find nothing (subprocess then reports exit status 0)."""
    import threading
    codes = []
    tracee_in_r, tracee_in_w = os.pipe()

    def embedder():
        try:
            for _ in range(20):
                codes.append(subprocess.run(["sh", "-c", "exit 7"]).returncode)
        finally:
            os.close(tracee_in_w)

    with Tracer() as t:
        proc = t.spawn(["cat"], stdin=tracee_in_r, stdout=subprocess.DEVNULL)
        os.close(tracee_in_r)
        other = threading.Thread(target=embedder)
        other.start()
        t.run()
        other.join()
    assert proc.exit_code == 0 and codes == [7] * 20


def test_with_no_area_near_a_push_stays_emulated_and_a_copy_is_refused(build, monkeypatch):
    """When no XOL area can be mapped near the code (an address space with
    no room within +-2 GiB): a push, which the tracer would rather boost,
    is emulated (still one stop per hit); an instruction that can only run
    from a slot is refused with the reason, and its int3 is taken out."""
    from ptrace_raw.xol import XolSpace

    def no_room(self, proc, thread, addr, plan, arch):
        raise XolError(f"no free range within reach of {addr:#x}")

    monkeypatch.setattr(XolSpace, "boost_slot", no_room)
    pushes = build("calls.c", flags=("-O0", "-pthread"))
    copies = build("calls.c", flags=("-O2", "-pthread"))
    r, w = os.pipe()
    with Tracer() as t:
        proc = t.spawn([str(pushes), "100"], stdout=w)
        os.close(w)
        add = t.add_probe(f"uprobe:{pushes}:add")
        (addr,) = add.sites[proc.pid]
        site = proc.probe_state.bps.sites[addr]
        assert site.plan.text.startswith("push") and site.emulate and site.boost_slot is None
        t.run()
    with os.fdopen(r) as f:
        assert f.read() == subprocess.run([str(pushes), "100"], capture_output=True,
                                          text=True).stdout
    assert proc.exit_code == 0 and add.hits == 100
    with Tracer() as t:
        proc = t.spawn([str(copies), "100"], stdout=subprocess.DEVNULL)
        code = [(lo, hi) for lo, hi, perms, path in maps_of(proc.pid)
                if path == str(copies) and "x" in perms]
        before = [text_bytes(proc.pid, lo, hi) for lo, hi in code]
        with pytest.raises(XolError, match="no free range within reach"):
            t.add_probe(f"uprobe:{copies}:add")
        assert [text_bytes(proc.pid, lo, hi) for lo, hi in code] == before and code
        t.run()
    assert proc.exit_code == 0


def test_real_time_signals_caught_during_steps_keep_their_order_and_values(build):
    """Three SIGRTMIN with values v, v+1, v+2, queued from a handler at a
    stepped instruction, are held until the step ends and sent again: each
    must arrive once, in order, with its value.  The kept siginfo was one
    per signal number, so of a group the second value was lost and the
    third arrived twice."""
    exe = build("stepsignals.c", flags=("-O0",))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sigqueue.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    r, w = pipe_pair()
    sent = []

    def queue_three(hit):
        if hit.probe.hits % 10 == 0:
            for _ in range(3):
                sent.append(len(sent) + 1)
                assert libc.sigqueue(hit.pid, signal.SIGRTMIN, sent[-1]) == 0

    with Tracer() as t:
        proc = t.spawn([str(exe), "rt", "60"], stdout=w)
        os.close(w)
        t.add_probe(f"uprobe:{exe}:stepme+1", queue_three)  # its popf
        t.run()
    assert proc.exit_code == 0
    assert r.read() == " ".join(map(str, sent)) + " \nbad=0\n" and len(sent) == 18


def test_job_control_while_threads_step(build):
    """SIGSTOP and SIGCONT, again and again, while four threads step probed
    instructions (popf): a thread held by the group-stop in the middle of
    its step was continued, not stepped, after SIGCONT, ran out of its slot
    and came back one byte past its instruction (wrong results, or SIGSEGV
    on i386).  And a thread whose step had run before the group-stop took
    it, its trap queued behind the stop, was stepped again: the kernel set
    the trap flag anew and, after a popf, took it for the program's own, so
    the thread trapped after the step and the program died of SIGTRAP (in
    one run of five with the 40 rounds this test had, in most with its 400
    now).  The rounds are set off from a handler; another thread answers
    each stop with a SIGCONT once every thread is in the group-stop (a
    SIGSTOP held for a step comes after the step: a SIGCONT sent before it
    left the process stopped for good, more often with more rounds)."""
    exe = build("stepsignals.c", flags=("-O0", "-pthread"))
    r, w = pipe_pair()
    stops = threading.Semaphore(0)
    done = threading.Event()
    stopping = threading.Event()

    def all_listening(proc):
        try:
            threads = list(proc.threads.values())
        except RuntimeError:  # the loop's thread changed it meanwhile
            return False
        return not proc.alive or bool(threads) and all(t.listening for t in threads)

    def continuer(proc):
        while not done.is_set():
            if stops.acquire(timeout=0.1):
                end = time.monotonic() + 5
                while not all_listening(proc) and time.monotonic() < end and not done.is_set():
                    time.sleep(0.001)
                stopping.clear()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)

    def stop_now(hit):
        if hit.probe.hits % 50 == 0 and not stopping.is_set():
            stopping.set()
            os.kill(hit.pid, signal.SIGSTOP)
            stops.release()

    with Tracer() as t:
        proc = t.spawn([str(exe), "threads", "5000", "4"], stdout=w)
        os.close(w)
        t.add_probe(f"uprobe:{exe}:stepme+1", stop_now)  # its popf
        helper = threading.Thread(target=continuer, args=(proc,), daemon=True)
        helper.start()
        try:
            t.run()
        finally:
            done.set()
            helper.join(60)
    assert r.read() == "bad=0\n" and (proc.exit_code, proc.exit_signal) == (0, None)


def test_detach_leaves_a_blocked_sigtrap_pending(build):
    """The program blocks SIGTRAP and raises it while traced: the signal
    stays pending, as it would untraced.  Detach took it for an int3's trap
    not reported yet, resumed the thread to let it come, and waited
    forever."""
    exe = build("blocktrap.c")
    svc = start_service(exe)
    try:
        assert svc.stdout.readline() == "ready\n"
        attached, raised = threading.Event(), threading.Event()

        def body(t):
            t.attach(svc.pid)
            t.add_probe(f"uprobe:{exe}:never")
            attached.set()
            while not raised.is_set():
                t.run(timeout=0.05)

        tt = TracerThread(body)
        tt.start()
        assert attached.wait(60)
        assert ask(svc, "b") == "2"
        raised.set()
        tt.join_checked()
        assert tracer_pid(svc.pid) == 0
        with open(f"/proc/{svc.pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        trap = 1 << (signal.SIGTRAP - 1)
        assert int(fields["SigPnd"], 16) & trap and int(fields["SigBlk"], 16) & trap
        assert ask(svc, "abc") == "4"
    finally:
        svc.stdin.close()
        svc.wait(timeout=10)
