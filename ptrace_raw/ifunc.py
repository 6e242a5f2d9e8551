"""The implementation an IFUNC symbol selects, found by running its resolver
in this process.

An IFUNC's symbol value is a resolver: the loader calls it once and binds
callers to the function it returns (glibc picks among its strlen or memcpy
variants by CPU features), so a probe on the symbol fires once, at load, and
never at a call.  When this process maps the very same file (libc, for a
64-bit tracee), the resolver can run here, on the same CPU: what it returns,
less our load bias, is the implementation's address in the file, the same
in every process that maps it.  Other libraries are not loaded for this:
running their constructors inside the tracer is a side effect nobody asked
for.
"""

from __future__ import annotations

import ctypes
import os
from typing import Dict, Optional, Tuple

from .maps import read_maps

#: x86 glibc resolvers take no arguments and return the function's address
_RESOLVER = ctypes.CFUNCTYPE(ctypes.c_void_p)

_cache: Dict[Tuple[str, int, int], Optional[int]] = {}


def implementation(image, resolver: int) -> Optional[int]:
    """File address of the function the IFUNC resolver at file address
    ``resolver`` of ``image`` selects on this machine, or None when this
    process does not map that file, or the answer lies outside its code
    (time() and gettimeofday() resolve to the vDSO)."""
    try:
        ino = os.stat(image.path).st_ino
    except OSError:
        return None
    key = (image.path, ino, resolver)
    if key not in _cache:
        _cache[key] = _resolve_here(image, ino, resolver)
    return _cache[key]


def _resolve_here(image, ino: int, resolver: int) -> Optional[int]:
    real = os.path.realpath(image.path)
    for m in read_maps(os.getpid()):
        if m.is_exec and m.inode == ino and os.path.realpath(m.path) == real:
            bias = image.load_bias(m.start, m.offset, m.perms)
            target = _RESOLVER(resolver + bias)()
            if not target:
                return None
            vaddr = target - bias
            if any(lo <= vaddr < hi for lo, hi in image.executable_ranges()):
                return vaddr
            return None
    return None
