"""Shared guard state on a real redis-server (issue 13, item 2): several client processes
enforce one rate limit and one ban list; Redis down or hung is answered by the failure policy
without an exception, and enforcement resumes when Redis is back."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

import balancekit as bk
from balancekit.guard import AnomalyDetector, BanList, Chain, RateLimit, RedisStore
from balancekit.guard.store import FailurePolicy

from ._redis import RedisServer, free_tcp_port

WORKER = Path(__file__).with_name("_guard_worker.py")
FLOOD = bk.Request(client_addr="203.0.113.50")


def run_workers(url: str, mode: str, processes: int, attempts: int, tmp: Path) -> list[str]:
    """Start ``processes`` workers, release them at once, return their output lines."""
    go = tmp / f"go-{mode}"
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, mode, str(attempts), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    try:
        time.sleep(0.5)  # let the interpreters start; they wait for the go file
        go.write_text("go")
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(out.strip())
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_processes_enforce_one_rate_limit_together(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """4 processes x 40 attempts at "50/minute" (moving window, exact): 50 admitted in all."""
    outputs = run_workers(redis_server.url, "rate", processes=4, attempts=40, tmp=tmp_path)
    allowed = [int(line.split()[0]) for line in outputs]
    assert all(line.split()[1] == "1" for line in outputs)  # no worker saw Redis fail
    assert sum(allowed) == 50, allowed


def test_processes_share_strikes_and_bans(redis_server: RedisServer, tmp_path: Path) -> None:
    """3 processes strike the same key once each (strikes=3): exactly one strike bans it, and
    a fourth client sees the ban."""
    outputs = run_workers(redis_server.url, "strike", processes=3, attempts=1, tmp=tmp_path)
    assert sum(int(line.split()[0]) for line in outputs) == 1, outputs
    bans = BanList(strikes=3, within=60, ban_for=60, store=RedisStore(redis_server.url))
    verdict = bans.check(bk.Request(client_addr="198.51.100.20"))
    assert verdict.status == 403
    assert verdict.retry_after is not None and 0 < verdict.retry_after <= 60


def test_two_clients_share_one_anomaly_count(redis_server: RedisServer) -> None:
    """Two detectors (two clients) on one store count one key together."""
    store = RedisStore(redis_server.url)
    a = AnomalyDetector(bucket=3600, min_count=5, store=store)
    b = AnomalyDetector(bucket=3600, min_count=5, store=RedisStore(redis_server.url))
    allowed = [(a if i % 2 else b).check(FLOOD).allowed for i in range(8)]
    assert allowed == [True] * 5 + [False] * 3
    assert a.baseline(FLOOD) == 0.0  # nothing learned within the first bucket
    assert a.baseline(bk.Request(client_addr="192.0.2.99")) is None


def test_ban_expires_and_unban_lifts(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    bans = BanList(strikes=2, within=60, ban_for=0.3, store=store)
    assert bans.strike(FLOOD, "one") is None
    assert bans.strike(FLOOD, "two") is not None
    assert bans.banned_until(FLOOD) is not None
    assert not bans.check(FLOOD).allowed
    deadline = time.monotonic() + 5
    while not bans.check(FLOOD).allowed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bans.check(FLOOD).allowed  # Redis expired the ban key
    bans.ban(FLOOD, seconds=60, reason="manual")
    assert "manual" in bans.check(FLOOD).reason
    bans.unban(FLOOD)
    assert bans.check(FLOOD).allowed
    assert bans.banned_until(FLOOD) is None


def test_rate_limit_rejection_strikes_a_shared_ban_list(redis_server: RedisServer) -> None:
    """The doctest scenario of guard.rate, on Redis: 2/hour, two strikes ban."""
    store = RedisStore(redis_server.url)
    bans = BanList(strikes=2, within=60, ban_for=300, store=store)
    guard = Chain([bans, RateLimit("2/hour", bans=bans, store=store)])
    assert [guard.check(FLOOD).status for _ in range(5)] == [None, None, 429, 429, 403]


def _guards(
    url: str, policy: FailurePolicy, clock: list[float]
) -> tuple[RedisStore, RateLimit, BanList, AnomalyDetector]:
    store = RedisStore(url, on_error=policy, timeout=0.2, clock=lambda: clock[0])
    return (
        store,
        RateLimit("3/minute", store=store),
        BanList(strikes=2, store=store),
        AnomalyDetector(bucket=3600, min_count=1000, store=store),
    )


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
def test_redis_down_follows_the_policy_and_recovers(
    redis_server: RedisServer, policy: FailurePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [0.0]
    store, rate, bans, anomaly = _guards(redis_server.url, policy, clock)
    assert [rate.check(FLOOD).allowed for _ in range(4)] == [True, True, True, False]

    redis_server.stop()  # SIGKILL: connections refused
    with caplog.at_level(logging.INFO, logger="balancekit.guard"):
        for guard in (rate, bans, anomaly):
            verdict = guard.check(FLOOD)
            if policy == "fail_open":
                assert verdict.allowed
            else:
                assert verdict.status == 503 and "store:unavailable" in verdict.rule_ids
        assert bans.strike(FLOOD, "while down") is None
        assert bans.banned_until(FLOOD) is None
        assert anomaly.baseline(FLOOD) is None
        assert not store.available

        redis_server.start()  # same port, empty (no persistence)
        assert not rate.check(FLOOD).allowed or policy == "fail_open"
        clock[0] += 1.0  # retry_interval (1 s) passed: the store asks Redis again
        assert [rate.check(FLOOD).allowed for _ in range(4)] == [True, True, True, False]
        assert store.available
        assert bans.check(FLOOD).allowed and anomaly.check(FLOOD).allowed
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO"], messages
    assert policy in messages[0][1]


def test_hung_redis_is_bounded_by_the_timeout(redis_server: RedisServer) -> None:
    """SIGSTOP: the socket accepts but nothing answers; each call ends at the read timeout
    and the policy answers."""
    clock = [0.0]
    store, rate, bans, anomaly = _guards(redis_server.url, "fail_closed", clock)
    assert rate.check(FLOOD).allowed
    redis_server.pause()
    try:
        assert rate.check(FLOOD).status == 503
        assert bans.check(FLOOD).status == 503
        assert anomaly.check(FLOOD).status == 503
        assert not store.available
    finally:
        redis_server.resume()
    clock[0] += 1.0
    assert rate.check(FLOOD).allowed
    assert store.available


def test_nothing_listening_is_a_failure_not_an_exception() -> None:
    """No server at all on the port (never started): every guard answers by the policy."""
    url = f"redis://127.0.0.1:{free_tcp_port()}/0"
    store = RedisStore(url, on_error="fail_closed", timeout=0.2)
    assert RateLimit("1/second", store=store).check(FLOOD).status == 503
    open_store = RedisStore(url, timeout=0.2)
    assert BanList(store=open_store).check(FLOOD).allowed
    assert AnomalyDetector(store=open_store).check(FLOOD).allowed


def test_hostile_keys_reach_redis_intact(redis_server: RedisServer) -> None:
    """A lone surrogate or a 1 MB key is a key like any other, not a failed call."""
    store = RedisStore(redis_server.url, on_error="fail_closed")
    for value in ("\ud800", "x" * 10**6, "a\x00b", "\U0001f600"):
        request = bk.Request(headers={"x-api-key": value})
        rate = RateLimit("1/minute", key=bk.keys.header("x-api-key"), store=store)
        bans = BanList(key=bk.keys.header("x-api-key"), strikes=1, store=store)
        anomaly = AnomalyDetector(key=bk.keys.header("x-api-key"), min_count=1, store=store)
        assert rate.check(request).allowed and not rate.check(request).allowed
        assert anomaly.check(request).allowed and not anomaly.check(request).allowed
        assert bans.strike(request, "hostile") is not None
        assert bans.check(request).status == 403
        assert store.available


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window"])
def test_every_limits_strategy_runs_on_the_store(redis_server: RedisServer, strategy: str) -> None:
    """Each of limits' strategies on Redis, shared by two RateLimit instances (two clients)."""
    store = RedisStore(redis_server.url, on_error="fail_closed")
    first = RateLimit("3/hour", strategy=strategy, store=store)  # type: ignore[arg-type]
    second = RateLimit("3/hour", strategy=strategy, store=RedisStore(redis_server.url))  # type: ignore[arg-type]
    verdicts = [(first if i % 2 else second).check(FLOOD) for i in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert verdicts[-1].status == 429 and verdicts[-1].retry_after is not None
    assert 0 < verdicts[-1].retry_after <= 3600
