"""Issue 15's native Lease and counters: each build counts where it is atomic, the two token
sources never meet, and every count stays exact under threads in the build under test.

CI runs this file against both builds (``.ci/run``): in the pure-Python build the counters'
``itertools.count`` parts and the odd tokens of ``TOKENS`` are used, compiled (mypyc) the native
``n_*`` ints and the even tokens of ``NATIVE_TOKENS``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import balancekit as bk
from balancekit import _core, _state
from balancekit._state import count_value

STRATEGIES: dict[str, Any] = {
    "RoundRobin": bk.RoundRobin,
    "WeightedRoundRobin": bk.WeightedRoundRobin,
    "Random": bk.Random,
    "WeightedRandom": bk.WeightedRandom,
    "LeastConnections": bk.LeastConnections,
    "LeastResponseTime": bk.LeastResponseTime,
    "PowerOfTwoChoices": bk.PowerOfTwoChoices,
    "PeakEWMA": bk.PeakEWMA,
    "IPHash": bk.IPHash,
    "Maglev": bk.Maglev,
}


def _endpoints(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.4.0.{i}:80", weight=1 + i % 3) for i in range(n)]


def test_the_switch_says_which_build_is_loaded() -> None:
    assert _state.NATIVE is bk.compiled
    assert _state.runs_compiled(_state.count_value) is bk.compiled
    assert not _state.runs_compiled(_endpoints)  # a function of this (never compiled) module


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_build_counts_in_its_own_part(name: str) -> None:
    lb = STRATEGIES[name](_endpoints(3))
    for i in range(30):
        lease = lb.select(f"key{i}")
        if i % 3 == 0:
            lb.cancel(lease)
        else:
            lb.release(lease, ok=i % 3 == 1, elapsed=0.001)
    lb.select("one more")  # left in flight
    states = list(lb._members.values())
    parts = {
        "count": [
            sum(count_value(getattr(s, field)) for s in states)
            for field in ("selected", "released", "failed", "cancelled")
        ],
        "native": [
            sum(getattr(s, "n_" + field) for s in states)
            for field in ("selected", "released", "failed", "cancelled")
        ],
    }
    if bk.compiled:  # natively, everywhere
        assert parts["native"] == [31, 30, 10, 10] and parts["count"] == [0, 0, 0, 0]
    else:  # the counts, or the n_* ints under the balancer's lock (balancekit._state): both add
        assert [a + b for a, b in zip(parts["count"], parts["native"], strict=True)] == [
            31,
            30,
            10,
            10,
        ]
    stats = lb.stats().values()
    assert sum(s.selected for s in stats) == 31 and sum(s.in_flight for s in stats) == 1
    assert sum(s.failed for s in stats) == 10 and sum(s.cancelled for s in stats) == 10


def test_the_two_token_sources_never_give_the_same_token() -> None:
    """Odd tokens from ``TOKENS`` (pure), even ones from ``NATIVE_TOKENS`` (compiled): a lease
    of one balancer is refused by another whichever build issued either."""
    lb = bk.RoundRobin(["a:1"])
    lease = lb.select()
    assert lease.token % 2 == (0 if bk.compiled else 1)
    assert next(_core.TOKENS) % 2 == 1 and _core.NATIVE_TOKENS.take() % 2 == 0
    other = bk.LeastConnections(["a:1"])
    other_lease = other.select()
    with pytest.raises(bk.InvalidLease):
        other.release(lease)
    lb.release(lease)
    other.release(other_lease)


def test_in_flight_adds_both_parts() -> None:
    """A state counted in both parts (a strategy of the other build, e.g. a custom one) reads
    as the sum: never negative, exact."""
    lb = bk.RoundRobin(["a:1"])
    state = next(iter(lb._members.values()))
    next(state.selected)
    next(state.selected)
    state.n_selected += 1
    state.n_released += 1
    next(state.released)
    assert state.in_flight() == 1
    assert lb.stats()["a:1"].selected == 3 and lb.stats()["a:1"].in_flight == 1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_counts_exact_under_threads(name: str) -> None:
    """Threads select, release and cancel on one balancer while one changes membership: every
    count adds up afterwards (the native ints are as atomic as ``next()`` on a count)."""
    endpoints = _endpoints(8)
    lb = STRATEGIES[name](endpoints)
    threads, rounds = 4, 400
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    outcomes = [[0, 0, 0] for _ in range(threads)]  # ok, failed, cancelled

    def worker(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(rounds):
                lease = lb.select(f"k{n}-{i}")
                if i % 7 == 3:
                    lb.cancel(lease)
                    outcomes[n][2] += 1
                else:
                    ok = i % 5 != 0
                    lb.release(lease, ok=ok, elapsed=0.001)
                    outcomes[n][0 if ok else 1] += 1
                if n == 0 and i % 40 == 20:  # changes race the picks
                    victim = endpoints[(i // 40) % 4].address
                    lb.mark_down(victim)
                    lb.mark_up(victim)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    start.wait(timeout=30)
    for thread in pool:
        thread.join(timeout=300)
    assert not errors and not any(thread.is_alive() for thread in pool)
    stats = lb.stats().values()
    assert all(s.in_flight == 0 for s in stats)
    assert sum(s.selected for s in stats) == threads * rounds
    assert sum(s.succeeded for s in stats) == sum(o[0] for o in outcomes)
    assert sum(s.failed for s in stats) == sum(o[1] for o in outcomes)
    assert sum(s.cancelled for s in stats) == sum(o[2] for o in outcomes)
    lb._check_invariants()


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_avoid_may_be_given_by_position(name: str) -> None:
    """``select(context, avoid)``: ``avoid`` is not keyword-only (issue 15: a keyword-only
    default costs a dict lookup per call in 3.11); both spellings pick the same."""
    by_keyword = STRATEGIES[name](_endpoints(5), clock=lambda: 1.0)  # one instant: the
    by_position = STRATEGIES[name](_endpoints(5), clock=lambda: 1.0)  # latency-aware agree
    avoid = {"10.4.0.1:80", "10.4.0.3:80"}
    for i in range(20):
        a = by_keyword.select(f"k{i}", avoid=avoid)
        b = by_position.select(f"k{i}", avoid)
        if name in ("Random", "WeightedRandom", "PowerOfTwoChoices", "PeakEWMA"):
            assert b.address not in avoid  # random draws: twins need not agree
        else:
            assert a.address == b.address
        assert a.address not in avoid
        by_keyword.release(a)
        by_position.release(b)
