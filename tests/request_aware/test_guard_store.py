"""RedisStore's options and its failure breaker, without a server (issue 13, item 2); the
behaviour against a real redis-server is in tests/integration/test_redis_guards.py."""

from __future__ import annotations

import pytest

import balancekit as bk
from balancekit.guard import AnomalyDetector, BanList, RateLimit, RedisStore
from balancekit.guard.store import MAX_TTL_MS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": 5},
        {"url": "http://example.com"},
        {"url": "redis://" + "a" * 3000},
        {"prefix": ""},
        {"prefix": 7},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"timeout": 10**400},
        {"on_error": "open"},
        {"retry_interval": -1},
        {"max_connections": 0},
        {"clock": "now"},
    ],
)
def test_bad_store_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        RedisStore(**kwargs)  # type: ignore[arg-type]


def test_guards_refuse_a_bad_store_or_both_storages() -> None:
    store = RedisStore()
    with pytest.raises(bk.InvalidOption):
        BanList(store="redis://x")  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        AnomalyDetector(store=object())  # type: ignore[arg-type]
    from limits.storage import MemoryStorage

    with pytest.raises(bk.InvalidOption):
        RateLimit("1/second", storage=MemoryStorage(), store=store)
    with pytest.raises(bk.InvalidOption):  # a TTL Redis cannot hold, refused up front
        BanList(ban_for=MAX_TTL_MS, store=store)


def test_breaker_skips_redis_until_the_retry_interval_passes() -> None:
    now = [0.0]
    store = RedisStore(retry_interval=2.0, clock=lambda: now[0])
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        raise ConnectionError("down")

    assert store.call(failing) == (False, None)
    assert store.call(failing) == (False, None)  # skipped: no second attempt
    assert len(calls) == 1 and not store.available
    now[0] = 2.0
    assert store.call(lambda: 42) == (True, 42)
    assert store.available


def test_cancellation_is_not_swallowed() -> None:
    """Only Exceptions become the policy's answer; KeyboardInterrupt and task cancellation
    (BaseException) propagate, and the store is not marked down for them."""
    store = RedisStore()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.call(interrupted)
    assert store.available


def test_fail_closed_verdict() -> None:
    closed = RedisStore(on_error="fail_closed").unavailable("rate:1/second")
    assert closed.status == 503
    assert closed.rule_ids == ("rate:1/second", "store:unavailable")
    assert RedisStore().unavailable("ban").allowed
