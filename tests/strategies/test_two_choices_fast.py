"""The two-choice fast paths' own draws (p2cfast, issue 15) pick as the general path.

PowerOfTwoChoices and PeakEWMA draw both candidates from the owner table in ``select`` itself,
redraw a collision there (``_TRIES``: ``_second``'s rejection draws, then its exact draw
among the rest), and leave every other line to ``_TwoChoices._pair``. A collision needs a
pool where one endpoint holds most of the weight (weights 8 and 1: a first draw of the heavy
one collides with 8/9 of the redraws, so all fifteen collide about once in six such picks and
the exact draw runs). The general path (an ``avoid`` naming no member) draws through
``_choose``, ``_candidates`` and ``_second``: both must consume the same random numbers and
pick the same endpoints, with loads held and released in between.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # an avoid that avoids nothing: the general path
NAMES = ["PowerOfTwoChoices", "PeakEWMA"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(name: str, weights: list[int], seed: int, general: bool, steps: int) -> list[object]:
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:1", weight=w) for i, w in enumerate(weights)]
    lb = getattr(bk, name)(endpoints, seed=seed, clock=clock)
    avoid = NOBODY if general else frozenset()
    script = random.Random(seed)
    held: list[bk.Lease] = []
    log: list[object] = []
    for _ in range(steps):
        clock.now += script.choice([0.0, 0.001, 0.05])
        if script.random() < 0.6 or not held:
            lease = lb.select(avoid=avoid)
            held.append(lease)
            log.append(lease.address)
        else:
            lease = held.pop(script.randrange(len(held)))
            lb.release(lease, ok=script.random() < 0.9, elapsed=script.choice([0.001, 0.02]))
    log.append(lb._rng.random())  # the same random numbers consumed
    log.append(sorted(lb.stats().items()))
    lb._check_invariants()
    return log


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", range(4))
def test_collisions_redrawn_as_the_general_path(name: str, seed: int) -> None:
    """Weights 8 and 1 (an owner table): many collisions, some past every rejection draw."""
    fast = _run(name, [8, 1], seed, general=False, steps=600)
    assert fast == _run(name, [8, 1], seed, general=True, steps=600)
    lb = getattr(bk, name)([bk.Endpoint("h0:1", weight=8), bk.Endpoint("h1:1", weight=1)])
    lb.select()
    assert lb._owners is not None  # the fast path's own draws were the ones compared


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    weights=st.lists(st.integers(1, 40), min_size=1, max_size=7),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_path_picks_as_the_general_path(name: str, weights: list[int], seed: int) -> None:
    """Light lines (owner tables) and heavy ones (``_pair``), one endpoint included."""
    fast = _run(name, weights, seed, general=False, steps=200)
    assert fast == _run(name, weights, seed, general=True, steps=200)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weights", [[100, 20, 60], [1000, 3], [50] * 80])
def test_a_short_heavy_line_draws_from_an_owner_table(name: str, weights: list[int]) -> None:
    """Weights averaging above 8 but adding up to at most OWNERS_ANY points: an owner table at
    once (at most OWNERS_AT_ONCE points) or after the countdown, picking as the general path."""
    lb = getattr(bk, name)([bk.Endpoint(f"h{i}:1", weight=w) for i, w in enumerate(weights)])
    for _ in range(2 * len(weights) + 1):
        lb.release(lb.select())
    assert lb._owners is not None and len(lb._owners) == sum(weights)
    fast = _run(name, weights, 3, general=False, steps=300)
    assert fast == _run(name, weights, 3, general=True, steps=300)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weights", [[5000, 1, 1], [3000, 2000, 7], [9] * 600])
def test_a_heavy_line_draws_through_its_guide_in_select(name: str, weights: list[int]) -> None:
    """Beyond OWNERS_ANY points and 8 per endpoint: the guide table, drawn in ``select`` once
    built (after GUIDE_AFTER * n draws), collisions redrawn there, as the general path."""
    lb = getattr(bk, name)([bk.Endpoint(f"h{i}:1", weight=w) for i, w in enumerate(weights)])
    for _ in range(2 * len(weights) + 1):
        lb.release(lb.select())
    assert lb._owners is None and lb._guide is not None and lb._guide.line is lb._table
    steps = 400 + 4 * len(weights)  # the guide built within the run
    fast = _run(name, weights, 5, general=False, steps=steps)
    assert fast == _run(name, weights, 5, general=True, steps=steps)
