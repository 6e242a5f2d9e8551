"""Power-of-two histograms for the command line: ``--latency`` prints them
like BCC's funclatency, ``--hist`` like bpftrace's ``hist()``.

One bucket layout serves both and the JSON output: negative values in one
bucket, then [0, 0], [1, 1], [2, 3], [4, 7], ...  A value's bucket is its bit
length, so adding a value costs one int operation on the hit path.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

_NEGATIVE = -1


class Log2Hist:
    """Counts of integer values by power-of-two bucket; ``unit`` names what
    the values measure ("nsecs"), None for a plain value."""

    def __init__(self, name: str, unit: Optional[str] = None):
        self.name = name
        self.unit = unit
        self.counts: Dict[int, int] = {}
        self.total = 0
        #: the values' sum, None once a bucket came without its values
        self.sum: Optional[int] = 0

    def clear(self) -> None:
        """Empty, for the next interval."""
        self.counts = {}
        self.total = 0
        self.sum = 0

    def add(self, value: int) -> None:
        self._count(value, 1)
        if self.sum is not None:
            self.sum += value

    def add_bucket(self, low: int, count: int) -> None:
        """``count`` values in ``low``'s bucket, their sum unknown: an
        inline histogram keeps counts per bucket only."""
        self._count(low, count)
        self.sum = None

    def _count(self, value: int, count: int) -> None:
        index = value.bit_length() if value >= 0 else _NEGATIVE
        self.counts[index] = self.counts.get(index, 0) + count
        self.total += count

    def buckets(self) -> List[Tuple[Optional[int], int, int]]:
        """(low, high, count) with inclusive bounds, from the lowest to the
        highest non-empty bucket, empty ones between included; the negative
        bucket's low is None."""
        if not self.counts:
            return []
        lo, hi = min(self.counts), max(self.counts)
        return [(*_bounds(i), self.counts.get(i, 0)) for i in range(lo, hi + 1)]

    def as_json(self) -> dict:
        return {"type": "hist", "name": self.name, "unit": self.unit,
                "buckets": [{"low": lo, "high": hi, "count": n} for lo, hi, n in self.buckets()]}


def _bounds(index: int) -> Tuple[Optional[int], int]:
    if index == _NEGATIVE:
        return None, -1
    if index == 0:
        return 0, 0
    return 1 << (index - 1), (1 << index) - 1


def _bar(count: int, most: int, width: int, char: str) -> str:
    """Rounded down, as BCC and bpftrace draw theirs: a bucket under a
    mark's worth of the fullest shows none, so that a few stray values
    do not look like a mode of their own."""
    return char * min(width, count * width // most)


def format_bcc(hist: Log2Hist) -> List[str]:
    """funclatency's table, every bucket from 0 up to the highest used."""
    if not hist.total:
        return [f"{hist.name}: no events"]
    rows = hist.buckets()
    first = min(hist.counts)
    if first > 0:
        rows = [(*_bounds(i), 0) for i in range(0, first)] + rows
    most = max(n for _, _, n in rows)
    out = [f"{hist.name}:", f"     {hist.unit or 'value':<19s} : count     distribution"]
    for lo, hi, n in rows:
        low = "-inf" if lo is None else str(lo)
        out.append(f"{low:>10s} -> {hi:<10d} : {n:<8d} |{_bar(n, most, 40, '*'):<40s}|")
    unit = f" {hist.unit}" if hist.unit else ""
    if hist.sum is None:
        out.append(f"count: {hist.total}")
    else:
        out.append(f"avg = {hist.sum / hist.total:.0f}{unit}, total: {hist.sum}{unit}, "
                   f"count: {hist.total}")
    return out


def _short(n: int) -> str:
    """bpftrace's bucket labels: 1K, 2M for exact powers of 1024."""
    for suffix, scale in (("E", 1 << 60), ("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30),
                          ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def format_bpftrace(hist: Log2Hist) -> List[str]:
    """bpftrace's layout: half-open ranges, only the used span."""
    if not hist.total:
        return [f"@{hist.name}: no events"]
    rows = hist.buckets()
    most = max(n for _, _, n in rows)
    out = [f"@{hist.name}:"]
    for lo, hi, n in rows:
        if lo is None:
            label = "(..., 0)"
        elif lo == hi:
            label = f"[{lo}]"
        else:
            label = f"[{_short(lo)}, {_short(hi + 1)})"
        out.append(f"{label:<14s}{n:>8d} |{_bar(n, most, 52, '@'):<52s}|")
    return out
