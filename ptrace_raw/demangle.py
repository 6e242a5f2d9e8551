"""C++ symbol names made readable (Itanium ABI, as g++ and clang mangle).

We call libstdc++'s ``__cxa_demangle`` through ctypes because it is the
demangler g++, c++filt and gdb share, so names come out exactly as the
toolchain spells them, and libstdc++ is already wherever C++ is built.  The
PyPI options add a dependency for less: ``cxxfilt`` wraps this same call and
has had no release since 2021, and ``itanium_demangler`` reimplements part
of the grammar in Python.

Without libstdc++ a name is returned unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Optional


def _load():
    for name in ("libstdc++.so.6", ctypes.util.find_library("stdc++")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        demangle = lib.__cxa_demangle
        demangle.restype = ctypes.c_void_p
        demangle.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_int)]
        free = ctypes.CDLL(None).free
        free.argtypes = [ctypes.c_void_p]
        free.restype = None
        return demangle, free
    return None


_CXA = _load()


@functools.lru_cache(maxsize=1 << 16)
def demangle(name: str) -> str:
    """The demangled form of ``name``; ``name`` itself when it is not a
    mangled C++ name (or cannot be demangled).  A symbol version suffix
    (``@GLIBCXX_3.4`` or ``@@...``) is kept."""
    base, at, version = name.partition("@")
    text = _cxa_demangle(base) if base.startswith("_Z") else None
    return name if text is None else text + at + version


def _cxa_demangle(mangled: str) -> Optional[str]:
    if _CXA is None:
        return None
    cxa, free = _CXA
    status = ctypes.c_int(0)
    ptr = cxa(mangled.encode(), None, None, ctypes.byref(status))
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode(errors="replace") if status.value == 0 else None
    finally:
        free(ptr)
