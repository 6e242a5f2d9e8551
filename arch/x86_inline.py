"""Inline probe handlers for x86: machine code that runs inside the tracee.

The bytes are GNU as output of ``x86_inline.S`` (the listing, with a comment
per step, is there; a test assembles it again and compares).  A handler is
position-independent: every address it needs is an absolute immediate
filled in here, so a trampoline can put it anywhere and the tracer's data
can live in any mapping, near the code or not.
"""

from __future__ import annotations

from .base import UnsupportedInstruction

_HANDLERS = {
    ("count", 64): "488d6424809c5048a188888888888888884885c0740b64483b042500000000740e48b81111111111111111f048ff00589d488da42480000000",
    ("record", 64): "488d6424809c50515248a188888888888888884885c0740b64483b042500000000747548ba1111111111111111488b024889c1482b4a084881f9444444447353488d4801f0480fb10a75e24889c14881e15555555548c1e106488d4c0a40648b142566666666488951084889791048897118488b142448895120488b542408488951284c8941304c89493848ffc0488901eb05f048ff42105a59589d488da42480000000",
    ("enter", 64): "488d6424809c505152565764488b34250000000048a188888888888888884839f00f849f0000004869ce4786c86148c1e939ba800000004869f91004000048b822222222222222224801c7488b074839f0741e4885c0750cf0480fb13774124839f0740d48ffc14883e17fffca75c8eb55488b4f084883f920734b488d51014889570848c1e105488d7c0f10488db424b0000000488937488b064889470848b81111111111111111488947180f3148c1e2204809d04889471048b833333333333333334889065f5e5a59589d488da42480000000",
    ("return", 64): "488d6424f89c505152565741500f3148c1e2204809d04989c064488b3425000000004869ce4786c86148c1e939ba800000004869f91004000048b822222222222222224801c7483937740d48ffc14883e17fffca75dc0f0b488d742438488b4f084885c9746c48ffc94889ca48c1e205488d54171048393275e7488b420848890648a188888888888888884885c0740b64483b042500000000742e4c2b4210488b721848894f084c89c0b97777777748f7e1480facd02031c94885c07406480fbdc8ffc1f048ff04ce41585f5e5a59589dc30f0b",
    ("count", 32): "9c50a18888888885c07409653b05000000007410f083051a1a1a1a01f083151b1b1b1b00589d",
    ("record", 32): "9c505152a18888888885c07409653b05000000007469ba111111118b0289c12b4a0481f94444444473518d4801f00fb10a75e889c181e155555555c1e1058d4c0a20658b15666666668951048b5424148951088b54241889510c8b54241c8951108b5424208951148b5424248951188b54242889511c408901eb04f0ff42085a59589d",
    ("enter", 32): "9c5051525657658b35000000003b3588888888746c69ce4786c861c1e919ba8000000069f91004000081c7222222228b0739f0741785c0750af00fb137740d39f074094183e17f4a75d9eb358b4f0883f920732d8d5101895708c1e1058d7c0f108d74241889378b06894708c74718111111110f31894710895714c706333333335f5e5a59589d",
    ("return", 32): "8d6424fc9c5051525657550f315250658b350000000069ce4786c861c1e919ba8000000069f91004000081c722222222393774094183e17f4a75e90f0b8d7424248b4f0885c974774989cac1e2058d541710393275ee8b42088906a18888888885c07409653b050000000074468b04248b6c24042b42101b6a148b7218894f08b977777777f7e189d789e8f7e101f883d20031c985d274080fbdca83c121eb0885c074040fbdc841f08304ce01f08354ce04008d6424085d5f5e5a59589dc30f0b",
}

# placeholder immediates in the listing, by name and width
_WORD = {64: 8, 32: 4}


def _placeholders(kind: str, bits: int, values: dict) -> list:
    """(placeholder, width, value) for each immediate ``kind`` takes."""
    w = _WORD[bits]
    data = {"count": "counter", "record": "ring", "enter": "hist"}.get(kind)
    out = []
    if kind == "count" and bits == 32:
        out += [(0x1a1a1a1a, 4, values["counter"]), (0x1b1b1b1b, 4, values["counter"] + 4)]
    elif data is not None:
        out.append((int("11" * w, 16), w, values[data]))
    out.append((int("88" * w, 16), w, values["guard"]))
    if kind in ("enter", "return"):
        out.append((int("22" * w, 16), w, values["table"]))
    if kind == "enter":
        out.append((int("33" * w, 16), w, values["stub"]))
    if kind == "record":
        cap = values["capacity"]
        out += [(0x44444444, 4, cap), (0x55555555, 4, cap - 1),
                (0x66666666, 4, values["tid_offset"])]
    if kind == "return":
        out.append((0x77777777, 4, values["mult"]))
    return out


def inline_handler(bits: int, kind: str, values: dict) -> bytes:
    """The handler ``kind`` with its immediates filled in from ``values``."""
    code = bytes.fromhex(_HANDLERS[(kind, bits)])
    for mark, width, value in _placeholders(kind, bits, values):
        old = mark.to_bytes(width, "little")
        if code.count(old) != 1:
            raise AssertionError(f"placeholder {mark:#x} of {kind}/{bits} is not unique")
        if not 0 <= value < (1 << (8 * width)) or (width == 4 and bits == 64 and value >> 31
                                                   and mark != 0x77777777):
            raise UnsupportedInstruction(f"value {value:#x} does not fit the {kind} handler")
        code = code.replace(old, value.to_bytes(width, "little"))
    return code


#: ``rdtsc; shl $32,%rdx; or %rdx,%rax; ret``: the host's TSC for a tracer
#: running as a 64-bit process, to calibrate ticks against its clock
HOST_RDTSC = bytes.fromhex("0f3148c1e2204809d0c3")
