"""The scope of an address from DWARF, as hit.vars looks it up at every
hit (its values are read from live tracees in test_debuginfo_probes.py)."""

from __future__ import annotations

from ptrace_raw import variables
from tests.conftest import build_c
from tests.dwarf.test_params import symbol


def test_the_scope_of_an_address_is_looked_up_once(monkeypatch):
    """A second lookup of an address answers from the cache of scopes: the
    function holding it was looked for again first, at each hit, which
    walks every top-level DIE of its unit (6 ms a hit in a unit of 3000
    functions, where a hit costs tens of microseconds)."""
    exe = build_c("locals.c", 64, ("-O0",))
    start, _ = symbol(exe, "step")
    looked = []
    real = variables.function_die
    monkeypatch.setattr(variables, "function_die", lambda *a: looked.append(a) or real(*a))
    scope = variables.scope_at(exe, start + 4)
    looked.clear()
    assert variables.scope_at(exe, start + 4) is scope
    assert looked == []
