"""What debug information costs the first hit: parse times of the lazy
DWARF layer on the largest file with DWARF at hand (the tracer's own
libpython when it was built with -g), first call and cached call.

    python -m bench.dwarf_cost [PATH]

A first hit waits for whatever its probe needs: symbols to set it, line
tables for a source-line probe, one FDE for each backtrace frame, one CU's
DIEs for named arguments.  None of these may parse the whole file.
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
import time

from ptrace_raw.elf import ElfImage
from ptrace_raw.lines import iter_source_lines, line_sites, source_line
from ptrace_raw.params import function_params
from ptrace_raw.unwind import image_cfi


def _largest_with_dwarf() -> str:
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    found = sorted(glob.glob(os.path.join(libdir, "libpython*.so*")), key=os.path.getsize)
    return os.path.realpath(found[-1]) if found else os.path.realpath(sys.executable)


def _timed(label: str, fn):
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    again = time.perf_counter() - t0
    print(f"{label:<42} first {first * 1e3:9.1f} ms   cached {again * 1e3:8.3f} ms")
    return result


def main(path: str) -> None:
    print(f"{path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    image = _timed("ElfImage.open + every function symbol",
                   lambda: (ElfImage.open(path), list(ElfImage.open(path).iter_functions())))[0]
    sym = image.get_function("PyObject_GetAttr") if image.has_function("PyObject_GetAttr") \
        else next(image.iter_functions())
    _timed(f"CFI row at {sym.name} (one FDE)", lambda: image_cfi(path).row_at(sym.value + 4))
    _timed(f"source line of {sym.name} (one CU's lines)", lambda: source_line(path, sym.value))
    where = source_line(path, sym.value)
    if where is not None and not where[0].endswith(".c"):
        # A header line is inlined into many units: the costly case, left
        # out of a quick run (see the README); take the function's own file.
        where = next(((f, lines[len(lines) // 2]) for f, lines in iter_source_lines(path)
                      if f.endswith(os.sep + "object.c") or f.endswith("/object.c")), None)
    if where is not None:
        _timed(f"line sites of {os.path.basename(where[0])}:{where[1]}",
               lambda: line_sites(path, where[0], where[1]))
    _timed(f"named parameters of {sym.name} (one CU)", lambda: function_params(path, sym.name))
    _timed("every source line of the file (a listing)", lambda: sum(1 for _ in iter_source_lines(path)))


if __name__ == "__main__":
    main(os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 else _largest_with_dwarf())
