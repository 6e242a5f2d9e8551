"""/proc/PID/maps as typed entries."""

from __future__ import annotations

from typing import List, NamedTuple


class MapEntry(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str

    @property
    def is_exec(self) -> bool:
        return self.perms[2] == "x"

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end


def parse_maps(text: str) -> List[MapEntry]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        out.append(MapEntry(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16),
                            int(parts[4]), parts[5].strip() if len(parts) > 5 else ""))
    return out


def read_maps(pid: int) -> List[MapEntry]:
    with open(f"/proc/{pid}/maps") as f:
        return parse_maps(f.read())


def mapped_files(pid: int) -> List[str]:
    """The files with executable mappings in process ``pid`` (its
    program and libraries), in map order; OSError if it cannot be read."""
    return list(dict.fromkeys(m.path for m in read_maps(pid)
                              if m.is_exec and m.path.startswith("/")))
