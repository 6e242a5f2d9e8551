"""The implementation an IFUNC symbol selects, found by running its resolver.

An IFUNC's symbol value is a resolver: the loader calls it once and binds
callers to the function it returns (glibc picks among its strlen or memcpy
variants by CPU features), so a probe on the symbol fires once, at load, and
never at a call.  When this process maps the very same file (libc, for a
64-bit tracee), the resolver can run here, on the same CPU: what it returns,
less our load bias, is the implementation's address in the file, the same
in every process that maps it.  Other libraries are not loaded for this:
running their constructors inside the tracer is a side effect nobody asked
for.  Anywhere else (a 32-bit libc, another library, a tracee whose
GLIBC_TUNABLES turn CPU features off) the resolver is called in the tracee,
as gdb does, once the loader has relocated the file there.
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


#: what ``InTracee`` gives for an IFUNC whose resolver selects code outside
#: its file (time() and gettimeofday() select the vDSO's): an answer, which
#: a probe of the file cannot follow
ELSEWHERE = object()


class InTracee:
    """What IFUNCs of one file mapped at ``bias`` in ``proc`` select there,
    for ``resolve.places``.  ``here``: a resolver run in the tracer selects
    the same (same file mapped, same tunables), which costs the tracee
    nothing.  Otherwise the resolver is called in a stopped thread of the
    tracee, returning to the int3 at ``return_to``; not before the loader
    has relocated the file (its GOT unfilled, the resolver would fault on
    it), and a call that faults anyway is abandoned, unseen by the program.
    ``known`` holds what resolvers returned in processes like this one
    (same file, same tunables).  ``settled`` turns false when an answer
    was not to be had now but may be later, which must not be kept for
    other processes."""

    def __init__(self, proc, image, bias: int, return_to: int, here: bool, known=None,
                 ours=None):
        self.proc, self.image, self.bias = proc, image, bias
        self.return_to = return_to
        #: the bytes an int3 of ours replaced at an address (None: none
        #: there), for a resolver that calls a probed function
        self.ours = ours
        self.here = here
        #: resolver -> implementation, learnt from processes like this one
        self.known = known or {}
        self.settled = True

    def __call__(self, resolver: int):
        if resolver in self.known:
            return self._checked(self.known[resolver])
        if self.here:
            found = implementation(self.image, resolver)
            if found is not None:
                return found
        thread = next((t for t in self.proc.threads.values()
                       if t.stopped and t.xol is None and not t.in_unreturned_syscall()), None)
        if thread is None or not self._relocated():
            self.settled = False
            return None
        everyone = all(t.stopped for t in self.proc.threads.values())
        target = self.proc.inject_call(thread, resolver + self.bias, self.return_to,
                                       self.ours if everyone else None)
        if target is None:
            self.settled = False
            return None
        return self._checked(target - self.bias)

    def _checked(self, vaddr: int):
        """``vaddr`` if it is code of the file, else ``ELSEWHERE``."""
        if any(lo <= vaddr < hi for lo, hi in self.image.executable_ranges()):
            return vaddr
        return ELSEWHERE

    def _relocated(self) -> bool:
        witness = self.image.relocation_witness
        if witness is None:
            return False
        vaddr, value, relative = witness
        if relative and not self.bias:
            return False
        size = self.image.bits // 8
        try:
            word = int.from_bytes(self.proc.read(vaddr + self.bias, size), "little")
        except OSError:
            return False
        if relative:
            return word == (value + self.bias) & ((1 << self.image.bits) - 1)
        return word != value
