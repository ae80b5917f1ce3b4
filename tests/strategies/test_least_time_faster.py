"""``least_time.faster_than``: ``latency < faster_than(reference, tie)`` is exactly
LeastResponseTime's ``tie > 1.0 and latency * tie < reference`` (the product rounded) for every
latency >= 0, so the pure-Python release may test the one comparison (issue 15)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from balancekit.strategies.least_time import faster_than

LATENCIES = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
TIES = st.one_of(
    st.just(1.0),
    st.floats(min_value=1.0, max_value=101.0),
    st.sampled_from([1.5, 1.1, 1.2, 3.0, 1.0 + 1e-15, math.nextafter(1.0, 2.0)]),
)


def _rule(latency: float, reference: float, tie: float) -> bool:
    return tie > 1.0 and latency * tie < reference


@given(latency=LATENCIES, reference=LATENCIES, tie=TIES)
def test_one_comparison_is_the_rule(latency: float, reference: float, tie: float) -> None:
    assert (latency < faster_than(reference, tie)) == _rule(latency, reference, tie)


@given(reference=LATENCIES, tie=TIES)
def test_exact_at_the_boundary(reference: float, tie: float) -> None:
    bound = faster_than(reference, tie)
    if bound == -math.inf:  # no tolerance: never faster beyond it
        assert tie <= 1.0
        return
    for latency in (bound, math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf)):
        if latency >= 0.0:
            assert (latency < bound) == _rule(latency, reference, tie)
    for latency in (0.0, -0.0, reference, reference / tie):
        assert (latency < bound) == _rule(latency, reference, tie)


def test_examples() -> None:
    assert faster_than(0.030, 1.0) == -math.inf
    assert faster_than(0.0, 1.5) == 0.0  # nothing is below a zero reference
    assert faster_than(0.0, 1.5) <= 0.0
    bound = faster_than(0.001, 1.5)
    assert bound * 1.5 >= 0.001 > math.nextafter(bound, 0.0) * 1.5
