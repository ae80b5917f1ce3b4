"""Least connections and least response time: the behaviours their docstrings promise."""

from __future__ import annotations

from collections import Counter

import balancekit as bk


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_connections_ties_rotate_instead_of_picking_the_first() -> None:
    lb = bk.LeastConnections(["a:1", "b:1", "c:1"])
    picks = []
    for _ in range(6):
        lease = lb.select()
        picks.append(lease.address[0])
        lb.release(lease)
    assert picks == list("abcabc")


def test_least_connections_follows_in_flight_per_weight() -> None:
    lb = bk.LeastConnections([bk.Endpoint("a:1", weight=3), "b:1"])
    held = [lb.select() for _ in range(8)]
    assert Counter(lease.address for lease in held) == {"a:1": 6, "b:1": 2}
    for lease in held:
        if lease.address == "a:1":
            lb.release(lease)
    assert lb.select().address == "a:1"


def test_least_response_time_starves_the_slow_endpoint_then_gives_traffic_back() -> None:
    clock = Clock()
    lb = bk.LeastResponseTime(["fast:1", "slow:1", "other:1"], clock=clock, probe_interval=1.0)
    latency = {"fast:1": 0.010, "slow:1": 0.500, "other:1": 0.012}
    counts: Counter[str] = Counter()
    for _ in range(3000):  # 30 simulated seconds, one request every 10 ms
        clock.now += 0.010
        lease = lb.select()
        counts[lease.address] += 1
        lb.release(lease, elapsed=latency[lease.address])
    assert counts["slow:1"] <= 40  # about one probe a second
    latency["slow:1"] = 0.008  # it recovers: now the fastest
    recovered_at = None
    counts.clear()
    for step in range(3000):
        clock.now += 0.010
        lease = lb.select()
        counts[lease.address] += 1
        lb.release(lease, elapsed=latency[lease.address])
        if recovered_at is None and counts["slow:1"] > 50:
            recovered_at = step * 0.010
    assert recovered_at is not None and recovered_at < 15.0  # bounded: a few probes
    assert counts["slow:1"] > counts["fast:1"]


def test_least_response_time_shares_equally_between_equal_endpoints() -> None:
    clock = Clock()
    lb = bk.LeastResponseTime([f"s{i}:1" for i in range(5)], clock=clock)
    for _ in range(500):  # warm up: every endpoint gets a first sample (probes, at worst)
        clock.now += 0.01
        lb.release(lb.select(), elapsed=0.02)
    counts: Counter[str] = Counter()
    for _ in range(5000):
        clock.now += 0.01
        lease = lb.select()
        counts[lease.address] += 1
        lb.release(lease, elapsed=0.02)
    assert set(counts.values()) == {1000}


def test_least_response_time_starves_no_endpoint_under_noise() -> None:
    import random

    rng = random.Random(7)
    clock = Clock()
    lb = bk.LeastResponseTime([f"s{i}:1" for i in range(5)], clock=clock)
    counts: Counter[str] = Counter()
    for _ in range(20000):  # 200 simulated seconds
        clock.now += 0.01
        lease = lb.select()
        counts[lease.address] += 1
        lb.release(lease, elapsed=rng.uniform(0.015, 0.025))
    assert min(counts.values()) > 0.10 * 20000, counts


def test_least_response_time_failures_never_make_an_endpoint_look_faster() -> None:
    clock = Clock()
    lb = bk.LeastResponseTime(["a:1"], clock=clock)
    lease = lb.select()
    lb.release(lease, elapsed=0.100)
    for _ in range(20):
        clock.now += 1
        lb.release(lb.select(), ok=False, elapsed=0.0001)
    assert lb.stats()["a:1"].latency == 0.100
