"""Regression tests from the adversarial review of the Redis guard store, on a real
redis-server (the ``redis_server`` fixture)."""

from __future__ import annotations

import balancekit as bk
from balancekit.guard import AnomalyDetector, RedisStore

from ._redis import RedisServer

ONE = bk.Request(client_addr="198.51.100.7")


def test_detectors_with_different_buckets_on_one_store_keep_apart(
    redis_server: RedisServer,
) -> None:
    """Both wrote one hash per key whose bucket number is in units of their own ``bucket``: a
    1 s detector's bucket numbers are ~86,400 times a day-long one's, so each reset the
    other's count (the day-long detector never saw more than a couple of requests)."""
    store = RedisStore(redis_server.url, timeout=1.0)
    daily = AnomalyDetector(bucket=86_400, half_life=864_000, min_count=5, store=store)
    fast = AnomalyDetector(bucket=1, half_life=10, min_count=1_000, store=store)
    assert all(daily.check(ONE).allowed for _ in range(5))
    assert fast.check(ONE).allowed
    verdict = daily.check(ONE)  # its 6th request in its bucket: over min_count 5
    assert not verdict.allowed and verdict.rule_ids == ("anomaly",)
    assert store.available
