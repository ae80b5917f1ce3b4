"""Smooth weighted round robin against NGINX: its published sequence and its own algorithm."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies.round_robin import SCHEDULE_LIMIT, smooth_weighted_sequence


def nginx_reference(weights: list[int], steps: int) -> list[int]:
    """ngx_http_upstream_get_peer() from nginx/src/http/ngx_http_upstream_round_robin.c, as is:
    every peer's current += weight; the first peer with the largest current wins; it loses total."""
    current = [0] * len(weights)
    picks = []
    for _ in range(steps):
        best = -1
        for i, weight in enumerate(weights):
            current[i] += weight
            if best < 0 or current[i] > current[best]:
                best = i
        current[best] -= sum(weights)
        picks.append(best)
    return picks


def test_nginx_published_sequence() -> None:
    # The commit that introduced smooth WRR (nginx 1.3.1, 2012, ngx_http_upstream_round_robin.c):
    # "for edge case weights like { 5, 1, 1 } we now produce { a, a, b, a, c, a, a } sequence".
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint("a:80", weight=5), bk.Endpoint("b:80"), bk.Endpoint("c:80")]
    )
    assert "".join(lb.select().address[0] for _ in range(14)) == "aabacaa" * 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=9))
def test_sequence_equals_nginx_loop(weights: list[int]) -> None:
    steps = 3 * sum(weights)
    ours = list(itertools.islice(smooth_weighted_sequence(weights), steps))
    assert ours == nginx_reference(weights, steps)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=9))
def test_exact_counts_per_cycle(weights: list[int]) -> None:
    cycle = list(itertools.islice(smooth_weighted_sequence(weights), sum(weights)))
    assert [cycle.count(i) for i in range(len(weights))] == weights


def test_online_mode_past_the_schedule_limit_matches_nginx() -> None:
    weights = [SCHEDULE_LIMIT // 2 + 7, 3, SCHEDULE_LIMIT // 2 + 1, 1]  # cycle > the limit
    lb = bk.WeightedRoundRobin([bk.Endpoint(f"h{i}:80", weight=w) for i, w in enumerate(weights)])
    assert lb._online is not None  # generated online, not precomputed
    picks = [int(lb.select().address[1]) for _ in range(5000)]
    assert picks == nginx_reference(weights, 5000)
    lb._check_invariants()


def test_same_as_the_roundrobin_package() -> None:
    # An independent Python implementation of the same algorithm (PyPI "roundrobin").
    roundrobin = __import__("pytest").importorskip("roundrobin")
    pairs = [("a", 3), ("b", 2), ("c", 1), ("d", 2)]
    theirs = roundrobin.smooth(pairs)
    lb = bk.WeightedRoundRobin([bk.Endpoint(f"{n}:80", weight=w) for n, w in pairs])
    assert [lb.select().address[0] for _ in range(40)] == [theirs() for _ in range(40)]
