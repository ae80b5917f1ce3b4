"""Hostile ``elapsed=`` values given to ``release`` (issue 10: the breaker's pass).

``elapsed`` is validated as a finite number of seconds; an ``int`` beyond the largest float
(``10**400`` is finite to Python, ``10**400 < math.inf``) passed the check and was stored as a
latency, after which every pick of a latency-aware strategy raised ``OverflowError``.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from tests.conformance.registry import Case, all_cases

CASES = all_cases()
by_case = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def build(case: Case) -> bk.Balancer:
    now = [1000.0]
    return case.factory([bk.Endpoint("10.0.0.1:80"), bk.Endpoint("10.0.0.2:80")], lambda: now[0])


def key(case: Case, i: int) -> str | None:
    return f"k{i}" if case.keyed else None


@by_case
@pytest.mark.parametrize(
    "elapsed", [10**400, 2**1024, int(sys.float_info.max) * 2], ids=["1e400", "2^1024", "2max"]
)
def test_an_int_elapsed_beyond_any_float_is_refused_and_changes_nothing(
    case: Case, elapsed: int
) -> None:
    lb = build(case)
    lease = lb.select(key(case, 0))
    before = lb.stats()
    with pytest.raises(bk.InvalidOption, match="elapsed"):
        lb.release(lease, elapsed=elapsed)
    assert lb.stats() == before
    lb.release(lease, elapsed=0.01)  # still outstanding: the refusal changed nothing
    for i in range(20):  # and the balancer still picks
        lb.release(lb.select(key(case, i)), elapsed=0.01)


@by_case
@settings(max_examples=25, deadline=None)
@given(
    samples=st.lists(
        st.one_of(
            st.sampled_from([0, 0.0, 1e-300, 5e-324, 1e300, sys.float_info.max]),
            st.integers(0, int(sys.float_info.max)),
            st.floats(0, sys.float_info.max),
        ),
        min_size=1,
        max_size=30,
    ),
    ok=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_extreme_finite_elapsed_values_keep_every_strategy_picking(
    case: Case, samples: list[float], ok: list[bool]
) -> None:
    lb = build(case)
    for i, sample in enumerate(samples):
        lb.release(lb.select(key(case, i)), ok=ok[i], elapsed=sample)
    held = [lb.select(key(case, i)) for i in range(4)]
    for lease in held:
        lb.cancel(lease)
    for address, stats in lb.stats().items():
        assert stats.in_flight == 0, address
        assert stats.latency is None or 0 <= stats.latency <= sys.float_info.max


@by_case
@settings(max_examples=20, deadline=None)
@given(
    jumps=st.lists(
        st.tuples(st.sampled_from([-3600.0, -5.0, -1e-9, 0.0, 0.001, 2.0]), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_a_clock_going_back_never_makes_a_negative_latency(
    case: Case, jumps: list[tuple[float, bool]]
) -> None:
    """The default ``elapsed`` is the clock's reading minus ``lease.started``: a clock set back
    while a request ran (a wall clock passed as ``clock=``, NTP) made it negative, and PeakEWMA
    and LeastResponseTime stored negative latency estimates (negative costs)."""
    now = [1000.0]
    lb = case.factory([bk.Endpoint("10.0.0.1:80"), bk.Endpoint("10.0.0.2:80")], lambda: now[0])
    for i, (jump, ok) in enumerate(jumps):
        lease = lb.select(key(case, i))
        now[0] += jump
        lb.release(lease, ok=ok)
    for address, stats in lb.stats().items():
        assert stats.latency is None or stats.latency >= 0, address
