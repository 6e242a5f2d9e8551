"""What ``ptrace-raw trace`` writes: the buffered output stream, one record
per hit (text or NDJSON), and the expressions of ``--filter``/``--hist``.

A hit becomes a dict first (``hit_record``) and is then rendered as a text
line or a JSON object, so the two formats cannot drift apart.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import os
import re
from typing import Callable, Dict, List, Optional

from .errors import TracerError


class CliError(TracerError):
    """A runtime error found by the command line itself (exit status 1)."""


class UsageError(CliError):
    """A command line that cannot mean anything (exit status 2)."""


class Output:
    """Lines buffered in a list and written in batches: one line at a time
    to a terminal, where someone watches, and every ``batch`` lines
    otherwise, where the cost of a write per hit would show.

    A reader that went away (``| head``) sets ``broken`` and turns the
    stream's descriptor into /dev/null, so neither later writes nor the
    interpreter's flush at exit fail again.  Any other failure (a full
    disk) is kept in ``failed``, to end tracing and be reported: raised in
    a handler, it would only be told as the handler's error, hit after
    hit."""

    def __init__(self, stream, batch: int = 100, replace: bool = False):
        self.stream = stream
        self.broken = False
        self.failed: Optional[CliError] = None
        #: a file (-o) opened for appending, emptied at the first write: a
        #: run that fails before writing anything leaves it as it was
        self._replace = replace
        self._lines: List[str] = []
        try:
            tty = stream.isatty()
        except ValueError:
            tty = False
        self._batch = 1 if tty else batch

    @property
    def done(self) -> bool:
        """Nothing more can be written."""
        return self.broken or self.failed is not None

    def write(self, line: str) -> None:
        if self.done:
            return
        self._lines.append(line)
        if len(self._lines) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if self.done or not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            if self._replace:
                self._replace = False
                self.stream.truncate(0)
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.broken = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except OSError as exc:
            self.failed = output_error(exc)


def output_error(exc: OSError) -> CliError:
    """Our output could not be written: a full disk, a dead device."""
    return CliError(f"cannot write the output: {exc.strerror or exc}")


class JsonDiagnostics:
    """Stands in for ``sys.stderr`` under ``--json``: the library reports
    what does not stop tracing (a handler that raised, skipped
    instructions, where a line probe went) by printing it, and in NDJSON
    mode every line we emit must be an object: a "warning"."""

    def __init__(self, out: Output):
        self._out = out
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.strip():
                message = line.removeprefix("ptrace-raw: ")
                self._out.write(json.dumps({"type": "warning", "message": message}))
        return len(text)

    def flush(self) -> None:
        """Nothing to do: lines go to the output as they complete."""


# -- one hit -----------------------------------------------------------------------

def where(spec) -> str:
    """A short name for a probe's place, for trace viewers: the function,
    the marker or the source line rather than the whole spec."""
    if spec.func is not None:
        return spec.func if not spec.offset else f"{spec.func}+{spec.offset}"
    if spec.provider is not None:
        return f"{spec.provider}:{spec.name}"
    if spec.line is not None:
        return f"{spec.file}:{spec.line}"
    return f"{spec.address:#x}"


def is_function_entry(spec) -> bool:
    """Whether ``hit.arg(n)`` means something at this probe: only at a
    function's first instruction."""
    return spec.kind == "uprobe" and spec.func is not None and not spec.offset


def needs_location(spec) -> bool:
    """Whether a hit line must say where it fired, because the spec alone
    does not tell: globs (of functions, returns or markers), every-
    instruction probes and source lines (one line can have several
    sites)."""
    return spec.is_glob or spec.is_marker_glob or spec.offset == "*" or spec.line is not None


def arg_value(hit, n: int):
    """argN as the user means it: the marker's N-th argument at a USDT
    probe, the N-th argument saved at entry for a return probe, the ABI's
    N-th argument otherwise."""
    spec = hit.probe.spec
    if spec.kind == "usdt":
        values = hit.usdt_args
        return values[n] if values is not None and n < len(values) else None
    if spec.is_return:
        saved = hit.entry_args
        return saved[n] if saved is not None and n < len(saved) else None
    return hit.arg(n)


def _frame_json(frame) -> dict:
    out = {"pc": frame.pc, "module": frame.module, "symbol": frame.symbol,
           "offset": frame.offset}
    if frame.file:
        out["file"], out["line"] = frame.file, frame.line
    return out


#: the frames --stack shows: a stack deeper than that is cut, and says so
STACK_FRAMES = 64


def hit_record(hit, start_ns: int, nargs: int, stack: bool, locate: bool, prints=()) -> dict:
    """The JSON object of one hit; ``stack`` keeps the frames themselves
    under ``_frames`` for the text renderer.  ``prints``: --print's
    expressions, whose values go under "print" by their text (None where
    one failed, as an argument that cannot be read), and as the text
    renderer shows them, EXPR=value, under ``_print``."""
    spec = hit.probe.spec
    rec = {"type": "hit", "probe": spec.text, "pid": hit.pid, "tid": hit.tid,
           "time_ns": hit.time_ns - start_ns, "ip": hit.ip}
    if locate and spec.kind == "usdt":
        rec["location"] = hit.usdt_marker
    elif locate:
        frame = hit.location
        rec["location"] = (f"{frame.symbol}+{frame.offset:#x}" if frame.symbol
                           else f"{frame.pc:#x}")
    if spec.kind == "usdt":
        values = hit.usdt_args
        if values is not None:
            rec["usdt_args"] = values
    elif nargs:
        rec["args"] = (hit.args_list(nargs) if not spec.is_return
                       else [arg_value(hit, i) for i in range(nargs)])
    if spec.is_return:
        rec["retval"] = hit.retval
        if hit.entry_time_ns is not None:
            rec["duration_ns"] = hit.time_ns - hit.entry_time_ns
    if prints:
        shown = {expr.text: printed(expr, hit) for expr in prints}
        rec["print"] = {text: value for text, (value, _) in shown.items()}
        # an expression written on lines shows as one: a hit is one line
        rec["_print"] = [f"{' '.join(text.split())}={value}" for text, (_, value) in shown.items()]
    if stack:
        # one frame more than shown tells a stack that goes on from one
        # that ends there
        frames = hit.backtrace(STACK_FRAMES + 1)
        if len(frames) > STACK_FRAMES:
            frames = frames[:STACK_FRAMES]
            rec["stack_cut"] = True
        rec["stack"] = [_frame_json(f) for f in frames]
        rec["_frames"] = frames
    return rec


def render_json(rec: dict) -> str:
    return json.dumps({k: v for k, v in rec.items() if not k.startswith("_")})


def render_text(rec: dict) -> str:
    """``0.001234 4242/4243 uprobe:./app:add arg0=0x1 arg1=0x2``, then one
    indented line per stack frame, and ``...`` under a cut stack."""
    parts = [f"{rec['time_ns'] / 1e9:.6f}", f"{rec['pid']}/{rec['tid']}", rec["probe"]]
    if "location" in rec:
        parts.append(f"at {rec['location']}")
    for i, value in enumerate(rec.get("args", ())):
        parts.append(f"arg{i}={value:#x}" if value is not None else f"arg{i}=?")
    if "usdt_args" in rec:
        parts.append(f"usdt_args={rec['usdt_args']}")
    if "retval" in rec:
        parts.append(f"retval={rec['retval']:#x}")
    if "duration_ns" in rec:
        parts.append(f"({rec['duration_ns'] / 1000:.3f} us)")
    parts.extend(rec.get("_print", ()))
    line = " ".join(parts)
    for frame in rec.get("_frames", ()):
        line += f"\n    {frame}"
    if rec.get("stack_cut"):
        line += f"\n    ... (deeper frames not shown: --stack stops at {STACK_FRAMES})"
    return line


# -- --filter and --hist ------------------------------------------------------------

_ARG = re.compile(r"arg(\d+)$")


def _comm(pid: int, tid: int) -> Optional[str]:
    """The thread's name, as bpftrace's comm and ``ps -L`` show it (a
    thread may name itself; else it has its process's); None once it is
    gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def _ustack(hit) -> str:
    """The backtrace in one string, innermost first, each frame as
    symbol+offset (file+address where no symbol covers it, its pc where no
    file does): a key that tells call paths apart, as bpftrace's ustack
    does, fits on one line, and is the same in every process, wherever
    each loaded the files."""
    return " <- ".join(f"{f.symbol}+{f.offset:#x}" if f.symbol
                       else f"{os.path.basename(f.module)}+{f.offset:#x}" if f.module
                       else f"{f.pc:#x}" for f in hit.backtrace(STACK_FRAMES))


_NAMES: Dict[str, Callable] = {
    "pid": lambda hit: hit.pid,
    "tid": lambda hit: hit.tid,
    "probe": lambda hit: hit.probe.spec.text,
    "ip": lambda hit: hit.ip,
    "func": lambda hit: hit.function,
    "comm": lambda hit: _comm(hit.pid, hit.tid),
    "ustack": _ustack,
    "retval": lambda hit: hit.retval,
    "hit": lambda hit: hit,
    "cstr": lambda hit: hit.read_cstring,
    "var": lambda hit: (hit.vars or {}).__getitem__,
}


class HitExpr:
    """A Python expression over one hit, compiled once.  Names: ``arg0``,
    ``arg1``, ... (see ``arg_value``), ``retval`` (read at return probes
    only: the session refuses it otherwise), ``pid``, ``tid``, ``comm``,
    ``probe`` (the spec text), ``func``, ``ip``, ``ustack``, ``cstr``,
    ``var`` and ``hit`` itself; only the names the expression uses are
    read from the tracee."""

    def __init__(self, text: str, option: str):
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise UsageError(f"{option} '{text}': invalid expression: {exc.msg}") from None
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        getters = []
        for name in sorted(used):
            m = _ARG.match(name)
            if m:
                n = int(m[1])
                getters.append((name, lambda hit, n=n: arg_value(hit, n)))
            elif name in _NAMES:
                getters.append((name, _NAMES[name]))
            elif not hasattr(builtins, name):
                raise UsageError(f"{option} '{text}': unknown name '{name}' (use arg0.., retval, "
                                 "pid, tid, comm, probe, func, ip, ustack, cstr, var, hit)")
        #: the names it reads
        self.uses = used
        self.max_arg = max((int(_ARG.match(n)[1]) for n in used if _ARG.match(n)), default=-1)
        self._getters = getters
        self._code = compile(tree, f"<{option}>", "eval")

    def __call__(self, hit):
        return eval(self._code, {name: get(hit) for name, get in self._getters})


def printed(expr: HitExpr, hit):
    """A --print or --count-by value (as JSON holds it, as a hit line shows
    it): in JSON a number, a string, a bool or None as they are, anything
    else as its repr (NaN and the infinities too: JSON has no word for them,
    and a reader refuses Python's); on the line its repr, '?' for None."""
    try:
        value = expr(hit)
        shown = repr(value)  # an int of more than 4300 digits has none
    except Exception:
        value = None
    if value is None:
        return None, "?"
    if isinstance(value, (int, str, bool)) or isinstance(value, float) and math.isfinite(value):
        return value, shown
    return shown, shown


def hist_value(value) -> Optional[int]:
    """--hist counts numbers (bools too); None, an argument that was not
    saved, is skipped."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    raise TypeError(f"--hist needs a number, got {type(value).__name__} {value!r}")
