"""Passive health: ejection, its growth and forgiveness, the share limit, panic, events, stats."""

from __future__ import annotations

import pytest

import balancekit as bk
from balancekit.health import (
    Ejected,
    HealthEvent,
    PanicDisengaged,
    PanicEngaged,
    Returned,
    health_of,
)

POOL = [f"10.0.0.{i}:80" for i in range(1, 11)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def build(
    passive: bk.PassiveHealth, size: int = 10, strategy: type[bk.BalancerBase] = bk.RoundRobin
) -> tuple[bk.BalancerBase, Clock, list[HealthEvent]]:
    clock = Clock()
    events: list[HealthEvent] = []
    lb = bk.with_health(strategy(POOL[:size], clock=clock), passive, on_event=events.append)
    return lb, clock, events


def fail(lb: bk.BalancerBase, address: str, times: int) -> None:
    others = [a for a in POOL if a != address]
    for _ in range(times):
        lb.release(lb.select(avoid=others), ok=False)


def picks(lb: bk.BalancerBase, n: int = 40) -> set[str]:
    seen = set()
    for _ in range(n):
        lease = lb.select()
        seen.add(lease.address)
        lb.release(lease)
    return seen


def test_consecutive_failures_eject_and_a_success_resets_the_streak() -> None:
    lb, _, events = build(bk.PassiveHealth(consecutive_failures=3))
    fail(lb, POOL[0], 2)
    lb.release(lb.select(avoid=POOL[1:]), ok=True)
    fail(lb, POOL[0], 2)
    assert not lb.stats()[POOL[0]].ejected
    fail(lb, POOL[0], 1)
    assert lb.stats()[POOL[0]].ejected
    assert events == [Ejected(POOL[0], 100.0, 130.0, 1, "consecutive_failures")]
    assert POOL[0] not in picks(lb)
    assert health_of(lb).ejected() == [POOL[0]]  # type: ignore[union-attr]


def test_ejection_ends_exactly_at_its_deadline() -> None:
    lb, clock, events = build(bk.PassiveHealth(consecutive_failures=1, base_ejection=30))
    fail(lb, POOL[0], 1)
    clock.now = 129.999
    assert POOL[0] not in picks(lb)
    clock.now = 130.0
    assert POOL[0] in picks(lb)
    assert isinstance(events[-1], Returned) and events[-1] == Returned(POOL[0], 130.0)
    assert not lb.stats()[POOL[0]].ejected


def test_ejection_time_grows_with_repeats_up_to_the_cap_and_is_forgiven() -> None:
    passive = bk.PassiveHealth(
        consecutive_failures=1, base_ejection=10, max_ejection=25, interval=10
    )
    lb, clock, events = build(passive)
    durations = []
    for _ in range(4):
        fail(lb, POOL[0], 1)
        ejected = events[-1]
        assert isinstance(ejected, Ejected)
        durations.append(ejected.until - ejected.at)
        clock.now = ejected.until
        picks(lb, 1)  # the return is noticed on the select path
    assert durations == [10, 20, 25, 25]
    clock.now += 25  # 2.5 intervals of good behaviour: the multiplier (4) drops by 2
    fail(lb, POOL[0], 1)
    assert isinstance(events[-1], Ejected) and events[-1].ejections == 3


def test_failure_rate_over_a_window() -> None:
    passive = bk.PassiveHealth(
        consecutive_failures=None, failure_rate=0.5, window=10, minimum_requests=10
    )
    lb, _, events = build(passive)
    others = POOL[1:]
    for i in range(9):  # alternate: 5 failures in 9, below the minimum of 10 requests
        lb.release(lb.select(avoid=others), ok=i % 2 == 1)
    assert not lb.stats()[POOL[0]].ejected
    lb.release(lb.select(avoid=others), ok=False)  # 5 + 1 failed of 10: 60 %
    assert lb.stats()[POOL[0]].ejected
    assert isinstance(events[-1], Ejected) and events[-1].reason == "failure_rate"


def test_failure_rate_window_slides() -> None:
    passive = bk.PassiveHealth(
        consecutive_failures=None, failure_rate=0.5, window=4, minimum_requests=4
    )
    lb, _, _ = build(passive)
    others = POOL[1:]
    for ok in [False, True, True, True, False, True, True]:  # never 2 failures in 4
        lb.release(lb.select(avoid=others), ok=ok)
    assert not lb.stats()[POOL[0]].ejected
    lb.release(lb.select(avoid=others), ok=False)  # window: T T F F -> 50 %
    assert lb.stats()[POOL[0]].ejected


def test_max_ejection_share_limits_ejections() -> None:
    lb, _, events = build(bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.2))
    for address in POOL[:5]:
        fail(lb, address, 1)
    fail(lb, POOL[2], 1)
    assert health_of(lb).ejected() == POOL[:2]  # type: ignore[union-attr]
    assert health_of(lb).ejections_refused == 4  # type: ignore[union-attr]
    assert sum(isinstance(e, Ejected) for e in events) == 2


def test_at_least_one_endpoint_may_be_ejected() -> None:
    lb, _, _ = build(bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.1), size=3)
    fail(lb, POOL[0], 1)
    fail(lb, POOL[1], 1)
    assert health_of(lb).ejected() == [POOL[0]]  # type: ignore[union-attr]


def test_zero_share_never_ejects() -> None:
    lb, _, _ = build(bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.0))
    fail(lb, POOL[0], 3)
    assert not lb.stats()[POOL[0]].ejected


@pytest.mark.parametrize(
    ("threshold", "healthy", "total", "panic"),
    [(0.7, 7, 10, False), (0.7, 6, 10, True), (0.3, 3, 10, False), (0.1, 1, 10, False)],
)
def test_panic_is_exact_at_the_threshold(
    threshold: float, healthy: int, total: int, panic: bool
) -> None:
    assert bk.PassiveHealth(panic_threshold=threshold).in_panic(healthy, total) is panic


def test_panic_engages_below_the_threshold_and_fails_open() -> None:
    passive = bk.PassiveHealth(
        consecutive_failures=1, max_ejection_share=1.0, panic_threshold=0.5, base_ejection=10
    )
    lb, clock, events = build(passive, size=4)
    fail(lb, POOL[0], 1)
    fail(lb, POOL[1], 1)  # 2 of 4 healthy: 50 % is not below 50 %
    assert not health_of(lb).panic  # type: ignore[union-attr]
    assert picks(lb) == set(POOL[2:4])
    clock.now += 1
    fail(lb, POOL[2], 1)  # 1 of 4 healthy: panic
    assert health_of(lb).panic  # type: ignore[union-attr]
    assert events[-1] == PanicEngaged(at=101.0, healthy=1, total=4)
    assert picks(lb) == set(POOL[:4])  # fails open over every endpoint that is up
    clock.now = 110.0  # the first two return: 3 of 4 healthy
    picks(lb, 1)
    assert not health_of(lb).panic  # type: ignore[union-attr]
    assert PanicDisengaged(at=110.0, healthy=3, total=4) in events
    assert picks(lb) == {POOL[0], POOL[1], POOL[3]}


def test_marking_down_counts_towards_panic_only_as_fewer_endpoints() -> None:
    passive = bk.PassiveHealth(consecutive_failures=1, max_ejection_share=1.0)
    lb, _, _ = build(passive, size=4)
    lb.mark_down(POOL[3])
    fail(lb, POOL[0], 1)  # 2 of the 3 endpoints that are up are healthy
    assert not health_of(lb).panic  # type: ignore[union-attr]
    fail(lb, POOL[1], 1)  # 1 of 3
    assert health_of(lb).panic  # type: ignore[union-attr]
    assert POOL[3] not in picks(lb)  # marked down stays out even in panic


def test_without_panic_all_ejected_raises_saying_why() -> None:
    passive = bk.PassiveHealth(consecutive_failures=1, max_ejection_share=1.0, panic_threshold=0)
    lb, _, _ = build(passive, size=1)
    fail(lb, POOL[0], 1)
    with pytest.raises(bk.NoEndpointAvailable, match="ejected"):
        lb.select()


def test_a_single_endpoint_fails_open_with_the_default_panic_threshold() -> None:
    lb, _, _ = build(bk.PassiveHealth(consecutive_failures=1), size=1)
    fail(lb, POOL[0], 1)
    assert lb.stats()[POOL[0]].ejected
    assert lb.select().address == POOL[0]


def test_late_outcomes_of_ejected_and_removed_endpoints_are_ignored() -> None:
    lb, _, events = build(bk.PassiveHealth(consecutive_failures=2, max_ejection_share=0.5))
    held = [lb.select(avoid=POOL[1:]) for _ in range(4)]
    lb.release(held[0], ok=False)
    lb.release(held[1], ok=False)  # ejected
    lb.release(held[2], ok=False)
    lb.release(held[3], ok=False)
    assert sum(isinstance(e, Ejected) for e in events) == 1
    lease = lb.select(avoid=POOL[2:])
    lb.remove(lease.address)
    lb.release(lease, ok=False)
    lb._check_invariants()
    health_of(lb)._check_invariants()  # type: ignore[union-attr]


def test_removing_an_ejected_endpoint_frees_its_place() -> None:
    lb, _, _ = build(bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.1))
    fail(lb, POOL[0], 1)
    lb.remove(POOL[0])
    fail(lb, POOL[1], 1)
    assert health_of(lb).ejected() == [POOL[1]]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "strategy", [bk.WeightedRoundRobin, bk.LeastConnections, bk.LeastResponseTime, bk.IPHash]
)
def test_every_strategy_stops_picking_an_ejected_endpoint(strategy: type[bk.BalancerBase]) -> None:
    lb, _, _ = build(bk.PassiveHealth(consecutive_failures=2), strategy=strategy)
    others = POOL[1:]
    for i in range(2):
        lb.release(lb.select(f"k{i}", avoid=others), ok=False)
    for i in range(200):
        lease = lb.select(f"key-{i}")
        assert lease.address != POOL[0]
        lb.release(lease)


def test_attaching_twice_and_bad_options_are_refused() -> None:
    lb = bk.with_health(bk.RoundRobin(POOL))
    with pytest.raises(bk.InvalidOption, match="already"):
        bk.with_health(lb)
    with pytest.raises(bk.InvalidOption):
        bk.with_health(object())  # type: ignore[type-var]
    with pytest.raises(bk.InvalidOption):
        bk.with_health(bk.RoundRobin(POOL), on_event=3)  # type: ignore[arg-type]
    assert health_of(bk.RoundRobin(POOL)) is None


@pytest.mark.parametrize(
    "options",
    [
        {"consecutive_failures": 0},
        {"failure_rate": 0},
        {"failure_rate": 1.5},
        {"window": 0},
        {"window": 5, "minimum_requests": 6},
        {"base_ejection": 0},
        {"max_ejection_share": -0.1},
        {"panic_threshold": 2},
        {"interval": float("inf")},
        {"consecutive_failures": True},
    ],
)
def test_invalid_passive_options(options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        bk.PassiveHealth(**options)  # type: ignore[arg-type]


def test_stateless_release_without_health_skips_the_tracker() -> None:
    lb = bk.RoundRobin(POOL)
    assert lb._health is None
    lb.release(lb.select(), ok=False)
    assert not lb.stats()[POOL[0]].ejected


def test_a_raising_callback_is_logged_and_leaves_the_balancer_consistent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: HealthEvent) -> None:
        raise RuntimeError("metrics backend down")

    lb = bk.with_health(
        bk.LeastConnections(POOL), bk.PassiveHealth(consecutive_failures=1), on_event=broken
    )
    fail(lb, POOL[0], 1)
    assert lb.stats()[POOL[0]].ejected
    assert POOL[0] not in picks(lb)
    lb._check_invariants()
    assert "on_event callback failed" in caplog.text
