"""PeakEWMA's inlined release divides the decay's exponent once for exp and expm1, and leaves
the estimate as it is for a sample below it with no time since or a clock set back (issue 15):
the estimates must be the general path's (``_learn``) bit for bit, signed zeros included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


STEPS = st.lists(
    st.tuples(
        st.sampled_from([0.0, -0.0, -1.0, -1e-9, 1e-9, 0.001, 2.0, 1e9]),  # gap; < 0: set back
        st.one_of(st.sampled_from([0.0, 1e-6, 0.001, 0.03]), st.floats(0.0, 5.0)),
        st.booleans(),
        st.booleans(),  # elapsed given, or measured from the lease
    ),
    max_size=50,
)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS, decay=st.sampled_from([1e-3, 10.0, 1e7]))
def test_the_decay_once_learns_as_the_general_path(
    steps: list[tuple[float, float, bool, bool]], decay: float
) -> None:
    clocks = Clock(), Clock()
    fast = bk.PeakEWMA(["a:1", "b:2"], seed=3, decay=decay, clock=clocks[0])
    slow = bk.PeakEWMA(["a:1", "b:2"], seed=3, decay=decay, clock=clocks[1])
    for gap, elapsed, ok, given_elapsed in steps:
        leases = fast.select(), slow.select(avoid=NOBODY)
        assert leases[0].address == leases[1].address
        clocks[0].now += gap
        clocks[1].now += gap
        sample = elapsed if given_elapsed else None
        fast.release(leases[0], ok=ok, elapsed=sample)
        bk.BalancerBase.release(slow, leases[1], ok=ok, elapsed=sample)  # _learn
        for address in ("a:1", "b:2"):
            a, b = fast.stats()[address].latency, slow.stats()[address].latency
            assert (a is None and b is None) or (a is not None and b is not None)
            if a is not None and b is not None:
                assert a.hex() == b.hex(), (address, a, b)
