"""Every entry of the refusal tables is refused with its own reason, and no
byte string makes ``analyze`` raise anything but UnsupportedInstruction.

Linux uprobes' two-byte exclusions (syscall, ud2, the 0f 01 group...) are
unreachable as written, because the one-byte table allows 0x0f before they
are consulted: hence a test per table entry here.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arch import I386, X86_64, UnsupportedInstruction
from arch import x86_refuse as R

ADDR = 0x401000
# modrm/SIB/disp/imm tail long enough for any form of the opcode
TAIL = bytes.fromhex("c0 00 00 00 00 00 00 00".replace(" ", ""))


def _cases():
    for arch in (X86_64, I386):
        extra = R.ONE_BYTE_REFUSED_64 if arch.bits == 64 else R.ONE_BYTE_REFUSED_32
        for op, reason in {**R.ONE_BYTE_REFUSED, **extra}.items():
            yield arch, bytes([op]) + TAIL, reason
        for (op, reg), reason in R.GROUP_REFUSED.items():
            yield arch, bytes([op, 0xc0 | reg << 3]) + TAIL, reason
        for op, reason in R.TWO_BYTE_REFUSED.items():
            yield arch, bytes([0x0f, op]) + TAIL, reason
        for op, reason in R.THREE_BYTE_38_REFUSED.items():
            yield arch, bytes([0x66, 0x0f, 0x38, op, 0x00]) + TAIL, reason


CASES = list(_cases())


@pytest.mark.parametrize("arch,code,reason", CASES,
                         ids=[f"{a.name}-{c[:5].hex()}" for a, c, _ in CASES])
def test_table_entry_is_refused_with_its_reason(arch, code, reason):
    with pytest.raises(UnsupportedInstruction) as exc:
        arch.analyze(code, ADDR)
    assert exc.value.reason == reason
    # Messages show the instruction next to its reason ("syscall+0x17
    # (syscall: ...)"): a reason naming it first said it twice.
    assert not reason.startswith(exc.value.text.split()[0] + ":")


@pytest.mark.parametrize("arch", [X86_64, I386], ids=["x86_64", "i386"])
@pytest.mark.parametrize("branch", ["e8", "e9", "eb", "74", "0f84", "c3", "c2", "e2", "e3", "ffd0", "ffe0"])
def test_opsize_prefixed_near_branches(arch, branch):
    code = bytes.fromhex("66" + branch) + TAIL
    with pytest.raises(UnsupportedInstruction) as exc:
        arch.analyze(code, ADDR)
    assert exc.value.reason == R.OPSIZE_BRANCH
    arch.analyze(bytes.fromhex(branch) + TAIL, ADDR)


@pytest.mark.parametrize("branch", ["e8", "e9", "eb", "74", "0f84", "e2", "e3", "c3", "ffd0", "ffe0"])
def test_opsize_prefixed_near_branches_with_rex_w_are_64_bit(branch):
    """REX.W takes precedence over 0x66 on Intel and AMD alike: ``66 66 48
    e8`` is the padded ``call __tls_get_addr`` of general-dynamic TLS in
    every -fPIC library that has thread-locals (14,079 such calls in this
    machine's /usr/lib/x86_64-linux-gnu, 5,902 in libLLVM-14 alone), and
    was refused with the 16-bit reason."""
    plan = X86_64.analyze(bytes.fromhex("666648" + branch) + TAIL, ADDR)
    plain = X86_64.analyze(bytes.fromhex(branch) + TAIL, ADDR)
    assert type(plan) is type(plain) and plan.length == plain.length + 3


def test_an_opsize_prefixed_ret_imm16_is_refused_even_with_rex_w():
    """capstone reads ``66 48 c2 08 00`` as 7 bytes, the CPU as 5."""
    with pytest.raises(UnsupportedInstruction) as exc:
        X86_64.analyze(bytes.fromhex("6648c2080090909090"), ADDR)
    assert exc.value.reason == R.OPSIZE_BRANCH


def test_undecodable_bytes_are_refused():
    for code in (b"", b"\x0f", b"\xc4\xe2", b"\x0f\x38\xff\x00"):
        with pytest.raises(UnsupportedInstruction):
            X86_64.analyze(code, ADDR)


@settings(max_examples=600, deadline=None)
@given(code=st.binary(min_size=0, max_size=16), bits=st.sampled_from([64, 32]),
       slot=st.sampled_from([0x40000000, 0x7ffff7ff0000]))
def test_analyze_never_raises_anything_else(code, bits, slot):
    """Arbitrary bytes: a plan whose methods all work, or a clear refusal."""
    arch = X86_64 if bits == 64 else I386
    addr = 0x401000
    try:
        plan = arch.analyze(code, addr)
    except UnsupportedInstruction as exc:
        assert exc.reason
        return
    assert plan.strategy in ("emulate", "boost", "step")
    assert 1 <= plan.length <= min(15, len(code))
    assert len(plan.step_code(addr, slot)) == arch.xol_slot_size
    boost = plan.boost_code(addr, slot & 0xffffffff if bits == 32 else slot)
    assert boost is None or len(boost) == arch.xol_slot_size
    if not plan.boostable:
        assert boost is None
