"""Random and WeightedRandom: the alias table is exact; draws are seeded and proportional."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit._state import EndpointState
from balancekit.strategies.random import AliasTable


def states(weights: list[int]) -> list[EndpointState]:
    return [
        EndpointState(bk.Endpoint(f"10.0.0.{i}:80", weight=w), i) for i, w in enumerate(weights)
    ]


def exact_probabilities(table: AliasTable) -> list[Fraction]:
    """What a perfectly uniform draw gives each endpoint: column 1/n, split threshold / W."""
    shares = [Fraction(0)] * table.n
    for column in range(table.n):
        kept = Fraction(table.threshold[column], table.total)
        shares[column] += kept / table.n
        shares[table.alias[column]] += (1 - kept) / table.n
    return shares


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, bk._endpoint.MAX_WEIGHT), min_size=1, max_size=40))
def test_alias_table_reproduces_weights_exactly(weights: list[int]) -> None:
    table = AliasTable(states(weights))
    table.check()
    total = sum(weights)
    assert exact_probabilities(table) == [Fraction(w, total) for w in weights]


def test_alias_table_is_compact_and_draws_stay_in_range() -> None:
    table = AliasTable(states([3, 1, 7, 1]))
    assert table.threshold.itemsize == table.alias.itemsize == 8  # array('q'), not lists
    assert table.draw(0.0) is table.states[0] or table.draw(0.0) is table.states[table.alias[0]]
    assert table.draw(0.9999999999999999) in table.states  # the largest float below 1


def test_weighted_random_shares_follow_weights() -> None:
    weights = [1, 2, 3, 4]
    lb = bk.WeightedRandom(
        [bk.Endpoint(f"h{i}:80", weight=w) for i, w in enumerate(weights)], seed=11
    )
    picks = 40_000
    counts = Counter(lb.select().address for _ in range(picks))
    for i, weight in enumerate(weights):
        assert abs(counts[f"h{i}:80"] / picks - weight / 10) < 0.01


def test_random_is_uniform_and_ignores_weights() -> None:
    lb = bk.Random([bk.Endpoint("a:80", weight=9), "b:80", "c:80", "d:80"], seed=12)
    picks = 40_000
    counts = Counter(lb.select().address for _ in range(picks))
    assert all(abs(count / picks - 0.25) < 0.01 for count in counts.values())
    assert len(counts) == 4


@pytest.mark.parametrize("cls", [bk.Random, bk.WeightedRandom])
def test_same_seed_same_picks_and_rng_is_injectable(cls: type[bk.WeightedRandom]) -> None:
    pool = [bk.Endpoint(f"h{i}:80", weight=1 + i) for i in range(7)]
    first = [cls(pool, seed=5).select().address for _ in range(3)]
    a, b = cls(pool, seed=5), cls(pool, rng=random.Random(5))
    assert [a.select().address for _ in range(200)] == [b.select().address for _ in range(200)]
    assert len(set(first)) == 1
    with pytest.raises(bk.InvalidOption, match="not both"):
        cls(pool, seed=1, rng=random.Random(1))
    with pytest.raises(bk.InvalidOption, match=r"random\.Random"):
        cls(pool, rng=42)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="seed"):
        cls(pool, seed="x")  # type: ignore[arg-type]


def test_avoid_keeps_the_distribution_over_the_rest_proportional() -> None:
    lb = bk.WeightedRandom(
        [bk.Endpoint(f"h{i}:80", weight=w) for i, w in enumerate([1, 2, 3, 4])], seed=3
    )
    picks = 30_000
    counts = Counter(lb.select(avoid={"h3:80"}).address for _ in range(picks))
    assert "h3:80" not in counts
    for i, weight in enumerate([1, 2, 3]):
        assert abs(counts[f"h{i}:80"] / picks - weight / 6) < 0.01


def test_avoiding_the_dominant_endpoint_falls_back_to_a_filter() -> None:
    heavy = bk.Endpoint("heavy:80", weight=1_000_000)
    lb = bk.WeightedRandom([heavy, "light:80", "other:80"], seed=4)
    picks = [lb.select(avoid={"heavy:80"}).address for _ in range(200)]
    assert set(picks) == {"light:80", "other:80"}
    with pytest.raises(bk.NoEndpointAvailable, match="avoid"):
        lb.select(avoid={"heavy:80", "light:80", "other:80"})


def test_table_is_rebuilt_only_on_membership_or_weight_change() -> None:
    lb = bk.WeightedRandom(["a:80", "b:80"], seed=1)
    table = lb._table
    for _ in range(10):
        lb.release(lb.select(), ok=False)
    assert lb._table is table
    lb.set_weight("a:80", 3)
    assert lb._table is not table
    lb._check_invariants()
    assert lb._table.weights.tolist() == [3, 1]
