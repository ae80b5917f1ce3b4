"""The guide table answers every draw as the weight line it guides (issue 15).

PowerOfTwoChoices and PeakEWMA draw through a :class:`GuideTable` once a line of several blocks
has served ``GUIDE_AFTER * n`` draws; the owner of a point must be the line's, bit for bit, so
seeded sequences stay what they were. Checked against :meth:`WeightLine.draw` and against a
plain O(n) transcription (the first endpoint whose running total exceeds the point), and
end to end: the balancers' fast paths (guided) pick as their general paths (the line's draw).
"""

from __future__ import annotations

import random
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._state import EndpointState
from balancekit.strategies._guide import GUIDE_AFTER, OWNERS_ANY, OWNERS_PER_ENDPOINT, GuideTable
from balancekit.strategies._weight_line import LOAD, WeightLine

NOBODY = frozenset({"nobody:0"})  # an avoid that avoids nothing: the general path


def _states(weights: list[int]) -> list[EndpointState]:
    return [
        EndpointState(bk.Endpoint(f"h{i}:1", weight=weight), i) for i, weight in enumerate(weights)
    ]


def _owner(weights: list[int], point: int) -> int:
    """The documented rule, in O(n): the first endpoint whose running total exceeds the point."""
    for index, running in enumerate(accumulate(weights)):
        if running > point:
            return index
    raise AssertionError("point beyond the line")


WEIGHTS = st.lists(
    st.one_of(st.integers(1, 5), st.sampled_from([1, 10**6]), st.integers(1, 10**6)),
    min_size=1,
    max_size=3 * LOAD,
)


@settings(max_examples=60, deadline=None)
@given(weights=WEIGHTS, seed=st.integers(0, 2**32 - 1))
def test_guide_owner_is_the_lines(weights: list[int], seed: int) -> None:
    line = WeightLine.build(_states(weights))
    guide = GuideTable(line)
    rng = random.Random(seed)
    total = sum(weights)
    uniforms = [rng.random() for _ in range(200)]
    uniforms += [0.0, 1.0 - 2**-53, (total - 1) / total, 1 / total]  # the ends of the line
    for uniform in uniforms:
        if uniform >= 1.0:  # 1 / W with W = 1: not a uniform draw
            continue
        assert guide.draw(uniform) is line.draw(uniform)
    for point in {0, total - 1, *(rng.randrange(total) for _ in range(50))}:
        index = _owner(weights, point)
        # a uniform that lands on the point exactly: floor(u * W) == point
        uniform = point / total
        if int(uniform * total) == point:
            assert guide.draw(uniform) is line.states[index]


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.integers(1, 50), min_size=2 * LOAD + 1, max_size=3 * LOAD),
    changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 2)), max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_guide_of_a_changed_line(
    weights: list[int], changes: list[tuple[int, int]], seed: int
) -> None:
    """A line changed incrementally (shared blocks) is guided as one built from scratch."""
    states = _states(weights)
    line = WeightLine.build(states)
    next_order = len(states)
    for pick, kind in changes:
        present = list(line.states)
        if kind == 0 and len(present) > 1:
            line = line.changed([present[pick % len(present)]], [], [])
        elif kind == 1:
            (state,) = _states([1 + pick % 7])
            state.seq = state.order = next_order
            next_order += 1
            line = line.changed([], [state], [])
        else:
            target = present[pick % len(present)]
            target.weight = 1 + pick % 9
            line = line.changed([], [], [target])
    guide = GuideTable(line)
    rng = random.Random(seed)
    for _ in range(300):
        uniform = rng.random()
        assert guide.draw(uniform) is line.draw(uniform)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(name: str, general: bool, seed: int) -> tuple[list[object], bool]:
    """Seeded picks over a pool of several blocks, long enough for the guide to be built,
    with a membership change halfway (a new line: counted down and built again)."""
    rng = random.Random(seed)
    clock = Clock()
    n = 2 * LOAD + 37
    endpoints = [bk.Endpoint(f"h{i}:1", weight=rng.randint(1, 5)) for i in range(n)]
    factory = {"PowerOfTwoChoices": bk.PowerOfTwoChoices, "PeakEWMA": bk.PeakEWMA}[name]
    lb = factory(endpoints, clock=clock, seed=seed)
    avoid: frozenset[str] = NOBODY if general else frozenset()
    log: list[object] = []
    held: list[bk.Lease] = []
    guided = False
    for step in range(2 * GUIDE_AFTER * n + 200):
        if step == GUIDE_AFTER * n + 100:
            lb.remove("h3:1")
            lb.add(bk.Endpoint("new:1", weight=4))
        clock.now += rng.choice([0.0, 0.001, 0.01])
        lease = lb.select(avoid=avoid)
        log.append(lease.address)
        held.append(lease)
        if len(held) > 3 or rng.random() < 0.5:
            done = held.pop(rng.randrange(len(held)))
            lb.release(done, ok=rng.random() < 0.9, elapsed=rng.choice([0.001, 0.02, 0.2]))
        guided = guided or getattr(lb, "_guide", None) is not None
    return log, guided


def test_guided_fast_path_picks_as_the_general_path() -> None:
    for name in ("PowerOfTwoChoices", "PeakEWMA"):
        fast, guided = _drive(name, general=False, seed=5)
        general, _ = _drive(name, general=True, seed=5)
        assert guided  # the guide was in use: the comparison is not vacuous
        assert fast == general


@settings(max_examples=60, deadline=None)
@given(
    weights=st.one_of(
        st.lists(st.integers(1, 9), min_size=1, max_size=3 * LOAD),
        st.lists(st.integers(1, 2000), min_size=1, max_size=12),  # heavy, short or not
    )
)
def test_owner_table_of_a_light_line_is_the_lines_owner_of_every_point(weights: list[int]) -> None:
    """A light line (``W <= OWNERS_PER_ENDPOINT * n``) or a short one (``W <= OWNERS_ANY``) is
    drawn from the owner of every point: each point's owner is the documented rule's, for
    every point of the line."""
    line = WeightLine.build(_states(weights))
    guide = GuideTable(line)
    total = sum(weights)
    if total > OWNERS_PER_ENDPOINT * len(weights) and total > OWNERS_ANY:
        assert guide.owners is None
        return
    assert guide.owners is not None and len(guide.owners) == total
    states = line.states
    running = list(accumulate(weights))
    index = 0
    for point in range(total):
        while running[index] <= point:
            index += 1
        assert guide.owners[point] is states[index] is line.at(point)


@pytest.mark.parametrize("name", ["PowerOfTwoChoices", "PeakEWMA"])
@pytest.mark.parametrize("weights", [[1] * 10, [1, 2, 3, 4, 5] * 2, [1, 1, 1], [8, 1, 1]])
def test_a_small_light_pool_draws_from_its_owner_table_at_once(
    name: str, weights: list[int]
) -> None:
    """A line of at most OWNERS_AT_ONCE points gets its owner table at its first draw (no
    countdown), a changed line gets its own at once (the old one is dropped), and the fast path
    picks as the general path (the line's draw) throughout."""
    factory = {"PowerOfTwoChoices": bk.PowerOfTwoChoices, "PeakEWMA": bk.PeakEWMA}[name]
    endpoints = [bk.Endpoint(f"h{i}:1", weight=w) for i, w in enumerate(weights)]
    logs = []
    for avoid in (frozenset(), NOBODY):
        clock = Clock()
        lb = factory(endpoints, clock=clock, seed=7)
        log = []
        held: list[bk.Lease] = []
        for step in range(300):
            clock.now += 0.001
            if step == 100:  # a new line: its owner table replaces the old one's
                lb.add(bk.Endpoint("new:1", weight=3))
            elif step == 150:
                lb.set_weight("h0:1", 2)
            elif step == 200:
                lb.remove("new:1")
            elif step == 250:
                lb.mark_down("h1:1")
            lease = lb.select(avoid=avoid)
            if not avoid:
                assert lb._owners is not None and lb._owners is lb._guide.owners
                assert lb._guide.line is lb._table
            log.append(lease.address)
            held.append(lease)
            if step % 3:
                lb.release(held.pop(0), elapsed=0.001 * (step % 7))
        logs.append(log)
    assert logs[0] == logs[1]
