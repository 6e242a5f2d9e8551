"""Probe specs in bpftrace syntax with perf's aliases.

    uprobe:BIN:FUNC          uprobe:BIN:FUNC+0x10     uprobe:BIN:0x401136
    uprobe:BIN:FUNC+*        uprobe:BIN:str*          uretprobe:BIN:FUNC
    BIN:FUNC%return          BIN:FUNC                 uprobe:BIN:file.c:42
    usdt:BIN:PROVIDER:NAME
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from .errors import SpecError

_KINDS = {"uprobe": "uprobe", "u": "uprobe", "p": "uprobe",
          "uretprobe": "uretprobe", "ur": "uretprobe", "r": "uretprobe",
          "usdt": "usdt", "U": "usdt"}
#: bpftrace probe types with no user-space meaning here
_KERNEL_KINDS = frozenset({"kprobe", "kretprobe", "kfunc", "kretfunc", "fentry", "fexit",
                           "tracepoint", "rawtracepoint", "software", "hardware", "profile",
                           "interval", "watchpoint", "iter"})
_FUNC = re.compile(r"^(?P<func>[^+\s]+?)(?:\+(?P<off>\*|0[xX][0-9a-fA-F]+|\d+))?$")
_LINE = re.compile(r"^(?P<file>[^:]+\.(?:c|h|cc|cpp|cxx|hpp|hh|C|s|S)):(?P<line>\d+)$")


class ProbeSpec(NamedTuple):
    """A parsed spec.  Exactly one of ``func``, ``address``, ``line``,
    ``usdt`` says where; ``offset`` is an int, '*' (every instruction) or
    None."""

    text: str
    kind: str
    binary: str
    func: Optional[str] = None
    offset: object = None
    address: Optional[int] = None
    file: Optional[str] = None
    line: Optional[int] = None
    provider: Optional[str] = None
    name: Optional[str] = None

    @property
    def is_return(self) -> bool:
        return self.kind == "uretprobe"

    @property
    def is_glob(self) -> bool:
        """A function pattern (USDT patterns: ``is_marker_glob``)."""
        return self.func is not None and _is_pattern(self.func)

    @property
    def is_marker_glob(self) -> bool:
        return self.kind == "usdt" and _is_pattern(f"{self.provider}:{self.name}")


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def parse_spec(text: str) -> ProbeSpec:
    """Parse ``text`` or raise SpecError naming it and saying what is wrong."""
    spec = text.strip()
    if not spec:
        raise SpecError("empty probe spec")
    kind = "uprobe"
    head, sep, rest = spec.partition(":")
    if sep and head in _KERNEL_KINDS:
        raise SpecError(f"bad probe '{text}': {head} probes are the kernel's; ptrace-raw "
                        "traces user space (uprobe, uretprobe, usdt)")
    if sep and head in _KINDS:
        kind, spec = _KINDS[head], rest
    if spec.endswith("%return"):
        if kind != "uprobe":
            raise SpecError(f"bad probe '{text}': %return only goes with uprobe specs")
        kind, spec = "uretprobe", spec[: -len("%return")]
    binary, sep, where = spec.partition(":")
    if not sep or not binary or not where:
        raise SpecError(f"bad probe '{text}': expected [uprobe|uretprobe|usdt:]BIN:WHERE")
    if kind == "usdt":
        provider, sep, name = where.partition(":")
        if not sep or not provider or not name or ":" in name:
            raise SpecError(f"bad probe '{text}': expected usdt:BIN:PROVIDER:NAME")
        return ProbeSpec(text, kind, binary, provider=provider, name=name)
    line = _LINE.match(where)
    if line:
        if kind == "uretprobe":
            raise SpecError(f"bad probe '{text}': a return probe needs a function, not a line")
        return ProbeSpec(text, kind, binary, file=line["file"], line=int(line["line"]))
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", where):
        if kind == "uretprobe":
            raise SpecError(f"bad probe '{text}': a return probe needs a function, not an address")
        return ProbeSpec(text, kind, binary, address=int(where, 16))
    m = _FUNC.match(where)
    if not m or ":" in where:
        raise SpecError(f"bad probe '{text}': cannot read '{where}' as FUNC, FUNC+OFF, "
                         "0xADDR or FILE:LINE")
    off = m["off"]
    if off is not None and off != "*":
        off = int(off, 16) if off[:2] in ("0x", "0X") else int(off, 10)
    if kind == "uretprobe" and off:
        raise SpecError(f"bad probe '{text}': a return probe goes on a function entry, "
                         "not an offset")
    return ProbeSpec(text, kind, binary, func=m["func"], offset=off)


def narrowed(spec: ProbeSpec, match: str) -> str:
    """``spec``'s text with its pattern replaced by one function (or
    PROVIDER:NAME marker) it matched, as the user wrote the rest: how a
    pattern's count says which function each line is about, in a spec that
    would probe that one alone."""
    text = spec.text.strip()
    if spec.kind == "usdt":
        return text[:-len(f"{spec.provider}:{spec.name}")] + match
    head, sep, _ = text.partition(":")
    start = (len(head) + 1 if sep and head in _KINDS else 0) + len(spec.binary) + 1
    return text[:start] + match + text[start + len(spec.func):]
