"""The compiled build's heap (``strategies.least``: ``_precedes``, ``_push``, ``_pop``,
``_replace``) against ``heapq`` on tuples, in both builds.

LeastConnections and LeastResponseTime file entries ``(score, deadline, order, state, run)``
on a heap; compiled, they call these functions instead of ``heapq`` (issue 15: native float
comparisons). The picks stay the same only if ``_precedes`` answers exactly as the tuples'
own ``<``/``<=`` and the sifts leave exactly ``heapq``'s layout, ties and dead entries (the
same key twice) included: checked here item for item, with keys drawn from small pools so
ties are common, and with NaN, signed zeros, infinities and non-float items, which take the
tuples' own comparison. Run pure Python these check the algorithm; run compiled, the native
code (``tests/strategies`` is not in the compiled CI list: run it against a compiled tree
with ``PYTHONPATH``, as the lcfast section of docs/benchmarks.md did).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit.strategies.least import _pop, _precedes, _push, _replace, _Run

RUNS: list[_Run | None] = [None, _Run(1.0), _Run(2.0)]
STATES = [object() for _ in range(4)]  # one per order: equal keys are the same endpoint's

NAN = math.nan  # one object: the tuples' ``==`` takes it as equal to itself (identity)
SCORES = st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, math.inf, 3, NAN, float("nan")])
DEADLINES = st.sampled_from([0.0, 0.1, 0.2, 0.2000000000000001, 1.0, math.inf, 1, NAN])
ORDERS = st.sampled_from([0, 1, 2, 3])


@st.composite
def entries(draw: st.DrawFn) -> tuple[Any, ...]:
    order = draw(ORDERS)
    return (draw(SCORES), draw(DEADLINES), order, STATES[order], draw(st.sampled_from(RUNS)))


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


@given(entries(), entries(), st.booleans())
@settings(max_examples=600, deadline=None)
def test_precedes_answers_as_the_tuples(a: tuple[Any, ...], b: tuple[Any, ...], tie: bool) -> None:
    assert _precedes(a, b, tie) is ((a <= b) if tie else (a < b))
    assert _precedes(a, a, tie) is ((a <= a) if tie else (a < a))


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_precedes_on_any_floats(x: float, y: float, tie: bool, shared: bool) -> None:
    """NaN (the same NaN object on both sides: the tuples' ``==`` takes it as equal), signed
    zeros, infinities, subnormals, as score and as deadline."""
    a = (x, y, 0, STATES[0], None)
    b = (x, y, 0, STATES[0], None) if shared else (y, x, 0, STATES[0], None)
    for first, second in ((a, b), (b, a)):
        assert _precedes(first, second, tie) is ((first <= second) if tie else (first < second))


@given(st.lists(st.tuples(st.sampled_from(["push", "pop", "replace"]), entries()), max_size=80))
@settings(max_examples=300, deadline=None)
def test_heap_operations_leave_heapqs_layout(ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    ours: list[tuple[Any, ...]] = []
    theirs: list[tuple[Any, ...]] = []
    for op, entry in ops:
        if op == "push" or not theirs:
            _push(ours, entry)
            heapq.heappush(theirs, entry)
        elif op == "pop":
            _pop(ours)
            heapq.heappop(theirs)
        else:
            _replace(ours, entry)
            heapq.heapreplace(theirs, entry)
        assert _same(ours, theirs)


def test_pop_to_empty_and_replace_alone() -> None:
    entry = (0.0, 1.0, 0, STATES[0], None)
    heap: list[tuple[Any, ...]] = []
    _push(heap, entry)
    _pop(heap)
    assert heap == []
    _push(heap, entry)
    other = (0.0, 2.0, 1, STATES[1], None)
    _replace(heap, other)
    assert heap[0] is other and len(heap) == 1
