"""PeakEWMA's select skips the decay of two recent estimates within the tolerance (issue 15).

Two candidates whose raw estimates are within ``sqrt(1 + tolerance)`` (less 1e-9) of each
other, both sampled at most ``decay * ln(1 + tolerance) / 2`` seconds ago, are equals after any
decay in that time, so the fast path lets the load decide without the two ``exp`` calls. These
tests put the candidates' estimates, sample times and loads at and around those bounds (and at
the ends of the floats) and check the fast path picks as the general path's ``_better``, which
always decays both estimates first.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path
Candidate = tuple[float | None, float, int]  # estimate, seconds since its sample, load
Case = tuple[float, float, float, Candidate, Candidate]  # tolerance, decay, now, candidates


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _pick(
    general: bool,
    tolerance: float,
    decay: float,
    now: float,
    first: Candidate,
    second: Candidate,
    seed: int,
) -> str:
    clock = Clock(now)
    lb = bk.PeakEWMA(["a:1", "b:1"], tolerance=tolerance, decay=decay, seed=seed, clock=clock)
    for address, (latency, gap, load) in zip(("a:1", "b:1"), (first, second), strict=True):
        state = lb._members[address]
        state.latency = latency
        state.latency_at = now - gap
        state.load = load  # read by the comparison only: no lease is released here
    lease = lb.select(avoid=NOBODY) if general else lb.select()
    return lease.address


TOLERANCES = st.sampled_from([0.0, 1e-12, 0.01, 0.5, 1.0, 100.0])
DECAYS = st.sampled_from([1e-9, 1e-3, 10.0, 1e9])
LATENCIES = st.one_of(
    st.none(),
    st.sampled_from([0.0, 5e-324, 1e-300, 1e-299, 1e300, 1.7e308]),
    st.floats(min_value=1e-6, max_value=10.0),
)


@st.composite
def _pairs(draw: st.DrawFn) -> Case:
    tolerance, decay = draw(TOLERANCES), draw(DECAYS)
    tie = 1.0 + tolerance
    calm = decay * math.log(tie) / 2.0
    near = math.sqrt(tie)
    a = draw(LATENCIES)
    # b near a's bounds of "near" (on either side), or anything
    factor = draw(
        st.sampled_from(
            [
                1.0,
                *(near * (1 + e) for e in (-2e-9, -1e-9, 0.0, 1e-6)),
                *(1 / (near * (1 + e)) for e in (-2e-9, -1e-9, 0.0, 1e-6)),
            ]
        )
    )
    b = draw(st.one_of(st.just(None if a is None else a * factor), LATENCIES))
    if b is not None and not math.isfinite(b):
        b = None
    gaps = st.sampled_from(
        [0.0, -1.0, calm, calm * (1 + 1e-12), calm * (1 - 1e-12), calm / 2, 2 * calm + 1e-9]
    )
    loads = st.integers(0, 3)
    return (
        tolerance,
        decay,
        draw(st.sampled_from([1e3, 1e9])),
        (a, draw(gaps), draw(loads)),
        (b, draw(gaps), draw(loads)),
    )


@settings(max_examples=600, deadline=None)
@given(case=_pairs(), seed=st.integers(0, 2**16))
def test_the_fast_path_picks_as_better_with_the_decay(case: Case, seed: int) -> None:
    tolerance, decay, now, first, second = case
    fast = _pick(False, tolerance, decay, now, first, second, seed)
    general = _pick(True, tolerance, decay, now, first, second, seed)
    assert fast == general


def test_recent_equal_estimates_are_equals_and_the_load_decides() -> None:
    """The case the shortcut serves, at the bound: sampled exactly ``calm`` seconds ago."""
    tie = 1.5
    calm = 10.0 * math.log(tie) / 2.0
    for seed in range(20):
        picks = {
            _pick(general, 0.5, 10.0, 1e3, (0.02, calm, 1), (0.02 * 1.2, 0.0, 0), seed)
            for general in (False, True)
        }
        assert picks == {"b:1"}  # the less loaded one, though its estimate is 20 % higher


def test_subnormal_estimates_take_the_decay() -> None:
    """Below _TINY the decay's rounding is not relative: 5e-324 decayed by 101 ** -0.25 is 0.0,
    so two equal subnormal estimates are no longer equals (the general path then compares
    costs); the fast path must not take them as equals without decaying them."""
    calm = 10.0 * math.log(101.0) / 2.0
    for seed in range(40):
        for first, second in (
            ((5e-324, calm / 2, 1), (5e-324, 0.0, 0)),
            ((5e-324, 0.0, 0), (5e-324, calm / 2, 1)),
        ):
            fast = _pick(False, 100.0, 10.0, 1e3, first, second, seed)
            assert fast == _pick(True, 100.0, 10.0, 1e3, first, second, seed)
