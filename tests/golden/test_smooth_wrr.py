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


# Across membership changes NGINX keeps every surviving peer's current_weight and starts a new
# peer at 0 (nginx src/http/modules/ngx_http_upstream_zone_module.c,
# ngx_http_upstream_zone_resolve_handler: survivors stay in the list untouched, new peers are
# copied from the template, a peer whose SRV weight changed is freed and made anew), and
# ngx_http_upstream_get_peer skips a `down` peer without touching its current_weight. The
# sequences below are traced by hand with ngx_http_upstream_get_peer's loop; currents shown
# after each pick as (a, b, c[, d]).
#
# {a:5, b:1, c:1} from 0: a (-2,1,1), a (-4,2,2), b (1,-4,3).


def three_picks() -> bk.WeightedRoundRobin:
    lb = bk.WeightedRoundRobin([bk.Endpoint("a:80", weight=5), "b:80", "c:80"])
    assert "".join(lb.select().address[0] for _ in range(3)) == "aab"
    return lb


def test_a_new_peer_starts_at_zero_and_the_others_carry_theirs() -> None:
    # + d:2 at (1,-4,3,0), W=9: a (-3,-3,4,2), c (2,-2,-4,4), a (-2,-1,-3,6), d (3,0,-2,-1),
    # a (-1,1,-1,1), a (-5,2,0,3), d (0,3,1,-4), a (-4,4,2,-2), b (1,-4,3,0) = the start again.
    lb = three_picks()
    lb.add(bk.Endpoint("d:80", weight=2))
    assert "".join(lb.select().address[0] for _ in range(18)) == "acadaadab" * 2
    lb._check_invariants()


def test_a_weight_change_restarts_that_peer_only() -> None:
    # c:1 -> c:3 at (1,-4,0), W=9: a (-3,-3,3), c (2,-2,-3), a (-2,-1,0), a (-6,0,3),
    # c (-1,1,-3), a (-5,2,0), b (0,-6,3), c (5,-5,-3), a (1,-4,0) = the start again.
    # (main went on with the fresh cycle "acabacaca" from position 3: "bacacaaca".)
    lb = three_picks()
    lb.set_weight("c:80", 3)
    assert "".join(lb.select().address[0] for _ in range(18)) == "acaacabca" * 2
    lb._check_invariants()


def test_a_down_peer_keeps_its_current_weight() -> None:
    # b down at (1,-4,3): a, c step with W=6: a (0,_,4), a (-1,_,5), c (4,_,0), a (3,_,1),
    # a (2,_,2), a (1,_,3). b up again at (1,-4,3): the original sequence goes on from pick 4.
    lb = three_picks()
    lb.mark_down("b:80")
    assert "".join(lb.select().address[0] for _ in range(6)) == "aacaaa"
    lb.mark_up("b:80")
    assert "".join(lb.select().address[0] for _ in range(11)) == "acaa" + "aabacaa"
    lb.update([bk.Endpoint("a:80", weight=5), "b:80", "c:80"])  # no change: nothing restarts
    assert "".join(lb.select().address[0] for _ in range(7)) == "aabacaa"


def test_avoid_past_the_schedule_limit_is_one_step() -> None:
    # Issue 10.6: weights (1e6, 999999, 1) with the two heavy ones avoided scanned the cycle
    # (1.7-11 s per select on main). Now the position advances by one and the pick is taken
    # among the endpoints not avoided; plain picks then go on exactly as NGINX's sequence.
    weights = [1_000_000, 999_999, 1]
    lb = bk.WeightedRoundRobin([bk.Endpoint(f"h{i}:80", weight=w) for i, w in enumerate(weights)])
    assert lb._online is not None
    for _ in range(3):
        assert lb.select(avoid={"h0:80", "h1:80"}).address == "h2:80"
    picks = [int(lb.select().address[1]) for _ in range(40)]
    assert picks == nginx_reference(weights, 43)[3:]
