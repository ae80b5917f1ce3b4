"""PeakEWMA's release takes a sample at or above the estimate's last value as a peak without
computing the decay (issue 15): the estimates must be those of the general path, which always
decays first (``_learn``), bit for bit, whatever the samples, outcomes and gaps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


SAMPLES = st.lists(
    st.tuples(
        st.sampled_from([0.0, 1e-9, 0.001, 0.5, 3.0, 40.0]),  # the gap before the release
        st.one_of(st.sampled_from([0.0, 0.001, 0.002, 0.03]), st.floats(0.0, 10.0)),
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(samples=SAMPLES, decay=st.sampled_from([0.001, 1.0, 10.0, 1e6]))
def test_the_inlined_release_learns_as_the_general_path(
    samples: list[tuple[float, float, bool]], decay: float
) -> None:
    clocks = Clock(), Clock()
    fast = bk.PeakEWMA(["a:1", "b:1"], seed=5, decay=decay, clock=clocks[0])
    slow = bk.PeakEWMA(["a:1", "b:1"], seed=5, decay=decay, clock=clocks[1])
    for gap, elapsed, ok in samples:
        leases = fast.select(), slow.select(avoid=NOBODY)
        assert leases[0].address == leases[1].address
        clocks[0].now += gap
        clocks[1].now += gap
        fast.release(leases[0], ok=ok, elapsed=elapsed)
        bk.BalancerBase.release(slow, leases[1], ok=ok, elapsed=elapsed)  # _learn: decays first
        for address in ("a:1", "b:1"):
            assert fast.stats()[address].latency == slow.stats()[address].latency
            assert fast.estimate(address) == slow.estimate(address)


def test_a_sample_above_the_estimate_replaces_it_at_once() -> None:
    """The documented peak rule, through the inlined release: a sample above the current
    estimate replaces it, one below is blended in."""
    clock = Clock()
    lb = bk.PeakEWMA(["a:1"], clock=clock)
    lb.release(lb.select(), elapsed=0.010)
    clock.now += 5.0
    lb.release(lb.select(), elapsed=0.010)  # above the decayed 0.010 * exp(-0.5): a peak
    assert lb.stats()["a:1"].latency == 0.010
    clock.now += 5.0
    lb.release(lb.select(), elapsed=0.001)  # below: blended, between the two
    assert 0.001 < lb.stats()["a:1"].latency < 0.010
