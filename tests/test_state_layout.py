"""Where an EndpointState's every-pick fields lie in memory (issue 15, pure Python).

``balancekit._state``: the four fields every select + release touches (``_EveryPick``) come
first, at offsets 16-48, and a state starts on a 64-byte boundary (256-byte pymalloc blocks), so
that a pick at N = 10,000, whose state is rarely in cache, loads one cache line of it, not two
or three. A layout that drifts (a slot added or removed, the hot fields moved) is caught here;
nothing breaks functionally, it only gets slower. Compiled (mypyc), the class is native and lays
out its fields itself: not checked.
"""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

import balancekit as bk
from balancekit._state import EndpointState

pytestmark = pytest.mark.skipif(bk.compiled, reason="pure Python's slot layout")

EVERY_PICK = {"endpoint", "released", "retired", "selected"}


def _offsets(state: EndpointState) -> dict[str, int]:
    """Each slot's offset in ``state``, found by storing a marker in it and looking for it."""
    found = {}
    names = [name for cls in type(state).__mro__ for name in cls.__dict__.get("__slots__", ())]
    for name in names:
        if name.startswith("_align"):
            continue
        marker, before = object(), getattr(state, name)
        setattr(state, name, marker)
        for offset in range(16, type(state).__basicsize__, 8):
            if ctypes.c_void_p.from_address(id(state) + offset).value == id(marker):
                found[name] = offset
        setattr(state, name, before)
    return found


def test_the_every_pick_fields_come_first() -> None:
    state = EndpointState(bk.Endpoint("10.0.0.1:80"), 0)
    offsets = _offsets(state)
    assert {name for name, offset in offsets.items() if offset < 48} == EVERY_PICK


@pytest.mark.skipif(
    sys.implementation.name != "cpython"
    or sys.version_info[:2] != (3, 11)
    or os.environ.get("PYTHONMALLOC", "pymalloc") not in ("pymalloc", "")
    or sys.flags.dev_mode,  # -X dev: the allocators' debug hooks pad every block (review8b)
    reason="CPython 3.11's pymalloc (pool header, GC header)",
)
def test_states_start_on_a_cache_line() -> None:
    lb = bk.RoundRobin([f"10.0.{i >> 8}.{i & 255}:80" for i in range(2000)])
    starts = {id(state) % 64 for state in lb._members.values()}
    assert starts == {0}
