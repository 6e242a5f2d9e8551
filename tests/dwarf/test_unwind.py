"""CFI unwinding replayed over a real stack, without a process.

The tracee ``dwarf_unwind.c`` calls main -> level_a -> level_b -> level_c ->
qsort (libc) -> compare -> level_d -> snapshot, and ``snapshot`` saves its
registers, its stack from sp to the top of [stack], and /proc/self/maps.
The test runs ``unwind`` over that snapshot and checks the exact chain of
function names, so every frame (compiled code at -O0 and -O2 without frame
pointers, libc's qsort frames, the i386 ``main`` that realigns its stack)
has to be unwound right.
"""

from __future__ import annotations

import bisect
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from ptrace_raw.cfi_expr import UnsupportedExpression, evaluate
from ptrace_raw.unwind import image_cfi, unwind
from tests.conftest import build_c

# Snapshot register names -> DWARF register numbers.
DWARF_NUMBERS = {
    64: {"pc": 16, "sp": 7, "fp": 6, "rbx": 3, "r12": 12, "r13": 13, "r14": 14, "r15": 15},
    32: {"pc": 8, "sp": 4, "fp": 5, "ebx": 3, "esi": 6, "edi": 7},
}
CHAIN = ["snapshot", "level_d", "compare", "<libc>", "level_c", "level_b", "level_a", "main"]


class Snapshot:
    """Registers, stack bytes and memory map saved by the tracee."""

    def __init__(self, prefix, bits):
        self.word = bits // 8
        values = dict(line.split() for line in open(f"{prefix}.regs"))
        values = {k: int(v, 16) for k, v in values.items()}
        self.base = values.pop("stack_base")
        self.regs = {DWARF_NUMBERS[bits][k]: v for k, v in values.items()}
        self.stack = open(f"{prefix}.stack", "rb").read()
        self.maps = []
        for line in open(f"{prefix}.maps"):
            fields = line.split(None, 5)
            if len(fields) < 6:
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5].strip()
            if path == "[vdso]":
                # The vDSO has no file: its saved image is handed to the
                # unwinder as bytes, as a tracer reads them out of the
                # process.
                self.maps.append((lo, hi, 0, f"{prefix}.vdso"))
            elif path.startswith("/"):
                self.maps.append((lo, hi, int(fields[2], 16), path))

    def read_word(self, addr):
        off = addr - self.base
        if off < 0 or off + self.word > len(self.stack):
            raise OSError(f"{addr:#x} is not in the saved stack")
        return int.from_bytes(self.stack[off:off + self.word], "little")

    def module_at(self, pc):
        """(path, load bias) of the saved file mapped at ``pc``, or None."""
        for lo, hi, _, path in self.maps:
            if lo <= pc < hi:
                return path, self.load_bias(path)
        return None

    def find_module(self, pc):
        """``module_at`` as the unwinder takes it: the vDSO as bytes."""
        found = self.module_at(pc)
        if found is not None and found[0].endswith(".vdso"):
            return open(found[0], "rb").read(), found[1]
        return found

    def load_bias(self, path):
        """The first mapping of the file (offset 0) holds the lowest
        PT_LOAD segment, so bias = its start - that segment's page."""
        start = min(lo for lo, _, off, p in self.maps if p == path and off == 0)
        with open(path, "rb") as f:
            lowest = min(s["p_vaddr"] for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD")
        return start - (lowest & ~0xFFF)


def function_names(path):
    """Sorted (start, end, name) of the file's function symbols."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        syms = sorted(
            (s["st_value"], s["st_value"] + s["st_size"], s.name)
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC" and s["st_value"]
        )
    return syms


def names_of(frames, snap, program):
    syms = function_names(program)
    starts = [s[0] for s in syms]
    out = []
    for i, frame in enumerate(frames):
        pc = frame.pc if i == 0 else frame.pc - 1
        path, bias = snap.module_at(pc) or ("?", 0)
        if path.endswith(".vdso"):
            name = "<vdso>"
        elif path != str(program):
            name = "<libc>" if "libc" in path.rsplit("/", 1)[-1] else path
        else:
            j = bisect.bisect_right(starts, pc - bias) - 1
            name = syms[j][2] if j >= 0 and pc - bias < syms[j][1] else f"?{pc:#x}"
        # Collapse a run of frames in one library (qsort's internal calls)
        # into one name.
        if not (out and out[-1] == name and name.startswith("<")):
            out.append(name)
    return out


def take_snapshot(program, tmp_path, *args):
    prefix = tmp_path / "snap"
    subprocess.run([str(program), str(prefix), *args], check=True, timeout=20)
    return prefix


def replay(program, bits, tmp_path, *args):
    snap = Snapshot(take_snapshot(program, tmp_path, *args), bits)
    frames = list(unwind(snap.regs, snap.read_word, snap.word, snap.find_module))
    return frames, snap


@pytest.mark.parametrize("flags", [("-O0",), ("-O2", "-fomit-frame-pointer")],
                         ids=["O0", "O2-nofp"])
def test_unwind_through_libc_qsort(bits, flags, tmp_path):
    program = build_c("dwarf_unwind.c", bits, flags)
    frames, snap = replay(program, bits, tmp_path)
    names = names_of(frames, snap, program)
    # After main come libc's start-up frames, and the walk ends at _start,
    # whose CFI marks the return address undefined.
    assert names[:len(CHAIN)] == CHAIN
    assert names[len(CHAIN):] and set(names[len(CHAIN):]) <= {"<libc>", "_start"}
    assert names[-1] == "_start"
    assert frames[0].how == "regs" and all(f.how == "cfi" for f in frames[1:])
    # Each caller's frame is above its callee's.
    assert all(a.sp < b.sp for a, b in zip(frames, frames[1:]))


@pytest.mark.parametrize("flags", [("-O0",), ("-O2", "-fomit-frame-pointer")],
                         ids=["O0", "O2-nofp"])
def test_unwind_through_a_signal_frame(bits, flags, tmp_path):
    # The signal trampoline (libc's on x86_64, the vDSO's on i386) has an
    # 'S' CIE and restores registers by expression from the signal frame;
    # the frame it returns to was interrupted, not calling.
    program = build_c("dwarf_unwind.c", bits, flags)
    frames, snap = replay(program, bits, tmp_path, "signal")
    names = names_of(frames, snap, program)
    # On i386 the trampoline is the vDSO's and raise was interrupted in the
    # vDSO's system-call entry; on x86_64 both are in libc.
    inner = ["<libc>"] if bits == 64 else ["<vdso>", "<libc>"]
    assert names[:len(inner) + 5] == ["snapshot", "level_d", "on_signal", *inner, "level_sig", "main"]


@pytest.mark.parametrize("flags", [("-O0",), ("-O2", "-fomit-frame-pointer")],
                         ids=["O0", "O2-nofp"])
def test_caller_found_by_pc_minus_one(bits, flags, tmp_path):
    # level_nr ends with a call to a noreturn function: its return address
    # is the first byte after level_nr, where another function's CFI (or
    # none) applies.  The caller's CFI must be looked up at pc - 1.
    program = build_c("dwarf_unwind.c", bits, flags)
    frames, snap = replay(program, bits, tmp_path, "noreturn")
    start, end, _ = next(f for f in function_names(program) if f[2] == "level_nr")
    bias = snap.module_at(frames[0].pc)[1]
    assert frames[2].pc - bias == end
    assert names_of(frames, snap, program)[:4] == ["snapshot", "stop_here", "level_nr", "main"]


def test_unwind_from_debug_frame(bits, tmp_path):
    # Without unwind tables gcc puts the CFI in .debug_frame only.
    program = build_c("dwarf_unwind.c", bits,
                      ("-O0", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables"))
    with open(program, "rb") as f:
        elf = ELFFile(f)
        assert elf.get_section_by_name(".debug_frame") is not None
    frames, snap = replay(program, bits, tmp_path)
    assert names_of(frames, snap, program)[:len(CHAIN)] == CHAIN


def test_unwind_by_frame_pointers_where_no_cfi(bits, tmp_path):
    # The program's own code without any CFI: its frames come from the rbp
    # chain, libc's from libc's .eh_frame.
    if not shutil.which("objcopy"):
        pytest.skip("objcopy is needed to strip .debug_frame")
    built = build_c("dwarf_unwind.c", bits,
                    ("-O0", "-fno-omit-frame-pointer", "-fno-asynchronous-unwind-tables",
                     "-fno-unwind-tables"))
    program = tmp_path / "nocfi"
    subprocess.run(["objcopy", "--remove-section=.debug_frame", str(built), str(program)], check=True)
    assert not any(s.row_at(a) for s in [image_cfi(program)]
                   for a in (f[0] for f in function_names(program) if f[2] == "level_b"))
    frames, snap = replay(program, bits, tmp_path)
    # Past main the walk may wander: a frame-pointer step cannot know the
    # caller's exact sp when main realigned its stack.
    assert names_of(frames, snap, program)[:len(CHAIN)] == CHAIN
    hows = [f.how for f in frames[:len(CHAIN) + 1]]
    assert "fp" in hows and "cfi" in hows


def test_unwind_stops_at_max_frames_and_unreadable_memory(tmp_path):
    program = build_c("dwarf_unwind.c", 64, ("-O0",))
    snap = Snapshot(take_snapshot(program, tmp_path), 64)
    assert len(list(unwind(snap.regs, snap.read_word, 8, snap.find_module, max_frames=3))) == 3

    def no_memory(addr):
        raise OSError("unreadable")
    # Frame 0 needs no memory; finding its caller does.
    assert len(list(unwind(snap.regs, no_memory, 8, snap.find_module))) == 1


def test_frame_pointer_loop_stops():
    # A frame-pointer chain pointing at itself must not loop forever.
    regs = {16: 0x1000, 7: 0x7000, 6: 0x7100}
    memory = {0x7100: 0x7100, 0x7108: 0x1000}
    frames = list(unwind(regs, lambda a: memory[a], 8, lambda pc: None))
    assert [f.pc for f in frames] == [0x1000, 0x1000]


# x86_64 PLT CFA: rsp + 8, plus 8 once the pc is 11 or more bytes into the
# 16-byte entry (after the push).  Bytes as gcc/ld emit them.
PLT_CFA = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])


@pytest.mark.parametrize("rip,cfa", [(0x401020, 0x1008), (0x40102A, 0x1008),
                                     (0x40102B, 0x1010), (0x40102F, 0x1010)])
def test_plt_cfa_expression(rip, cfa):
    assert evaluate(PLT_CFA, {7: 0x1000, 16: rip}, None, 8) == cfa


def test_cfa_expression_deref_and_refusals():
    # i386 main after realigning: CFA = [ebp - 4] (DW_OP_breg5 -4; DW_OP_deref).
    assert evaluate(bytes([0x75, 0x7C, 0x06]), {5: 0x2000}, {0x1FFC: 0x3000}.__getitem__, 4) == 0x3000
    with pytest.raises(UnsupportedExpression):
        evaluate(bytes([0x96, 0x9C]), {}, None, 8)        # DW_OP_nop; DW_OP_call_frame_cfa
    with pytest.raises(UnsupportedExpression):
        evaluate(bytes([0x22]), {}, None, 8)              # DW_OP_plus on an empty stack
    with pytest.raises(UnsupportedExpression):
        evaluate(bytes([0x73, 0]), {7: 1}, None, 8)       # DW_OP_breg3: rbx is unknown
