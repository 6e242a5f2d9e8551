"""``ptrace-raw``: the command line, a thin layer over ``Tracer``.

    ptrace-raw trace [options] PROBE... [-- CMD ARGS...]
    ptrace-raw list BIN|-p PID [PATTERN]
    ptrace-raw demo

Exit status: the traced command's (128+N when a signal N killed it), 2 for
a command line that cannot mean anything, 1 for any other error.  Every
error a user can cause is one line on stderr; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import shlex
import shutil
import signal
import sys
import time
import traceback
from typing import List, Optional

from .cli_chrome import ChromeTrace
from .cli_demo import run_demo
from .cli_hist import Log2Hist, format_bcc, format_bpftrace
from .cli_list import list_files, process_files
from .cli_output import (
    CliError, HitExpr, JsonDiagnostics, Output, UsageError, hist_value, hit_record,
    is_function_entry, needs_location, output_error, printed, render_json, render_text, where,
)
from .debuginfo import debug_dirs_of
from .errors import SpecError, TracerError
from .held_signals import HeldSignals
from .libraries import elf_bits, resolve_binary
from .specs import narrowed, parse_spec
from .tracer import Tracer

VERSION = "0.1.0"
#: the exit status when our output's reader went away (as if SIGPIPE killed us)
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE
#: at most this many seconds between a hit and its line reaching -o FILE or a pipe
FLUSH_EVERY = 1.0

TRACE_EPILOG = """\
probes (BIN is a path, a command on PATH, or a library name such as libc):
  uprobe:BIN:FUNC           entry of FUNC; 'BIN:FUNC' means the same
  uprobe:BIN:FUNC+0x10      an instruction inside FUNC
  uprobe:BIN:0x401136       a file address (see 'ptrace-raw list')
  uprobe:BIN:FUNC+*         every instruction of FUNC
  uprobe:BIN:str*           entry of every function matching a glob
  uretprobe:BIN:FUNC        return of FUNC; 'BIN:FUNC%return' means the same
  usdt:BIN:PROVIDER:NAME    a <sys/sdt.h> marker; its arguments are printed
  uprobe:BIN:FILE.c:LINE    a source line (the file needs -g)

examples:
  ptrace-raw trace uprobe:./app:compute -- ./app input.txt
  ptrace-raw trace ./app:compute%return -c './app input.txt'
  ptrace-raw trace 'uprobe:./app:parse+*' -p 1234
  ptrace-raw trace 'uprobe:libc:str*' --count -p 1234
  ptrace-raw trace uretprobe:libc:malloc --filter 'retval == 0' --stack -p 1234
  ptrace-raw trace usdt:./app:myapp:request --hist arg1 -- ./app
  ptrace-raw trace 'uprobe:libc:open*' --count-by 'cstr(arg0)' -p 1234
  ptrace-raw trace libc:malloc --count-by ustack -p 1234
  ptrace-raw trace uprobe:./app:app.c:42 --json -o hits.ndjson -- ./app
  ptrace-raw trace --latency ./app:compute --trace-out trace.json -- ./app
  ptrace-raw trace --script probes.py -p 1234

output:
  One line per hit: seconds since start, pid/tid, the probe, then arg0..
  (hex; entry args saved for return probes with --args), retval and the call's
  duration at return probes, usdt_args at USDT probes, and the backtrace with
  --stack.  Our output goes to -o FILE, else to stderr (as strace does); the
  traced command keeps its own stdin, stdout and stderr.  With --count,
  --count-by, --latency or --hist only the summaries are printed, at exit or
  on Ctrl-C (--hits prints the hit lines as well).  --json writes NDJSON only
  (give -o FILE when the command writes to stderr too).

expressions (--filter, --print, --count-by, --hist): Python over one hit,
with arg0, arg1, ... (a USDT probe's are the marker's arguments), retval
(only when every PROBE is a return probe), pid, tid, comm (the thread's
name), probe (the spec text), func (the function hit, by the name the spec
matched), ip, ustack (the backtrace as one string, 'f+0x0 <- main+0x2a
<- ...'), cstr(ADDR[, MAX]) (the C string at ADDR, as str), var(NAME) (a
parameter or local in scope, from DWARF: var('total') at a line probe) and
hit (the API's Hit object, e.g. hit.read(arg1, 16), hit.format_vars()).  A
--print or --count-by that fails at a hit (a string at an unreadable
address) shows '?'.

exit status: the command's (128+N if signal N killed it; 130 if Ctrl-C
ended tracing and killed it; 0 if --duration ran out or a script's handler
called tracer.stop()),
0 with -p only, 1 on errors, 2 on usage errors (a probe spec that does not
parse is one).
"""

LIST_EPILOG = """\
PATTERN is a glob over function names, PROVIDER:NAME of markers and, with
--lines, source file names.  Addresses are the file's, as uprobe:BIN:0xADDR
takes them.

examples:
  ptrace-raw list ./app
  ptrace-raw list libc 'str*'
  ptrace-raw list --lines ./app app.c
  ptrace-raw list -p 1234 'myapp:*'
"""


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line errors (exit status 2)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parse(args: List[str]) -> argparse.Namespace:
    """The command line, with a command's options and operands in any
    order (``trace uprobe:a:f --count uprobe:a:g``): argparse's
    parse_intermixed_args, which refuses subcommands, runs on the
    command's own parser."""
    top, commands = _parser()
    at = next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))
    if at == len(args) or args[at] not in commands:
        return top.parse_args(args)  # --help, --version, or the error for no command
    top.parse_args(args[:at + 1])  # what comes before the command
    opts = commands[args[at]].parse_intermixed_args(args[at + 1:])
    opts.command_name = args[at]
    return opts


def _parser():
    """The top-level parser, and each command's by name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show tracebacks of errors, for bug reports")
    # Both commands read DWARF (trace: lines, arguments, backtraces; list: lines).
    debug_info = argparse.ArgumentParser(add_help=False)
    debug_info.add_argument("--debug-file-directory", metavar="DIR[:DIR...]",
                            help="where separate debug files of stripped programs and "
                                 "libraries are looked for, by build ID and .gnu_debuglink, "
                                 "as gdb's set debug-file-directory (default: /usr/lib/debug)")
    top = _Parser(prog="ptrace-raw", parents=[common],
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  description="User-space probes over ptrace: uprobes without the kernel.",
                  epilog="examples:\n"
                         "  ptrace-raw demo\n"
                         "  ptrace-raw list ./app 'comp*'\n"
                         "  ptrace-raw trace uprobe:./app:compute -- ./app input.txt\n"
                         "  ptrace-raw trace --help    (every probe kind and option)")
    top.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = top.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    trace = sub.add_parser(
        "trace", parents=[common, debug_info], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="trace probes in a command or running processes",
        usage="%(prog)s [options] PROBE... (-p PID | -c CMD | -- CMD ARGS...)",
        description="Set probes in a command or running processes and report every hit.",
        epilog=TRACE_EPILOG)
    trace.add_argument("probes", nargs="*", metavar="PROBE", help="probe specs (see below)")
    target = trace.add_argument_group("what to trace")
    target.add_argument("-p", "--pid", type=int, action="append", default=[], metavar="PID",
                        help="attach to a running process (repeatable); it is detached, "
                             "unharmed, when tracing ends")
    target.add_argument("-c", "--command", metavar="CMD",
                        help="run CMD (split like a shell would, without one) traced")
    target.add_argument("-f", "--follow-forks", action="store_true",
                        help="trace forked children too")
    target.add_argument("-d", "--duration", type=float, metavar="SECONDS",
                        help="end tracing after SECONDS, as Ctrl-C would, but with exit "
                             "status 0 (as BCC's funccount -d)")
    target.add_argument("--script", metavar="FILE.py",
                        help="run a Python file with a global 'tracer' (the Tracer) before "
                             "tracing starts; it may add probes (tracer.add_probe, "
                             "@tracer.probe) and start processes")
    shown = trace.add_argument_group("what to print")
    shown.add_argument("--args", type=int, metavar="N",
                       help="arguments to print (default: 3 at function entries, 0 elsewhere; "
                            "return probes save N entry arguments)")
    shown.add_argument("--filter", metavar="EXPR", help="only hits where EXPR is true")
    shown.add_argument("--print", action="append", default=[], metavar="EXPR", dest="prints",
                       help="add EXPR=value to each hit line, e.g. 'cstr(arg0)' (repeatable)")
    shown.add_argument("--stack", action="store_true", help="print a backtrace per hit")
    shown.add_argument("--count", action="store_true",
                       help="count hits per probe, and per function of a pattern (as funccount)")
    shown.add_argument("--count-by", action="append", default=[], metavar="EXPR",
                       help="count hits per value of EXPR, as bpftrace's @[EXPR] = count(), "
                            "e.g. 'cstr(arg0)' (repeatable)")
    shown.add_argument("--latency", action="append", default=[], metavar="FUNC-SPEC",
                       help="histogram of FUNC's call durations in nsecs (repeatable)")
    shown.add_argument("--hist", action="append", default=[], metavar="EXPR",
                       help="power-of-two histogram of EXPR per hit (repeatable)")
    shown.add_argument("-i", "--interval", type=float, metavar="SECONDS",
                       help="print the summaries every SECONDS, each interval's own (as BCC's "
                            "funccount -i)")
    shown.add_argument("--hits", action="store_true",
                       help="print hit lines even with --count, --count-by, --latency or --hist")
    shown.add_argument("--no-inline", action="store_true",
                       help="count and time with int3 probes even where an inline probe "
                            "(no stop per hit) would do")
    out = trace.add_argument_group("where to print")
    out.add_argument("-o", "--output", metavar="FILE", help="write our output to FILE, not stderr")
    out.add_argument("--json", action="store_true", help="write NDJSON objects only")
    out.add_argument("--trace-out", metavar="FILE.json",
                     help="also write a Chrome trace (chrome://tracing, Perfetto)")
    trace.set_defaults(run=_trace)

    lst = sub.add_parser(
        "list", parents=[common, debug_info], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="list functions, USDT markers and source lines one can probe",
        usage="%(prog)s [--lines] (BIN | -p PID) [PATTERN]",
        description="List what can be probed in a file, or in every file a process maps.",
        epilog=LIST_EPILOG)
    lst.add_argument("names", nargs="*", metavar="BIN [PATTERN]")
    lst.add_argument("-p", "--pid", type=int, help="list the files process PID maps")
    lst.add_argument("--lines", action="store_true", help="also list source files and lines")
    lst.set_defaults(run=_list)

    demo = sub.add_parser("demo", parents=[common],
                          help="build a small program, trace it and show the cost per hit",
                          description="Build a small C program with gcc, trace it with entry, "
                                      "return and USDT probes, and measure the cost per hit.")
    demo.set_defaults(run=_demo)
    return top, {"trace": trace, "list": lst, "demo": demo}


# -- trace ----------------------------------------------------------------------------

class _CliProbe:
    """How the command line shows one probe's hits."""

    def __init__(self, text: str, nargs: Optional[int], latency: Optional[Log2Hist] = None,
                 count: bool = False):
        self.spec = parse_spec(text)
        if nargs is None:
            nargs = 3 if is_function_entry(self.spec) else 0
        self.nargs = nargs
        self.locate = needs_location(self.spec)
        self.latency = latency
        self.hits = 0
        #: a pattern's hits under --count, per function (or marker) it
        #: matched, as funccount counts them
        self.by_place = ({} if count and (self.spec.is_glob or self.spec.is_marker_glob)
                         else None)
        #: the inline counter or histogram doing this probe's work, if any
        self.inline = None
        #: what it had gathered by the last summary (it counts on from the
        #: start): (hits, hits by function) of a counter, a histogram's
        #: buckets
        self.inline_seen = None
        #: for --latency, the function entry an inline histogram goes on
        self.entry_text = None


def _count_rows(probe: _CliProbe):
    """(spec, function or marker, hits) for each line --count prints about
    ``probe``: one, or for a pattern one per function it matched that was
    hit, fewest hits first as funccount has them (and the pattern alone,
    with 0, when none was)."""
    if probe.by_place is None:
        return [(probe.spec, None, probe.hits)]
    rows = sorted((hits, place or "", place) for place, hits in probe.by_place.items() if hits)
    return [(probe.spec, place, hits) for hits, _, place in rows] or [(probe.spec, None, 0)]


def _latency_probe(text: str, nargs: Optional[int]) -> _CliProbe:
    """--latency FUNC-SPEC is a return probe on FUNC: each return hit knows
    when its call entered."""
    spec = parse_spec(text)
    if spec.func is None or spec.offset or spec.kind == "usdt":
        raise UsageError(f"--latency '{text}': needs a function, as in BIN:FUNC")
    if spec.is_glob:
        raise UsageError(f"--latency '{text}': needs one function, not a pattern")
    probe = _CliProbe(f"uretprobe:{spec.binary}:{spec.func}", nargs or 0,
                      latency=Log2Hist(text, "nsecs"))
    probe.entry_text = f"uprobe:{spec.binary}:{spec.func}"
    return probe


def _by_hits_then_key(row):
    """--count-by's order: fewest hits first, as --count has it, then
    numbers by value and everything else by its text."""
    (value, shown), hits = row
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return hits, 0, value, ""
    return hits, 1, 0, shown


class _Session:
    """One ``trace`` run: the tracer, the probes it set for the command
    line, and everything printed at the end."""

    def __init__(self, opts, out: Output):
        self.opts = opts
        self.out = out
        self.filter = HitExpr(opts.filter, "--filter") if opts.filter else None
        self.hists = [(HitExpr(text, "--hist"), Log2Hist(text)) for text in opts.hist]
        self.prints = [HitExpr(text, "--print") for text in opts.prints]
        #: --count-by: per expression, the hits per value, keyed as --print
        #: shows the value (its JSON form, its text)
        self.count_bys = [(HitExpr(text, "--count-by"), {}) for text in opts.count_by]
        self.probes = [_CliProbe(text, opts.args, count=opts.count) for text in opts.probes]
        self.probes += [_latency_probe(text, opts.args) for text in opts.latency]
        self._check_retval()
        self.summary = bool(opts.count or opts.count_by or opts.latency or opts.hist)
        self.show_hits = opts.hits or not self.summary
        self.chrome = ChromeTrace() if opts.trace_out else None
        self.render = render_json if opts.json else render_text
        wanted = [e.max_arg + 1 for e in [e for e, _ in self.hists + self.count_bys]
                  + self.prints]
        if self.filter is not None:
            wanted.append(self.filter.max_arg + 1)
        self.keep_args = max(wanted, default=0)
        self.start_ns = time.monotonic_ns()
        self.stopping = False
        #: a script's handler called tracer.stop(), or --duration ran out:
        #: what we spawned is killed, and that is no failure of the command
        self.ended_on_purpose = False
        self.tracer = None
        self.interrupted = 0
        self.held = opts.held
        self._ours = []
        #: a script's probes' hits by the last summary
        self._script_seen = {}

    def _check_retval(self) -> None:
        """retval in an expression needs every probe it runs at (the command
        line's; a script's have their own handlers) to be a return probe,
        as bpftrace refuses retval in a uprobe: at an entry ``retval > 1``
        has nothing to compare, and a silent false or true would hide it."""
        entries = [p.spec.text for p in self.probes if not p.spec.is_return]
        if not entries:
            return
        for expr, option in ([(self.filter, "--filter")] + [(e, "--hist") for e, _ in self.hists]
                             + [(e, "--count-by") for e, _ in self.count_bys]
                             + [(e, "--print") for e in self.prints]):
            if expr is not None and "retval" in expr.uses:
                raise UsageError(f"{option} '{expr.text}': retval is known at return probes "
                                 f"only, not at {', '.join(entries)}")

    def emit(self, obj) -> None:
        self.out.write(json.dumps(obj))

    def run(self) -> int:
        with Tracer(follow_forks=self.opts.follow_forks, debug_dirs=self.opts.debug_dirs) as tracer:
            self.tracer = tracer
            try:
                command = self._start(tracer)
                self.start_ns = time.monotonic_ns()
                caught = self._run_in_slices(tracer)
            except BaseException:
                # a script's sys.exit in a handler, say: what we started
                # must not run on untraced
                tracer.detach(kill_spawned=True)
                raise
            self.interrupted = tracer.stopped_by or caught
            script_probes = self._script_probes(tracer)
        if self.chrome is not None:
            self._write_chrome()
        status = self._status(command)
        if self.out.broken:
            return BROKEN_PIPE_STATUS
        self._summaries(script_probes)
        if self.opts.json:
            self.emit({"type": "exit", "status": status})
        self.out.flush()
        if self.out.failed is not None:
            raise self.out.failed
        return BROKEN_PIPE_STATUS if self.out.broken else status

    def _run_in_slices(self, tracer) -> int:
        """Run the tracer in slices of FLUSH_EVERY seconds, so that lines
        batched for a pipe or a file show up soon even when hits are rare.
        Tracer.run ends cleanly on SIGINT/SIGTERM/SIGHUP; between two slices
        they are held (``held_signals``), so Ctrl-C never lands as
        KeyboardInterrupt.  Returns the signal held, or 0."""
        held = self.held
        # In whole nanoseconds: -d 2 -i 1 (or -d 0.3 -i 0.1) ends at the
        # second (third) interval's end, whose summary is the last one, not
        # one more just before a last one that is all but empty.
        now = time.monotonic_ns()
        end = None if self.opts.duration is None else now + round(self.opts.duration * 1e9)
        every = None if self.opts.interval is None else max(1, round(self.opts.interval * 1e9))
        report = None if every is None else now + every
        while tracer.processes and not held.signals and not self.out.done:
            now = time.monotonic_ns()
            if end is not None and now >= end:
                self.ended_on_purpose = True
                break
            if report is not None and now >= report:
                self._summaries(self._script_probes(tracer))
                report += every * (1 + (now - report) // every)
            left = min([FLUSH_EVERY * 1e9] + [t - now for t in (end, report) if t is not None])
            if tracer.run(timeout=left / 1e9):
                self.ended_on_purpose = not self.stopping
                break
            self.out.flush()
        if tracer.processes:
            tracer.detach(kill_spawned=True)
        return held.first

    def _script_probes(self, tracer):
        """The probes a script set, which --count counts too.  An inline
        probe's int3 stand-in (set up front, or once its library came and
        could not be patched) is ours, not a script's to count again."""
        ours = self._ours + [p.inline.probe for p in self.probes
                             if p.inline is not None and p.inline.probe is not None]
        return [p for p in tracer.probes if all(p is not q for q in ours)]

    def _check_held(self) -> None:
        """A stop signal held while the tracees were being set up ends the
        set-up here: before anything is attached, before the script runs
        (which takes Ctrl-C itself), and at its end."""
        if self.held.signals:
            raise _Signalled(self.held.first)

    def _start(self, tracer):
        """Attach, spawn, set probes and run the script, before any tracee
        runs; returns the spawned command's Process, if any."""
        opts = self.opts
        # Every spec checked before anything is touched (Tracer.check_probe),
        # a library one against the libraries of the command's bitness.
        bits = None
        if opts.argv and not opts.pid:
            bits = elf_bits(shutil.which(opts.argv[0]) or opts.argv[0])
        for probe in self.probes:
            tracer.check_probe(probe.spec.text, opts.pid, bits)
        self._check_held()
        for pid in opts.pid:
            tracer.attach(pid)
        command = None
        if opts.argv:
            command = tracer.spawn(opts.argv)
        inline = [probe for probe in self.probes if self._inline_fits(probe)]
        for probe in self.probes:
            if probe not in inline:
                keep = max(probe.nargs, self.keep_args) if probe.spec.is_return else 0
                self._ours.append(tracer.add_probe(probe.spec.text, self._handler(probe),
                                                   keep_args=keep))
        if opts.script:
            self._check_held()
            with self.held.interruptible():
                self._run_script(tracer)
        # Inline probes go last, after the script's too: one set first
        # patches a function's first bytes, where an int3 probe (a return
        # probe, FUNC+*) is then refused; set after, it finds the int3 and
        # becomes one itself.
        self._check_held()
        for probe in inline:
            self._set_inline(tracer, probe)
        self._check_held()
        if not tracer.processes:
            raise UsageError("nothing to trace: give -p PID, -c CMD or -- CMD ARGS"
                             + (" (the script started no process)" if opts.script else ""))
        return command

    def _inline_fits(self, probe: _CliProbe) -> bool:
        """--count and --latency need no Python per hit when nothing else
        looks at the hits: then an inline probe counts or times them inside
        the tracee, with no stop at all."""
        opts = self.opts
        if opts.no_inline or self.show_hits or self.filter is not None or self.hists \
                or self.count_bys or self.chrome is not None or opts.stack:
            return False
        if probe.latency is not None:
            return True
        # Only a function's entry: FUNC+* probes instructions a few bytes
        # apart, and a source line's sites may lie within another line's
        # patch.  Set as int3s first, they leave an inline count at FUNC to
        # fall back as well, instead of hiding what it patched.
        spec = probe.spec
        return bool(opts.count) and spec.kind == "uprobe" and spec.func is not None \
            and not spec.offset

    def _set_inline(self, tracer, probe: _CliProbe) -> None:
        if probe.latency is not None:
            probe.inline = tracer.latency(probe.entry_text)
        else:
            probe.inline = tracer.count(probe.spec.text)
        if probe.inline.inline:
            what = "timed" if probe.latency is not None else "counted"
            tracer.engine.say(f"probe '{probe.inline.spec.text}': {what} inline, in the tracee")

    def _collect_inline(self) -> None:
        """Add what inline probes gathered since the last summary to the
        summaries: their memory counts on from the start (and outlives the
        tracee)."""
        for probe in self.probes:
            inline = probe.inline
            if inline is None:
                continue
            if probe.latency is None:
                now = inline.value, (dict(inline.by_function) if probe.by_place is not None
                                     else {})
                seen = probe.inline_seen or (0, {})
                probe.hits += now[0] - seen[0]
                for place, hits in now[1].items():
                    probe.by_place[place] = (probe.by_place.get(place, 0) + hits
                                             - seen[1].get(place, 0))
            else:
                now = dict(inline.buckets)
                seen = probe.inline_seen or {}
                for low_ns, count in now.items():
                    if count > seen.get(low_ns, 0):
                        probe.latency.add_bucket(low_ns, count - seen.get(low_ns, 0))
                        probe.hits += count - seen.get(low_ns, 0)
            probe.inline_seen = now

    def _run_script(self, tracer) -> None:
        """Whatever fails in the script says where in it, the tracer's own
        errors too (a spec given to tracer.add_probe names neither the
        script nor the line), as "script FILE failed at line N: ..."."""
        script = self.opts.script
        try:
            runpy.run_path(script, init_globals={"tracer": tracer}, run_name="__ptrace_raw__")
        except Exception as exc:
            at = _script_line(exc, script)
            if not at and isinstance(exc, OSError) and not isinstance(exc, TracerError):
                raise CliError(f"cannot run script {script}: {exc.strerror or exc}") from None
            if self.opts.debug:
                raise
            what = (str(exc) if isinstance(exc, TracerError)
                    else traceback.format_exception_only(type(exc), exc)[-1].strip())
            raise CliError(f"script {script} failed{at}: {what}") from None

    def _handler(self, probe: _CliProbe):
        flt, hists, count_bys, prints, chrome, out = (
            self.filter, self.hists, self.count_bys, self.prints, self.chrome, self.out)
        render = self.render if self.show_hits else None
        stack = self.opts.stack
        name = where(probe.spec)
        by_place = probe.by_place
        marker = probe.spec.kind == "usdt"

        def on_hit(hit):
            if flt is not None and not flt(hit):
                return
            probe.hits += 1
            if by_place is not None:
                place = hit.usdt_marker if marker else hit.function
                by_place[place] = by_place.get(place, 0) + 1
            if probe.latency is not None:
                probe.latency.add(hit.time_ns - hit.entry_time_ns)
            else:
                for expr, hist in hists:
                    value = hist_value(expr(hit))
                    if value is not None:
                        hist.add(value)
                for expr, table in count_bys:
                    key = printed(expr, hit)
                    table[key] = table.get(key, 0) + 1
            if render is not None or chrome is not None:
                rec = hit_record(hit, self.start_ns, probe.nargs, stack and render is not None,
                                 probe.locate, prints)
                if render is not None:
                    out.write(render(rec))
                if chrome is not None:
                    chrome.add(hit, rec, rec.get("location", name))
            if out.done:
                self._stop()
        return on_hit

    def _stop(self) -> None:
        """End tracing from a handler (our reader went away); the slices
        loop then detaches, killing what we spawned."""
        if not self.stopping:
            self.stopping = True
            self.tracer.stop()

    def _status(self, command) -> int:
        if command is None:
            return 0
        if self.interrupted and command.exit_signal == signal.SIGKILL:
            return 128 + self.interrupted
        if self.ended_on_purpose and command.exit_signal == signal.SIGKILL:
            return 0
        if command.exit_signal:
            return 128 + command.exit_signal
        return command.exit_code if command.exit_code >= 0 else 1

    def _summaries(self, script_probes) -> None:
        """Print the counts and histograms; with --interval, those since the
        last interval's, under the time, and start them again."""
        self._collect_inline()
        seen = self._script_seen
        counted = [row for p in self.probes if p.latency is None for row in _count_rows(p)]
        counted += [(p.spec, None, p.hits - seen.get(p, 0)) for p in script_probes]
        if self.opts.interval is not None:
            if self.opts.json:
                self.emit({"type": "interval", "time_ns": time.monotonic_ns() - self.start_ns})
            else:
                self.out.write(time.strftime("[%H:%M:%S]"))
        if self.opts.count and counted:
            if self.opts.json:
                for spec, place, hits in counted:
                    located = {"location": place} if place is not None else {}
                    self.emit({"type": "count", "probe": spec.text, **located, "hits": hits})
            else:
                self._write_counts("probe", [
                    (hits, spec.text if place is None else narrowed(spec, place))
                    for spec, place, hits in counted])
        for expr, table in self.count_bys:
            rows = sorted(table.items(), key=_by_hits_then_key)
            if self.opts.json:
                self.emit({"type": "count_by", "expr": expr.text,
                           "counts": [{"key": key, "hits": hits} for (key, _), hits in rows]})
            else:
                self._write_counts(expr.text, [(hits, shown) for (_, shown), hits in rows])
        for hist, fmt in ([(p.latency, format_bcc) for p in self.probes if p.latency]
                          + [(h, format_bpftrace) for _, h in self.hists]):
            if self.opts.json:
                self.emit(hist.as_json())
            else:
                for line in fmt(hist):
                    self.out.write(line)
        self._script_seen = {p: p.hits for p in script_probes}
        for probe in self.probes:
            probe.hits = 0
            if probe.by_place is not None:
                probe.by_place.clear()  # the handler holds this dict
            if probe.latency is not None:
                probe.latency.clear()
        for _, hist in self.hists:
            hist.clear()
        for _, table in self.count_bys:
            table.clear()

    def _write_counts(self, what: str, rows) -> None:
        """A table of (hits, text) rows under "hits  WHAT", the numbers
        right-aligned as funccount has them."""
        width = max([4] + [len(str(hits)) for hits, _ in rows])
        self.out.write(f"{'hits':>{width}s}  {what}")
        for hits, text in rows:
            self.out.write(f"{hits:>{width}d}  {text}")

    def _write_chrome(self) -> None:
        try:
            self.chrome.write(self.opts.trace_out)
        except OSError as exc:
            raise CliError(f"cannot write {self.opts.trace_out}: {exc.strerror}") from None


def _trace(opts) -> int:
    """Under --json every error found once the command line is read (a
    spec that does not parse, a bad --filter, a failure while tracing) is
    an "error" object, then the "exit" one; with -o FILE they go there, and
    the error to stderr as a line too."""
    out = Output(sys.stderr)
    try:
        if opts.output:
            out = _file_output(opts.output)
        diagnostics = (contextlib.redirect_stderr(JsonDiagnostics(out)) if opts.json
                       else contextlib.nullcontext())
        with diagnostics:
            _check_trace_options(opts)
            return _Session(opts, out).run()
    except TracerError as exc:
        if not opts.json:
            raise
        out.write(json.dumps({"type": "error", "message": str(exc)}))
        out.write(json.dumps({"type": "exit", "status": _exit_status(exc)}))
        if out.stream is sys.stderr:
            raise _Reported(exc) from None
        raise
    finally:
        out.flush()
        if out.stream is not sys.stderr:
            try:
                out.stream.close()
            except OSError as exc:
                raise output_error(exc) from None


def _file_output(path: str) -> Output:
    try:
        stream = open(path, "a")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    return Output(stream, replace=os.path.isfile(path))


def _check_trace_options(opts) -> None:
    """What argparse cannot check; makes ``opts.argv`` from -c."""
    if opts.command is not None and opts.argv:
        raise UsageError("give the command either with -c or after '--', not both")
    if opts.command is not None:
        try:
            opts.argv = shlex.split(opts.command)
        except ValueError as exc:
            raise UsageError(f"-c {opts.command!r}: {str(exc).lower()}") from None
        if not opts.argv:
            raise UsageError("-c: empty command")
    if not (opts.probes or opts.latency or opts.script):
        raise UsageError("no probes: give at least one PROBE, --latency or --script")
    if not (opts.pid or opts.argv or opts.script):
        raise UsageError("nothing to trace: give -p PID, -c CMD or -- CMD ARGS")
    if any(pid <= 0 for pid in opts.pid):
        raise UsageError("-p: a process id is a positive number")
    opts.pid = list(dict.fromkeys(opts.pid))
    if opts.args is not None and opts.args < 0:
        raise UsageError("--args: N cannot be negative")
    for option, value in (("--duration", opts.duration), ("--interval", opts.interval)):
        if value is not None and not 0 < value < float("inf"):
            raise UsageError(f"{option}: {value:g} is not a number of seconds above 0")
    if opts.interval is not None and not (opts.count or opts.count_by or opts.latency
                                          or opts.hist):
        raise UsageError("--interval: nothing to print every interval: give --count, "
                         "--count-by, --latency or --hist")
    opts.debug_dirs = _debug_dirs(opts)
    if opts.trace_out:  # written at the end: found unwritable before anything runs
        try:
            open(opts.trace_out, "a").close()
        except OSError as exc:
            raise CliError(f"cannot write {opts.trace_out}: {exc.strerror}") from None


class _Reported(Exception):
    """An error already written to the output, which is stderr."""

    def __init__(self, error: TracerError):
        super().__init__(str(error))
        self.error = error


class _Signalled(BaseException):
    """A stop signal held during set-up: every tracee detached (a spawned
    command killed), the exit status is 128 + the signal.  Not an
    Exception, which a script's error handling would take for its own."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# -- list -----------------------------------------------------------------------------

def _debug_dirs(opts):
    """--debug-file-directory as directories; one that is not there is a
    usage error."""
    try:
        return debug_dirs_of(opts.debug_file_directory)
    except TracerError as exc:
        raise UsageError(f"--debug-file-directory: {exc}") from None


def _list(opts) -> int:
    debug_dirs = _debug_dirs(opts)
    names = list(opts.names)
    if opts.pid is not None:
        if len(names) > 1:
            raise UsageError("with -p, give at most a PATTERN")
        paths, pattern, strict = process_files(opts.pid), (names or [None])[0], False
    else:
        if not 1 <= len(names) <= 2:
            raise UsageError("give BIN or -p PID, and optionally a PATTERN")
        paths, pattern, strict = [resolve_binary(names[0])], (names[1:] or [None])[0], True
    found = False
    for line in list_files(paths, pattern, opts.lines, strict, debug_dirs):
        found = True
        print(line)
    if not found:
        what = f"pid {opts.pid}" if opts.pid is not None else paths[0]
        raise CliError(f"nothing in {what} matches '{pattern}'" if pattern
                       else f"nothing to probe in {what}")
    return 0


# -- demo -----------------------------------------------------------------------------

def _demo(opts) -> int:
    return run_demo()


# -- entry point ------------------------------------------------------------------------

def _script_line(exc: BaseException, script: str) -> str:
    """`` at line N``: where in the script it failed, if it did there."""
    if isinstance(exc, SyntaxError) and exc.filename == script and exc.lineno:
        return f" at line {exc.lineno}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
    return f" at line {lines[-1]}" if lines else ""


def _exit_status(exc: BaseException) -> int:
    """2 for usage errors (a probe spec that does not parse is one), 1 for
    the rest."""
    return 2 if isinstance(exc, (UsageError, SpecError)) else 1


def _split_command(argv: List[str]):
    """Everything after the first '--' is the command to trace; argparse
    would hand it to the PROBE list."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: Optional[List[str]] = None, held: Optional[HeldSignals] = None) -> int:
    """``held``: the stop signals held since the command started (a fresh
    hold is taken if not given)."""
    if held is None:
        held = HeldSignals()
    if sys.stderr is None:
        # Started with 2>&-: what we would say goes nowhere, and the
        # command still runs.  Not inherited: the command sees fd 2 closed.
        sys.stderr = open(os.devnull, "w")
    try:
        return _main(argv, held)
    finally:
        held.restore()


def _main(argv, held: HeldSignals) -> int:
    args, command = _split_command(sys.argv[1:] if argv is None else list(argv))
    debug = "--debug" in args
    try:
        opts = _parse(args)
        opts.debug = debug  # before the command too, where the command's parser does not see it
        opts.argv = command
        opts.held = held
        if command and opts.command_name != "trace":
            raise UsageError("'-- CMD ARGS' only goes with 'trace'")
        if held.signals:
            return 128 + held.first
        if opts.command_name != "trace":
            held.restore()  # list and demo set no probes: a signal ends them as usual
        return opts.run(opts)
    except _Signalled as exc:
        return 128 + exc.signum
    except _Reported as exc:
        if debug:
            traceback.print_exception(exc.error)
        return _exit_status(exc.error)
    except TracerError as exc:
        if debug:
            traceback.print_exc()
        print(f"ptrace-raw: {exc}", file=sys.stderr)
        return _exit_status(exc)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
