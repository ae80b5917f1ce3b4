"""``avoid=`` costs O(len(avoid)), not O(n) or O(cycle), in every strategy of the core.

An avoided pick used to walk: WeightedRoundRobin along its schedule (up to a whole cycle, and
past SCHEDULE_LIMIT online: 1.7-11 s per select for weights 1e6, 999999, 1), WeightedRandom and
Random through every endpoint, LoadReportWeightedRoundRobin through 4 n scheduler steps. The
cost is counted as membership tests on the ``avoid`` collection (no timings in tests).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies.random import AVOID_DRAWS, AliasTable


class CountingAvoid:
    """A set of addresses that counts how often a pick asks whether one is in it."""

    def __init__(self, addresses: set[str]) -> None:
        self.addresses = addresses
        self.asked = 0

    def __contains__(self, address: object) -> bool:
        self.asked += 1
        return address in self.addresses

    def __len__(self) -> int:
        return len(self.addresses)

    def __iter__(self) -> Iterator[str]:
        return iter(self.addresses)


def heavy_pool(heavy: int, light: int) -> list[bk.Endpoint]:
    return [bk.Endpoint("heavy:80", weight=heavy)] + [
        bk.Endpoint(f"10.3.{i // 250}.{i % 250}:80") for i in range(light)
    ]


CASES: dict[str, Callable[[], bk.BalancerBase]] = {
    # a cycle of 65,536 picks, precomputed: the light ones come round every ~32,768
    "WeightedRoundRobin-schedule": lambda: bk.WeightedRoundRobin(heavy_pool(65534, 2)),
    "WeightedRoundRobin-online": lambda: bk.WeightedRoundRobin(heavy_pool(10**6, 2)),
    "WeightedRoundRobin-envoy": lambda: bk.WeightedRoundRobin(heavy_pool(10**6, 2), order="envoy"),
    "WeightedRandom": lambda: bk.WeightedRandom(heavy_pool(10**6, 5000), seed=3),
    "RoundRobin": lambda: bk.RoundRobin(heavy_pool(1, 5000)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_avoiding_the_heavy_endpoint_asks_avoid_a_few_times(name: str) -> None:
    lb = CASES[name]()
    for _ in range(30):
        avoid = CountingAvoid({"heavy:80"})
        assert lb.select(avoid=avoid).address != "heavy:80"  # type: ignore[arg-type]
        assert avoid.asked <= AVOID_DRAWS + 3, avoid.asked
    lb._check_invariants()


def test_wrr_avoided_picks_spread_over_the_rest() -> None:
    lb = bk.WeightedRoundRobin(heavy_pool(65534, 2))
    picks = Counter(lb.select(avoid={"heavy:80"}).address for _ in range(300))
    assert set(picks) == {"10.3.0.0:80", "10.3.0.1:80"}
    assert min(picks.values()) >= 50


class Enumerating(random.Random):
    """A generator whose ``randrange(n)`` returns a given value: enumerates every outcome."""

    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randrange(self, n: int) -> int:  # type: ignore[override]
        assert 0 <= self.value < n
        return self.value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=8), st.data())
def test_draw_excluding_is_exactly_the_conditional_distribution(
    weights: list[int], data: st.DataObject
) -> None:
    lb = bk.WeightedRandom([bk.Endpoint(f"h{i}:80", weight=w) for i, w in enumerate(weights)])
    table: AliasTable = lb._table
    names = [f"h{i}:80" for i in range(len(weights))]
    avoid = set(data.draw(st.lists(st.sampled_from([*names, "x:1"]), max_size=len(weights))))
    for weighted in (True, False):
        share = [
            (w if weighted else 1) if n not in avoid else 0
            for n, w in zip(names, weights, strict=True)
        ]
        if sum(share) == 0:
            assert table.draw_excluding(Enumerating(0), avoid, weighted) is None
            continue
        outcomes = Counter(
            table.draw_excluding(Enumerating(v), avoid, weighted).endpoint.address  # type: ignore[union-attr]
            for v in range(sum(share))
        )
        assert outcomes == {n: s for n, s in zip(names, share, strict=True) if s}


def test_random_avoid_fallback_is_uniform_over_the_rest() -> None:
    lb = bk.Random([f"10.4.0.{i}:80" for i in range(40)], seed=5)
    avoid = {f"10.4.0.{i}:80" for i in range(37)}
    picks = Counter(lb.select(avoid=avoid).address for _ in range(3000))
    assert set(picks) == {"10.4.0.37:80", "10.4.0.38:80", "10.4.0.39:80"}
    assert min(picks.values()) > 850
