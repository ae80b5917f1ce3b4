"""Rate, concurrency, bans, chain and the anomaly detector (time injected, never waited on)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit import InvalidOption, Request, keys
from balancekit.guard import (
    ALLOW,
    AnomalyDetector,
    BanList,
    Chain,
    ConcurrencyLimit,
    RateLimit,
    Verdict,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def loose(factory: object) -> Any:
    """The factory, untyped: the bad-option tests pass wrong types on purpose."""
    return factory


def client(n: int) -> Request:
    return Request(client_addr=f"198.51.100.{n}")


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window"])
def test_a_flood_is_held_to_its_rate_while_other_keys_pass(strategy: Any) -> None:
    # Hour-long windows: the test finishes long before any window moves, so counts are exact.
    guard = RateLimit("10/hour", strategy=strategy)
    flooder, allowed_flood = client(1), 0
    for i in range(200):
        allowed_flood += guard.check(flooder).allowed
        if i % 20 == 0:
            assert guard.check(client(2 + i // 20)).allowed
    assert allowed_flood == 10
    verdict = guard.check(flooder)
    assert (verdict.allowed, verdict.status, verdict.rule_ids) == (False, 429, ("rate:10/hour",))
    assert verdict.retry_after is not None and 0 < verdict.retry_after <= 3600


def test_rate_keys_can_be_anything() -> None:
    guard = RateLimit("1/hour", key=keys.header("x-api-key"))
    assert guard.check(Request(headers={"X-Api-Key": "a"})).allowed
    assert not guard.check(Request(headers={"X-Api-Key": "a"})).allowed
    assert guard.check(Request(headers={"X-Api-Key": "b"})).allowed
    assert guard.check(Request()).allowed  # keyless requests share one bucket
    assert not guard.check(Request()).allowed


def test_bans_after_repeated_strikes_and_expire() -> None:
    clock = Clock()
    bans = BanList(strikes=3, within=10, ban_for=60, clock=clock)
    guard = Chain([bans, RateLimit("1/hour", bans=bans)])
    flooder = client(1)
    assert guard.check(flooder).allowed
    statuses = [guard.check(flooder).status for _ in range(4)]
    assert statuses == [429, 429, 429, 403]
    banned = guard.check(flooder)
    assert banned.rule_ids == ("ban",) and banned.banned_until == 60 and banned.retry_after == 60
    assert bans.banned_until(flooder) == 60 and bans.banned_until(client(2)) is None
    clock.now = 59.9
    assert not bans.check(flooder).allowed
    clock.now = 60.0
    assert bans.check(flooder).allowed and bans.banned_until(flooder) is None


def test_strikes_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    bans = BanList(strikes=2, within=10, ban_for=60, clock=clock)
    assert bans.strike(client(1), "x") is None
    clock.now = 10.0
    assert bans.strike(client(1), "x") is None  # the first strike has aged out
    clock.now = 15.0
    assert bans.strike(client(1), "x") == 75.0


def test_manual_ban_and_unban() -> None:
    clock = Clock()
    bans = BanList(clock=clock, ban_for=5)
    assert bans.ban(client(1), reason="abuse") == 5.0
    assert "abuse" in bans.check(client(1)).reason
    bans.unban(client(1))
    assert bans.check(client(1)) is ALLOW
    assert bans.ban(client(1), seconds=1) == 1.0


def test_ban_list_memory_is_bounded() -> None:
    clock = Clock()
    bans = BanList(strikes=100, max_keys=50, clock=clock)
    for n in range(500):
        bans.strike(Request(client_addr=f"10.0.{n // 256}.{n % 256}"), "x")
        assert len(bans) <= 50


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 5)), max_size=60))
def test_bans_match_a_simple_model(events: list[tuple[int, float]]) -> None:
    clock = Clock()
    bans = BanList(strikes=3, within=10, ban_for=20, clock=clock)
    strikes: dict[int, list[float]] = {}
    until: dict[int, float] = {}
    for who, step in events:
        clock.now += step
        now = clock.now
        if until.get(who, -1) > now:
            assert bans.strike(client(who), "x") is None
            assert bans.banned_until(client(who)) == until[who]
            continue
        recent = [t for t in strikes.get(who, []) if t > now - 10] + [now]
        result = bans.strike(client(who), "x")
        if len(recent) >= 3:
            until[who], strikes[who] = now + 20, []
            assert result == now + 20
        else:
            strikes[who] = recent
            assert result is None


def test_concurrency_limit_and_release() -> None:
    guard = ConcurrencyLimit(2)
    a = client(1)
    assert guard.check(a).allowed and guard.check(a).allowed
    verdict = guard.check(a)
    assert (verdict.allowed, verdict.status, verdict.rule_ids) == (False, 429, ("concurrency:2",))
    assert guard.check(client(2)).allowed
    guard.release(a)
    assert guard.in_flight(a) == 1 and guard.check(a).allowed
    for _ in range(5):
        guard.release(a)  # extra releases never go below zero
    assert guard.in_flight(a) == 0


def test_chain_releases_earlier_slots_when_a_later_guard_rejects() -> None:
    concurrency = ConcurrencyLimit(1)

    class Deny:
        def check(self, request: Request) -> Verdict:
            return Verdict.reject("no", status=403, rule_ids=("deny",))

    chain = Chain([concurrency, Deny()])
    assert chain.check(client(1)).rule_ids == ("deny",)
    assert concurrency.in_flight(client(1)) == 0
    ok_chain = Chain([concurrency])
    assert ok_chain.check(client(1)).allowed and concurrency.in_flight(client(1)) == 1
    ok_chain.release(client(1))
    assert concurrency.in_flight(client(1)) == 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: RateLimit("lots"),
        lambda: loose(RateLimit)(10),
        lambda: loose(RateLimit)("1/second", strategy="token-bucket"),
        lambda: RateLimit("1/second", status=200),
        lambda: loose(RateLimit)("1/second", key="ip"),
        lambda: loose(RateLimit)("1/second", bans="yes"),
        lambda: BanList(strikes=0),
        lambda: BanList(within=float("nan")),
        lambda: loose(BanList)(clock=1),
        lambda: ConcurrencyLimit(0),
        lambda: loose(ConcurrencyLimit)(1.5),
        lambda: AnomalyDetector(factor=1),
        lambda: AnomalyDetector(min_count=0),
        lambda: AnomalyDetector(bucket=0),
        lambda: loose(Chain)([object()]),
        lambda: Verdict.reject("x", status=403, rule_ids=()),
    ],
)
def test_bad_options(build: Any) -> None:
    with pytest.raises(InvalidOption):
        build()


def test_anomaly_flags_a_jump_above_a_keys_own_baseline() -> None:
    clock = Clock()
    detector = AnomalyDetector(bucket=1, half_life=2, factor=4, min_count=12, clock=clock)
    busy, quiet = client(1), client(2)
    for second in range(60):
        clock.now = second
        for _ in range(10):
            assert detector.check(busy).allowed
        assert detector.check(quiet).allowed
    clock.now = 60
    # quiet: normal 1/s, threshold max(12, 4 x 1) = 12; busy: normal 10/s, threshold ~40.
    assert [detector.check(quiet).allowed for _ in range(20)] == [True] * 12 + [False] * 8
    verdict = detector.check(quiet)
    assert verdict.rule_ids == ("anomaly",) and verdict.status == 429 and "normal" in verdict.reason
    assert 38 <= sum(detector.check(busy).allowed for _ in range(60)) <= 40


def test_new_keys_are_held_to_min_count_and_floods_are_not_learned() -> None:
    clock = Clock()
    bans = BanList(strikes=1, ban_for=30, clock=clock)
    detector = AnomalyDetector(
        bucket=1, half_life=10, factor=3, min_count=5, clock=clock, bans=bans
    )
    flooder = client(9)
    for second in range(100):
        clock.now = second
        allowed = sum(detector.check(flooder).allowed for _ in range(100))
        assert allowed <= max(5, 3 * 5)
    baseline = detector.baseline(flooder)
    assert baseline is not None and baseline <= 5.0 + 1e-9  # learned at most the threshold
    assert bans.banned_until(flooder) is not None


def test_anomaly_baseline_decays_over_silence_without_mutating() -> None:
    clock = Clock()
    detector = AnomalyDetector(bucket=1, half_life=10, clock=clock)
    for second in range(50):
        clock.now = second
        detector.check(client(1))
    clock.now = 50
    before = detector.baseline(client(1))
    assert before is not None and 0.9 < before <= 1.0
    clock.now = 60
    after = detector.baseline(client(1))
    assert after is not None and after == pytest.approx(before * 0.5, rel=0.1)
    clock.now = 50
    assert detector.baseline(client(1)) == before  # reading changed nothing
    assert detector.baseline(client(2)) is None


def test_anomaly_memory_is_bounded() -> None:
    detector = AnomalyDetector(max_keys=10, clock=Clock())
    for n in range(100):
        detector.check(client(n))
    assert len(detector) == 10
