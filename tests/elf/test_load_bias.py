"""load_bias and read against a running program (no ptrace: the program
prints its own addresses and code bytes, the test reads /proc/PID/maps).

A probe on FUNC lands at bias + FUNC's file vaddr; with a wrong bias the
int3 corrupts some other instruction.  Every mapping of a file must give
the same bias, since the process layer may see any of them first."""

from __future__ import annotations

import subprocess

import pytest

from ptrace_raw.elf import ElfError, ElfImage

from .binutils import build_variant, readelf_loads


def running(path):
    """Start the tracee and return (its report, its maps), then let it exit."""
    proc = subprocess.Popen([str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        addrs = proc.stdout.readline().split()
        code = bytes.fromhex(proc.stdout.readline().strip())
        with open(f"/proc/{proc.pid}/maps") as f:
            maps = [line.split(None, 5) for line in f]
    finally:
        proc.communicate("x", timeout=10)
    target, getpid = (int(a, 16) for a in addrs)
    return target, getpid, code, maps


def biases(image, maps):
    """The bias from the file's lowest mapping and from each executable one
    (the unambiguous ones, see ElfImage.load_bias)."""
    mine = [f for f in maps if len(f) == 6 and f[5].strip() == image.path]
    lowest = min(mine, key=lambda f: int(f[0].split("-")[0], 16))
    found = set()
    for fields in mine:
        if fields is lowest or "x" in fields[1]:
            start = int(fields[0].split("-")[0], 16)
            found.add(image.load_bias(start, int(fields[2], 16), fields[1]))
    return found


@pytest.mark.parametrize("variant", ["pie", "nopie"])
def test_bias_puts_symbols_at_their_runtime_address(bits, variant):
    path = build_variant(variant, bits)
    target, getpid, code, maps = running(path)
    image = ElfImage.open(path)
    (bias,) = biases(image, maps)
    if variant == "nopie":
        assert bias == 0
    else:
        assert bias and bias % 0x1000 == 0
    symbol = image.get_function("elf_target")
    assert bias + symbol.value == target
    assert image.read(symbol.value, 16) == code

    libc_paths = {f[5].strip() for f in maps if len(f) == 6 and "/libc.so" in f[5]}
    (libc_path,) = libc_paths
    libc = ElfImage.open(libc_path)
    assert libc.bits == bits
    (libc_bias,) = biases(libc, maps)
    assert libc_bias + libc.get_function("getpid").value == getpid


@pytest.mark.parametrize("variant", ["pie", "nopie", "lib"])
def test_bias_from_synthetic_maps(bits, variant):
    """Each PT_LOAD mapped from its page-aligned offset at bias + its
    page-aligned vaddr, as the kernel does.  The data segment shares a file
    page with .rodata: the offset alone names .rodata, its rw- perms the
    data."""
    path = build_variant(variant, bits)
    image = ElfImage.open(path)
    bias = 0 if variant == "nopie" else 0x5555_5555_4000 if bits == 64 else 0x5655_5000
    loads = readelf_loads(path)
    for load in loads:
        offset = load["offset"] & ~0xFFF
        start = bias + (load["vaddr"] & ~0xFFF)
        perms = "r" + ("w" if "W" in load["flags"] else "-") \
            + ("x" if "E" in load["flags"] else "-") + "p"
        if load is loads[0] or "E" in load["flags"]:
            assert image.load_bias(start, offset) == bias
        assert image.load_bias(start, offset, perms) == bias
    with pytest.raises(ElfError, match="offset"):
        image.load_bias(bias, 0x10_0000_0000)
