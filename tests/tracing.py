"""Test helpers for driving a tracee from the test while a tracer runs.

ptrace binds a tracee to the thread that attached it, so a test that wants
to talk to its tracee (pipes, signals) runs the whole tracer on a
background thread and synchronises with the tracee through its pipes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from ptrace_raw.loop import Engine
from ptrace_raw.tracer import Tracer


class TracerThread(threading.Thread):
    """Runs ``body(tracer)`` on its own thread; ``join_checked`` re-raises
    whatever it raised."""

    def __init__(self, body, plain=False, **tracer_kw):
        super().__init__(daemon=True)
        self.body = body
        self.make = (lambda: plain_tracer(**tracer_kw)) if plain else (lambda: Tracer(**tracer_kw))
        self.error = None
        self.result = None

    def run(self):
        try:
            with self.make() as t:
                self.result = self.body(t)
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def join_checked(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "tracer thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def plain_tracer(**kw):
    """A tracer with no probe engine: only the transparent loop."""
    return Tracer(engine=Engine(), **kw)


def start_service(path, *args):
    """Start an untraced tracee with pipes on stdin/stdout."""
    return subprocess.Popen([str(path), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)


def ask(proc, line):
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def tracer_pid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def text_bytes(pid, start, end):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(start)
        return f.read(end - start)


def pipe_pair():
    r, w = os.pipe()
    return os.fdopen(r, "r"), w


def maps_of(pid):
    """(start, end, perms, path) of each mapping of ``pid``."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], parts[5] if len(parts) > 5 else ""))
    return out


def trace_fork_during(exe, how, change, before=None):
    """Run tracees/forkduring.c (``how``: fork or vfork) traced with
    follow_forks: ``before(t)`` first, then ``change(t)`` from the handler
    at its trigger()'s stepped popf, once the other thread has forked, on
    the byte the handler sends it, and stopped at the fork event.  Returns
    (its stdout, the process)."""
    r, w = pipe_pair()
    go_r, go_w = os.pipe()
    with Tracer(follow_forks=True) as t:
        proc = t.spawn([str(exe), how], stdin=go_r, stdout=w)
        os.close(w)
        os.close(go_r)
        if before is not None:
            before(t)

        def on_trigger(hit):
            if hit.tid != proc.pid:
                return  # the child's calls
            (forker,) = [tid for tid in proc.threads if tid != hit.tid]
            os.write(go_w, b"x")
            wait_for_ptrace_stop(proc.pid, forker)
            change(t)

        t.add_probe(f"uprobe:{exe}:trigger+1", on_trigger)  # its popf, stepped
        try:
            t.run()
        finally:
            os.close(go_w)
    return r.read(), proc


def wait_for_ptrace_stop(pid, tid, give_up=60.0):
    """Until thread ``tid`` sits in a ptrace stop (state t)."""
    wait_for_state(pid, "t", tid, give_up)


def wait_for_state(pid, state, tid=None, give_up=60.0):
    """Until the thread (the leader by default) is in ``state`` ("S":
    blocked in a system call, "t": in a ptrace stop): a condition on the
    tracee, polled, as nothing else can report it.  After ``give_up``
    seconds the test fails rather than hang."""
    end = time.monotonic() + give_up
    while time.monotonic() < end:
        with open(f"/proc/{pid}/task/{tid or pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == state:
                return
        time.sleep(0.001)
    raise AssertionError(f"thread {tid or pid} of {pid} never reached state {state}")
