"""The compiled build's heap (``strategies.least``: ``_Node``, ``_precedes``, ``_sorts_after``,
``_push``, ``_pop``, ``_replace``) against ``heapq`` on the tuples pure Python files, in both
builds.

LeastConnections and LeastResponseTime file entries ``(score, deadline, order, state, run)``:
pure Python as tuples on a ``heapq`` heap; compiled, as :class:`_Node` objects (native float
fields) sifted by the functions here (issue 15: native comparisons, no float unboxed, no tuple
allocated per release). The picks stay the same only if ``_precedes`` answers exactly as the
tuples' own ``<``/``<=`` and the sifts leave exactly ``heapq``'s layout, ties and dead entries
(the same key twice) included: checked here item for item, with keys drawn from small pools so
ties are common, with signed zeros, infinities, subnormals and huge values. NaN is left out: no
key is ever NaN (see ``_Node``). Run pure Python these check the algorithm; run compiled, the
native code (``tests/strategies`` is not in the compiled CI list: run it against a compiled
tree with ``PYTHONPATH``).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit import Endpoint
from balancekit._state import EndpointState
from balancekit.strategies.least import (
    _Node,
    _pop,
    _precedes,
    _push,
    _replace,
    _Run,
    _sorts_after,
)

RUNS: list[_Run | None] = [None, _Run(1.0), _Run(2.0)]
# One state per order: equal keys are the same endpoint's (orders are unique).
STATES = [EndpointState(Endpoint(f"10.0.0.{i}:80"), i) for i in range(4)]

SCORES = st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 5e-324, 1.7976931348623157e308, math.inf])
DEADLINES = st.sampled_from([0.0, 0.1, 0.2, 0.2000000000000001, 1.0, math.inf])
ORDERS = st.sampled_from([0, 1, 2, 3])


@st.composite
def entries(draw: st.DrawFn) -> tuple[Any, ...]:
    order = draw(ORDERS)
    return (draw(SCORES), draw(DEADLINES), order, STATES[order], draw(st.sampled_from(RUNS)))


def node(entry: tuple[Any, ...]) -> _Node:
    return _Node(*entry)


@given(entries(), entries(), st.booleans())
@settings(max_examples=600, deadline=None)
def test_precedes_answers_as_the_tuples(a: tuple[Any, ...], b: tuple[Any, ...], tie: bool) -> None:
    assert _precedes(node(a), node(b), tie) is ((a <= b) if tie else (a < b))
    assert _precedes(node(a), node(a), tie) is ((a <= a) if tie else (a < a))


@given(entries(), entries())
@settings(max_examples=400, deadline=None)
def test_sorts_after_answers_as_the_tuples(last: tuple[Any, ...], fresh: tuple[Any, ...]) -> None:
    """The release's test, ``fresh >= last``, on the fresh key's values (no node made)."""
    assert _sorts_after(node(last), fresh[0], fresh[1], fresh[2]) is (fresh >= last)


@given(
    st.floats(allow_nan=False, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=True),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_precedes_on_any_floats(x: float, y: float, tie: bool, swapped: bool) -> None:
    """Signed zeros, infinities, subnormals, as score and as deadline."""
    a = (x, y, 0, STATES[0], None)
    b = (y, x, 0, STATES[0], None) if swapped else (x, y, 0, STATES[0], RUNS[1])
    for first, second in ((a, b), (b, a)):
        expected = (first <= second) if tie else (first < second)
        assert _precedes(node(first), node(second), tie) is expected


@given(st.lists(st.tuples(st.sampled_from(["push", "pop", "replace"]), entries()), max_size=80))
@settings(max_examples=300, deadline=None)
def test_heap_operations_leave_heapqs_layout(ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    ours: list[_Node] = []
    theirs: list[tuple[Any, ...]] = []
    made: dict[int, tuple[Any, ...]] = {}  # id(node) -> the tuple it was made from
    for op, entry in ops:
        made_node = node(entry)
        made[id(made_node)] = entry
        if op == "push" or not theirs:
            _push(ours, made_node)
            heapq.heappush(theirs, entry)
        elif op == "pop":
            _pop(ours)
            heapq.heappop(theirs)
        else:
            _replace(ours, made_node)
            heapq.heapreplace(theirs, entry)
        assert len(ours) == len(theirs)
        assert all(made[id(x)] is y for x, y in zip(ours, theirs, strict=True))
        ours_kept = {id(x) for x in ours}
        made = {key: value for key, value in made.items() if key in ours_kept}


def test_pop_to_empty_and_replace_alone() -> None:
    first = _Node(0.0, 1.0, 0, STATES[0], None)
    heap: list[_Node] = []
    _push(heap, first)
    _pop(heap)
    assert heap == []
    _push(heap, first)
    other = _Node(0.0, 2.0, 1, STATES[1], None)
    _replace(heap, other)
    assert heap[0] is other and len(heap) == 1


def test_a_node_reads_as_its_tuple() -> None:
    """The code both builds share reads entries by index (``entry[3]``): a node answers as the
    tuple it stands for (indices 0-4, all the shared code reads), and refuses others."""
    entry = (0.5, 1.25, 3, STATES[3], RUNS[2])
    made = node(entry)
    assert tuple(made[i] for i in range(5)) == entry
    assert made[3] is STATES[3] and made[4] is RUNS[2]
    with pytest.raises(IndexError):
        made[5]
    assert repr(made).startswith("_Node(0.5, 1.25, 3, ")
