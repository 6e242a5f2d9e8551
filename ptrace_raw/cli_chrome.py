"""``--trace-out``: hits as Chrome trace events, for chrome://tracing,
Perfetto or speedscope.

A return-probe hit knows when its call entered, so it becomes one complete
("X") event spanning the call; every other hit is an instant ("i") event.
Each process is a track named after its command, each thread a row in it;
timestamps are microseconds since tracing started.
"""

from __future__ import annotations

import json


class ChromeTrace:
    def __init__(self):
        self.events = []
        self._named = set()

    def add(self, hit, rec: dict, name: str) -> None:
        """One event from a hit and its record (``cli_output.hit_record``)."""
        pid, tid = rec["pid"], rec["tid"]
        if pid not in self._named:
            self._named.add(pid)
            self.events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid,
                                "args": {"name": hit.process.argv0}})
        args = {k: rec[k] for k in ("args", "usdt_args", "retval", "location", "print") if k in rec}
        event = {"name": name, "cat": hit.probe.spec.kind, "pid": pid, "tid": tid, "args": args}
        end_us = rec["time_ns"] / 1000
        if "duration_ns" in rec:
            dur_us = rec["duration_ns"] / 1000
            event.update(ph="X", ts=end_us - dur_us, dur=dur_us)
        else:
            event.update(ph="i", ts=end_us, s="t")
        self.events.append(event)

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"traceEvents": self.events, "displayTimeUnit": "ns"}, f)
            f.write("\n")
