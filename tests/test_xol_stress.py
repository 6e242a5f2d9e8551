"""Probes on every instruction of real code, where the out-of-line
machinery meets its corner cases: many boosted slots, libraries mapped
high in a 32-bit address space, executables that are not PIE.  Each test
compares the traced program's output and exit status with an untraced run
and checks the hit counts."""

import os
import signal
import subprocess

import pytest

from ptrace_raw.tracer import Tracer
from tests.conftest import build_c
from tests.tracing import pipe_pair


def _untraced(argv):
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    return res.stdout, res.returncode


def _traced(argv, specs, handler=None):
    """(stdout, exit code, probes, messages) of ``argv`` traced with a
    probe per spec."""
    said = []
    r, w = pipe_pair()
    with Tracer(on_message=said.append) as t:
        proc = t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        made = [t.add_probe(spec, handler) for spec in specs]
        t.run()
    return r.read(), proc.exit_code, made, said


def test_more_boosted_sites_in_a_library_than_one_area_holds(build, bits):
    """A library's every instruction boosted takes a second out-of-line
    area near it.  In a 32-bit tracee that lies above 2 GiB, and the
    injected mmap's result, sign-extended to tell an error, was taken for
    a negative address: the tracer died writing the first slot there."""
    lib = build_c("manysites.c", bits, ("-O2", "-shared", "-fPIC"), name="manysites.so")
    exe = build("libuser.c", flags=("-O0", "-fno-builtin"), libs=("-ldl",))
    out, code, (probe,), _ = _traced([exe, lib, 2], [f"uprobe:{lib}:plugin_work+*"])
    assert (out, code) == _untraced([exe, lib, 2])
    assert probe.hits == 2 * 2102


def test_every_instruction_of_a_non_pie_executable_says_what_it_skipped(build, bits):
    """The note naming the instructions ``FUNC+*`` skips was kept for a
    module with a load bias, so a non-PIE executable (bias 0) skipped its
    syscall without a word."""
    exe = build("inline_asm.c", flags=("-O1", "-no-pie"))
    out, code, (probe,), said = _traced([exe, "calls", 3], [f"uprobe:{exe}:f_sys+*"])
    assert (out, code) == _untraced([exe, "calls", 3])
    assert probe.hits == 3 * 3
    assert any("f_sys+*': skipped 1 instruction(s)" in m and "f_sys+0x4" in m for m in said), said


@pytest.mark.parametrize("how", ["boosted", "stepped"])
def test_a_fault_out_of_line_names_the_instruction_at_home_in_its_siginfo(build, bits, how,
                                                                          monkeypatch):
    """SIGFPE (and SIGILL) carry the faulting instruction's address in
    si_addr.  ip was moved home after a fault in a slot, but si_addr kept
    the slot's address, as the kernel reported it; the kernel's uprobes
    put the probed address there.  Both paths, for an idiv by a register,
    a div by memory (rip-relative on x86_64: its boosted copy has its
    displacement moved, its step a scratch register) and a divsd with a
    zero divisor unmasked in MXCSR: each is boosted, and stepped when no
    slot is given to boosts.  A program's handler that skips the
    instruction by its length must find it at home either way."""
    import arch
    from ptrace_raw.xol import XolSpace
    x86 = arch.X86_64 if bits == 64 else arch.I386
    for code in ("48f7f9", "48f73500100000", "f20f5ec1") if bits == 64 else (
            "f7f9", "f7742408", "f20f5ec1"):
        assert x86.analyze(bytes.fromhex(code), 0x1000).strategy == "boost", code
    if how == "stepped":
        monkeypatch.setattr(XolSpace, "boost_slot", lambda self, *args: None)
    exe = build("faultaddr.c", flags=("-O1",))
    boosted = {}

    def seen(hit):
        site = hit.process.probe_state.bps.sites[hit.ip]
        if site.plan.text.startswith(("idiv", "div")):
            boosted[site.plan.text.split()[0]] = site.goto is not None

    out, code, (probe,), said = _traced([exe], [f"uprobe:{exe}:f_*+*"], seen)
    assert (out, code) == _untraced([exe]) and not said
    assert out.count("si_addr home, ip home") == 6
    assert probe.hits == 2 * (5 + 4 + 3 if bits == 64 else 5 + 4 + 6)
    assert boosted == dict.fromkeys(("idiv", "div", "divsd"), how == "boosted")


def test_a_signal_met_entering_a_boosted_copy_finds_the_program_in_its_own_code(build, bits):
    """A signal that comes while a thread is stopped at a probe (a
    profiler's SIGPROF, most often: the trap's own CPU time ticks it) is
    delivered as the thread resumes, into the boosted copy: its handler
    saw ip in the tracer's slot, so a sampling profiler's pc, an unwinder
    through the signal frame or a handler checking where it interrupted
    found no code of the program (73% of SIGPROF samples under a probe on
    every instruction).  The instruction now runs first, by its step path
    (a pushf's step keeps the trap flag out of the image popf loads), and
    a ret that lands on the return probe's trampoline takes the return
    before the signal; each handler then finds the program where it is."""
    exe = build("sigsample.c", flags=("-O1", "-no-pie"))
    rets = []

    def signal_it(hit):
        os.kill(hit.pid, signal.SIGUSR1)

    def returned(hit):
        rets.append(hit.retval)
        signal_it(hit)

    said = []
    r, w = pipe_pair()
    with Tracer(on_message=said.append) as t:
        proc = t.spawn([str(exe), "5"], stdout=w)
        os.close(w)
        probe = t.add_probe(f"uprobe:{exe}:f+*", signal_it)
        t.add_probe(f"uretprobe:{exe}:f", returned)
        t.run()
    assert proc.exit_code == 0 and probe.hits == 5 * 8 and not said
    assert rets == [i + 8 for i in range(5)]
    assert r.read() == f"sum {sum(rets)} own {5 * 8 + 5} elsewhere 0\n"


def test_code_the_loader_relocates_is_run_as_relocated(build, bits):
    """A library of non-PIC code (DT_TEXTREL; on i386 the loader writes an
    absolute address into ``add tr_value,%eax`` and a callee's offset into
    ``call tr_helper``; on x86_64 into ``movabs $tr_value``).  The plans
    came from the file's bytes, so the copy loaded from the unrelocated
    address (SIGSEGV) and a relocated call went nowhere; they are planned
    from memory at the first hit now.  An inline counter there falls back
    to an int3: its jump would be written over bytes the loader changes,
    and detach would write the file's bytes back."""
    lib = build_c("textrel.c", bits, ("-O2", "-shared"), name="textrel.so")
    exe = build("libuser.c", flags=("-O0", "-fno-builtin"), libs=("-ldl",))
    argv = [exe, lib, 3]
    out, code, probes, _ = _traced(argv, [f"uprobe:{lib}:plugin_work+*"]
                                   + ([f"uprobe:{lib}:tr_helper+*"] if bits == 32 else []))
    assert (out, code) == _untraced(argv)
    assert [p.hits for p in probes] == ([3 * 6, 3 * 3] if bits == 32 else [3 * 4])
    said = []
    r, w = pipe_pair()
    with Tracer(on_message=said.append) as t:
        proc = t.spawn([str(a) for a in argv], stdout=w)
        os.close(w)
        counter = t.count(f"uprobe:{lib}:plugin_work")
        t.run()
    assert (r.read(), proc.exit_code) == _untraced(argv)
    assert not counter.inline and counter.value == 3
    assert any("text relocation" in m for m in said), said


_LIBC_FUNCTIONS = ("strlen", "memcpy", "memset", "strcmp", "strchr", "memchr")


def _implementations(exe, arch):
    """{name: (library path, file vaddr, instruction addresses)} of the
    string functions the tracee's libc selects on this CPU (the tracee
    tells, with dlsym), sized by their call-frame information; one with
    no FDE of its own is left out."""
    from ptrace_raw.elf import ElfImage
    from ptrace_raw.unwind import image_cfi

    def function_size(path, vaddr):
        for section in image_cfi(path).sections:
            fde = section.fde_at(vaddr)
            if fde is not None and fde.header["initial_location"] == vaddr:
                return fde.header["address_range"]
        return 0

    out = {}
    lines = subprocess.run([str(exe), "--addrs"], capture_output=True, text=True).stdout
    for line in lines.splitlines():
        name, path, off = line.split()
        vaddr = int(off, 16)
        size = function_size(path, vaddr)
        if size:
            code = ElfImage.open(path).read(vaddr, size)
            out[name] = (path, vaddr, [i.addr for i in arch.decode(code, vaddr)])
    return out


def test_every_instruction_of_libcs_string_implementations(build, bits):
    """The IFUNC-selected implementations (AVX2/EVEX/SSE variants here)
    probed on every instruction, for lengths and alignments that take
    their vector loops, tails and page-cross paths: output unchanged, and
    each entry hit as often as an entry probe alone counts it, at least
    once per call the program makes.  On x86_64 as ``libc:strlen+*``: the
    tracer resolves the IFUNC and sizes the stripped implementation by its
    FDE (it said "no size recorded" and probed nothing); on i386, whose
    libc the tracer cannot load to resolve, by address, from the tracee's
    own dlsym."""
    import arch as _arch
    x86 = _arch.X86_64 if bits == 64 else _arch.I386
    exe = build("libcstress.c", flags=("-O1", "-fno-builtin"), libs=("-ldl",))
    impls = _implementations(exe, x86)
    if not impls:
        pytest.skip("no string implementation of this libc has an FDE of its own")
    argv = [exe, 1]
    entries = {}
    for name, (path, vaddr, _) in impls.items():
        entries[vaddr] = name
    counts = {}

    def count(hit):
        mod = hit.thread.process.probe_state.modules.find(hit.ip)
        off = hit.ip - mod.bias
        counts[off] = counts.get(off, 0) + 1

    if bits == 64:
        specs = [f"uprobe:libc:{name}+*" for name in impls]
    else:
        specs = [f"uprobe:{path}:{a:#x}" for path, _, addrs in impls.values()
                 for a in addrs if len(addrs) < 300]
    out, code, probes, said = _traced(argv, specs, count)
    if any("could not be found here" in m for m in said):
        pytest.skip("the tracer cannot run this libc's IFUNC resolvers")
    assert (out, code) == _untraced(argv)
    assert not any("no size" in m for m in said), said
    _, _, alone, _ = _traced(argv, [f"uprobe:{path}:{vaddr:#x}"
                                    for path, vaddr, _ in impls.values()])
    calls = {"strlen": 45, "memcpy": 45, "memset": 45, "strcmp": 90, "strchr": 90, "memchr": 45}
    for (name, (_, vaddr, addrs)), entry in zip(impls.items(), alone):
        if bits == 32 and len(addrs) >= 300:
            continue
        assert counts.get(vaddr) == entry.hits >= calls[name], name
        assert len([a for a in addrs if a in counts]) > 10, name


@pytest.mark.parametrize("how", ["no-handler", "regs", "stepped"])
def test_every_instruction_of_hand_written_tricky_forms(build, bits, how, monkeypatch):
    """xolstress.c: rip-relative operands of every size and encoding,
    indirect calls and jumps through memory and tables, loop/jrcxz,
    rsp-relative push/pop, enter/leave, pushf/popf, 16-bit forms, TLS,
    rep strings, cpuid/rdtsc, and the program's own int3, ud2 and faults
    (checked by its handlers to come at their own addresses), on one
    thread and then on two at once.  Every instruction a probe may take
    is probed, with no handler (ip alone per hit), with a handler reading
    every register, and with nothing boosted (every plan's step path, or
    its emulation).  Each function's entry is hit once per call."""
    from ptrace_raw.elf import ElfImage
    from ptrace_raw.xol import XolSpace
    if how == "stepped":
        monkeypatch.setattr(XolSpace, "boost_slot", lambda self, *args: None)
    exe = build("xolstress.c", flags=("-O1", "-no-pie", "-pthread"))
    argv = [exe, 3, 2]
    counts = {}

    def count(hit):
        counts[hit.ip] = counts.get(hit.ip, 0) + 1
        if how != "no-handler":
            hit.regs.as_dict()

    out, code, probes, said = _traced(argv, [f"uprobe:{exe}:f_*+*", f"uprobe:{exe}:helper*+*"],
                                      None if how == "no-handler" else count)
    assert (out, code) == _untraced(argv)
    # the program's own int3 and ud2 (and syscall / int $0x80), three ud2s
    # never reached: skipped, with a note
    assert any("skipped 6 instruction(s)" in m for m in said), said
    assert [p.hits for p in probes] == ([3879, 180] if bits == 64 else [3819, 270])
    if how != "no-handler":
        image = ElfImage.open(exe)
        for name, calls in (("f_rip", 3), ("f_branch", 15), ("f_loop", 15), ("f_stack", 15),
                            ("f_misc", 15), ("f_faults", 15), ("helper", 53)):
            assert counts.get(image.get_function(name).value) == calls, name


def test_every_instruction_of_a_general_dynamic_tls_access(build, bits):
    """-fPIC code reaching a thread-local calls __tls_get_addr with
    ``data16 data16 rex.W call`` on x86_64: REX.W makes it a plain 64-bit
    call on Intel and AMD alike, and it was refused as a 16-bit branch
    (FUNC+* skipped it; a probe on it could not be set)."""
    lib = build_c("tlsgd.c", bits, ("-O2", "-fPIC", "-shared"), name="tlsgd.so")
    exe = build("libuser.c", flags=("-O0", "-fno-builtin"), libs=("-ldl",))
    argv = [exe, lib, 3]
    out, code, (probe,), said = _traced(argv, [f"uprobe:{lib}:plugin_work+*"])
    assert (out, code) == _untraced(argv)
    assert not any("skipped" in m for m in said), said
    assert probe.hits % 3 == 0 and probe.hits >= 3 * 8
