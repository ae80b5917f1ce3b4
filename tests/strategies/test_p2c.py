"""Power of two choices: distinct weighted candidates, and never the more loaded of the two."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(1, 5), min_size=2, max_size=8),
    ops=st.lists(st.integers(0, 1000), min_size=1, max_size=80),
    seed=st.integers(0, 2**32),
)
def test_never_picks_the_more_loaded_candidate(
    weights: list[int], ops: list[int], seed: int
) -> None:
    lb = bk.PowerOfTwoChoices(
        [bk.Endpoint(f"10.0.0.{i}:80", weight=w) for i, w in enumerate(weights)], seed=seed
    )
    held: list[bk.Lease] = []
    for op in ops:
        if op % 3 == 0 and held:
            lb.release(held.pop(op % len(held)))
            continue
        saved = lb._rng.getstate()
        first, second = lb._candidates(())
        lb._rng.setstate(saved)
        assert second is not None and second is not first
        loads = {s.address: s.load / s.weight for s in (first, second)}
        lease = lb.select()
        assert lease.address in loads
        assert loads[lease.address] == min(loads.values())
        held.append(lease)
    lb._check_invariants()


def test_first_candidate_is_drawn_by_weight() -> None:
    # With every endpoint idle the first candidate wins, so picks follow the weights.
    lb = bk.PowerOfTwoChoices([bk.Endpoint("a:80", weight=3), "b:80"], seed=9)
    picks = 20_000
    counts: Counter[str] = Counter()
    for _ in range(picks):
        lease = lb.select()
        counts[lease.address] += 1
        lb.release(lease)
    assert abs(counts["a:80"] / picks - 0.75) < 0.01


def test_beats_random_on_maximum_load() -> None:
    pool = [f"10.0.0.{i}:80" for i in range(20)]

    def max_over_mean(lb: bk.Balancer) -> float:
        held = [lb.select() for _ in range(2000)]
        loads = Counter(lease.address for lease in held)
        return max(loads.values()) / (len(held) / len(pool))

    p2c = max_over_mean(bk.PowerOfTwoChoices(pool, seed=1))
    rnd = max_over_mean(bk.Random(pool, seed=1))
    assert p2c <= 1.05 < rnd


def test_custom_load_function_sees_stats() -> None:
    seen: list[bk.EndpointStats] = []

    def failures(stats: bk.EndpointStats) -> float:
        seen.append(stats)
        return stats.failed

    lb = bk.PowerOfTwoChoices(["a:80", "b:80"], load=failures, seed=2)
    for _ in range(4):
        lease = lb.select()
        lb.release(lease, ok=lease.address != "a:80")
    for _ in range(50):
        lease = lb.select()
        assert lease.address == "b:80" or lb.stats()["a:80"].failed == 0
        lb.release(lease)
    assert seen and all(isinstance(s, bk.EndpointStats) for s in seen)


def test_load_option_is_validated() -> None:
    with pytest.raises(bk.InvalidOption, match="load must be a function"):
        bk.PowerOfTwoChoices(["a:80"], load=3)  # type: ignore[arg-type]
    lb = bk.PowerOfTwoChoices(["a:80", "b:80"], load=lambda s: math.nan, seed=1)
    with pytest.raises(bk.InvalidOption, match="not a number"):
        lb.select()


def test_single_endpoint_and_avoid() -> None:
    lb = bk.PowerOfTwoChoices(["a:80", "b:80", "c:80"], seed=1)
    assert {lb.select(avoid={"a:80", "b:80"}).address for _ in range(20)} == {"c:80"}
    lb.remove("b:80")
    lb.remove("c:80")
    assert lb.select().address == "a:80"


def test_candidate_pairs_have_the_sequential_weighted_distribution() -> None:
    # P(first = a, second = b) = w_a / W * w_b / (W - w_a)
    weights = {"a:80": 1, "b:80": 2, "c:80": 3}
    lb = bk.PowerOfTwoChoices([bk.Endpoint(a, weight=w) for a, w in weights.items()], seed=8)
    draws = 60_000
    pairs: Counter[tuple[str, str]] = Counter()
    for _ in range(draws):
        first, second = lb._candidates(())
        assert second is not None
        pairs[first.address, second.address] += 1
    total = sum(weights.values())
    for a, wa in weights.items():
        for b, wb in weights.items():
            expected = 0.0 if a == b else wa / total * wb / (total - wa)
            assert abs(pairs[a, b] / draws - expected) < 0.01, (a, b)
