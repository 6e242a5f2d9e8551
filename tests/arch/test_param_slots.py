"""Where each architecture's calling convention puts a function's
parameters at entry, as ``Hit.args`` reads them (``param_slots``)."""

from __future__ import annotations

from arch import I386, X86_64

INT, DOUBLE = ("int", 8), ("float", 8)


def test_x86_64_integers_take_six_registers_then_the_stack_in_turn():
    assert X86_64.param_slots([INT] * 8) == [[n] for n in range(8)]


def test_x86_64_floats_take_no_integer_register():
    assert X86_64.param_slots([DOUBLE, INT, ("float", 4), ("complex", 8), ("complex", 16), INT]) \
        == [None, [0], None, None, None, [1]]


def test_x86_64_a_float_past_the_eighth_xmm_register_is_a_stack_slot_before_later_integers():
    assert X86_64.param_slots([INT] * 6 + [DOUBLE] * 9 + [INT]) \
        == [[n] for n in range(6)] + [None] * 8 + [[6], [7]]


def test_x86_64_a_complex_double_that_does_not_fit_the_xmm_left_goes_whole_to_the_stack():
    """Seven doubles leave one xmm register: the complex double takes two
    stack slots, and the double after it the last xmm register."""
    slots = X86_64.param_slots([INT] * 6 + [DOUBLE] * 7 + [("complex", 16), DOUBLE, INT])
    assert slots[-3:] == [None, None, [8]]


def test_x86_64_a_sixteen_byte_float_leaves_the_stack_unknown_but_not_the_registers():
    """A long double is always on the stack (16-byte aligned), a
    __float128 in an xmm register: the size cannot tell them apart."""
    assert X86_64.param_slots([("float", 16)] + [INT] * 7) \
        == [None] + [[n] for n in range(6)] + [None]
    assert X86_64.param_slots([("complex", 32), INT]) == [None, [0]]


def test_x86_64_an_aggregate_leaves_everything_after_it_unknown():
    assert X86_64.param_slots([INT, ("other", 16), INT, DOUBLE]) == [[0], None, None, None]


def test_i386_puts_everything_on_the_stack_in_whole_words_and_reads_scalars_only():
    assert I386.param_slots([INT, ("int", 4), ("complex", 8), ("float", 4), ("other", 12), INT]) \
        == [[0, 1], [2], None, [5], None, [9, 10]]


def test_what_each_arch_returns_through_memory():
    """x86_64: an aggregate of more than 16 bytes only; i386 (gcc on
    Linux): every aggregate, and a complex number but a float one."""
    cases = [("other", 8), ("other", 16), ("other", 24), ("complex", 8), ("complex", 16),
             ("complex", 32), ("int", 8), ("float", 16)]
    assert [X86_64.returns_in_memory(*c) for c in cases] == [False, False, True] + [False] * 5
    assert [I386.returns_in_memory(*c) for c in cases] == [True, True, True, False, True, True,
                                                           False, False]
