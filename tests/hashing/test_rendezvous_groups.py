"""Rendezvous's weighted pick scores only candidate bids (issue 15), exactly as the full path.

Walking the bids heaviest weight first, only a bid no more than 2^-40 below the largest before it
can win, so a pick takes a logarithm and a division for about ln(N) + 1 endpoints instead of N;
equal best scores go to the full path (address order). These tests check the winners against
the reference formula, the cost model (logarithms per pick, pure build) and the tie hand-off with
bids chosen by hand.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies.hashing import rendezvous
from balancekit.strategies.hashing.rendezvous import _weighted, rendezvous_score

COMPILED = bool(getattr(bk, "compiled", False))
pure_only = pytest.mark.skipif(COMPILED, reason="patches module globals of the pure build")


def _reference(pool: dict[str, int], key: str) -> str:
    """The documented formula, endpoint by endpoint in address order (first maximum wins)."""
    ordered = sorted(pool.items())
    scores = [_weighted(-float(w), rendezvous_score(key, a)) for a, w in ordered]
    return ordered[scores.index(max(scores))][0]


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"h[a-z0-9]{0,7}:[1-9]", fullmatch=True),
        st.integers(min_value=1, max_value=3),
        min_size=2,
        max_size=60,
    ),
    st.lists(st.text(max_size=16), min_size=1, max_size=12),
)
def test_grouped_pick_is_the_reference_winner(pool: dict[str, int], keys: list[str]) -> None:
    lb = bk.Rendezvous([bk.Endpoint(a, weight=w) for a, w in pool.items()])
    for key in keys:
        assert lb.select(key).address == _reference(pool, key)


def test_weight_order_follows_changes() -> None:
    lb = bk.Rendezvous([bk.Endpoint(f"h{i}:1", weight=1 + i % 2) for i in range(8)])
    assert lb._bidders[3] is not None  # 2 weights: heaviest first
    lb.set_weight("h0:1", 3)
    lb.remove("h1:1")
    lb.add(bk.Endpoint("h9:1", weight=3))
    lb._check_invariants()
    pool = {e.address: e.weight for e in lb.endpoints}
    for i in range(200):
        assert lb.lookup(f"k{i}").address == _reference(pool, f"k{i}")
    for i in range(2, 8):
        lb.set_weight(f"h{i}:1", 10 + i)  # every weight distinct
    lb._check_invariants()
    pool = {e.address: e.weight for e in lb.endpoints}
    for i in range(200):
        assert lb.lookup(f"k{i}").address == _reference(pool, f"k{i}")
    for address in pool:
        lb.set_weight(address, 4)  # all equal: no weights, the largest bid
    lb._check_invariants()
    assert lb._bidders[3] is None


@pure_only
def test_weighted_pick_takes_a_log_per_candidate_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting_log(value: float) -> float:
        calls.append(value)
        return math.log(value)

    monkeypatch.setattr(rendezvous, "_log", counting_log)
    lb = bk.Rendezvous([bk.Endpoint(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(40)])
    for i in range(200):
        lb.lookup(f"key-{i}")
    assert len(calls) < 200 * 10  # about ln(40) + 1 per pick, not one per endpoint (40)


def _with_bids(monkeypatch: pytest.MonkeyPatch, bids: dict[bytes, int]) -> None:
    def murmur(data: bytes | str, seed: int = 0) -> int:
        return bids.get(data, 1 << 64) if isinstance(data, bytes) and seed else 1

    monkeypatch.setattr(rendezvous, "_murmur128", murmur)


@pure_only
@pytest.mark.parametrize(
    ("bids", "expected"),
    [
        # a clear winner: the larger of weight 2's bids
        ({b"a:1": 1 << 120, b"b:1": 1 << 100, b"c:1": 1 << 127, b"d:1": 1 << 90}, "c:1"),
        # near but distinct scores: no hand-off, the larger bid wins
        (
            {b"a:1": 1 << 100, b"b:1": 1 << 90, b"c:1": 1 << 126, b"d:1": (1 << 126) + (1 << 80)},
            "d:1",
        ),
        # a lighter endpoint's larger bid wins when its score is larger
        ({b"a:1": (1 << 128) - (1 << 100), b"b:1": 1 << 90, b"c:1": 1 << 126, b"d:1": 1}, "a:1"),
        # equal scores within one weight (two bids with the same double): the full path's
        # address order decides, not the larger bid (d:1's)
        ({b"a:1": 1 << 100, b"b:1": 1 << 90, b"c:1": 1 << 127, b"d:1": (1 << 127) + 1}, "c:1"),
        # equal bids within one weight: the smaller address, as the full path
        ({b"a:1": 1 << 100, b"b:1": 1 << 90, b"c:1": 1 << 127, b"d:1": 1 << 127}, "c:1"),
    ],
)
def test_ties_go_to_the_full_path(
    monkeypatch: pytest.MonkeyPatch, bids: dict[bytes, int], expected: str
) -> None:
    _with_bids(monkeypatch, bids)
    pool = {"a:1": 1, "b:1": 1, "c:1": 2, "d:1": 2}
    lb = bk.Rendezvous([bk.Endpoint(a, weight=w) for a, w in pool.items()])
    ordered = lb._bidders[3]
    assert ordered is not None
    tie = _weighted(-2.0, bids[b"c:1"]) == _weighted(-2.0, bids[b"d:1"])
    assert (rendezvous._record_winner(ordered, 7) is None) == tie
    assert lb.lookup("k").address == expected == _reference_with(bids, pool)


def _reference_with(bids: dict[bytes, int], pool: dict[str, int]) -> str:
    ordered = sorted(pool.items())
    scores = [_weighted(-float(w), bids[a.encode()]) for a, w in ordered]
    return ordered[scores.index(max(scores))][0]


@pure_only
def test_equal_scores_of_two_weights_go_to_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # weight 1 with u = 1/2 and weight 2 with u = 1/4: -1/ln(1/2) == -2/ln(1/4), the same double
    bids = {b"a:1": 1 << 127, b"b:1": 1 << 60, b"c:1": 1 << 126, b"d:1": 1 << 50}
    _with_bids(monkeypatch, bids)
    pool = {"a:1": 1, "b:1": 1, "c:1": 2, "d:1": 2}
    lb = bk.Rendezvous([bk.Endpoint(a, weight=w) for a, w in pool.items()])
    ordered = lb._bidders[3]
    assert ordered is not None
    scores = [_weighted(-1.0, 1 << 127), _weighted(-2.0, 1 << 126)]
    assert scores[0] == scores[1]
    assert rendezvous._record_winner(ordered, 7) is None
    assert lb.lookup("k").address == "a:1" == _reference_with(bids, pool)
