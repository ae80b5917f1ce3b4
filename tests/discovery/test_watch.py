"""Watchers survive their hooks and their sources; every wait they make is finite.

Sources here are scripted objects (no network); the thread and asyncio modes are awaited in
bounded polling loops, never by asserting a duration.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit.discovery import DNS, AsyncWatcher, Snapshot, Watcher

FAST: dict[str, Any] = {"min_interval": 0.01, "error_interval": 0.01, "max_interval": 0.02}


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms for at most ``timeout`` seconds; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Scripted:
    """A source answering ``answers`` in turn (an exception instance is raised), then the last."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls = 0
        self._lock = threading.Lock()

    def resolve(self) -> Snapshot:
        with self._lock:
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    def set(self, *answers: object) -> None:
        with self._lock:
            self.answers, self.calls = list(answers), 0


def snapshot(*addresses: str, ttl: float = 0.0) -> Snapshot:
    return Snapshot(tuple(bk.Endpoint(a) for a in addresses), ttl)


def members(lb: bk.Balancer) -> list[str]:
    return [e.address for e in lb.endpoints]


def raising_hook(error: BaseException) -> None:
    raise RuntimeError(f"the hook itself is broken (was given {error!r})")


def test_a_watcher_survives_an_on_error_hook_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    lb = bk.RoundRobin()
    source = Scripted(snapshot("10.0.0.1:80"), ConnectionError("registry down"))
    watcher = Watcher(lb, source, on_error=raising_hook, **FAST)
    with caplog.at_level(logging.ERROR, logger="balancekit.discovery"), watcher:
        assert wait_until(lambda: watcher.errors >= 3), "the watcher stopped after the hook raised"
        assert watcher.is_alive()
        assert members(lb) == ["10.0.0.1:80"]  # kept through the failures
        source.set(snapshot("10.0.0.2:80", "10.0.0.3:80"))
        assert wait_until(lambda: members(lb) == ["10.0.0.2:80", "10.0.0.3:80"])
    assert not watcher.is_alive()
    logged = [r for r in caplog.records if r.name == "balancekit.discovery"]
    assert logged and "on_error" in logged[0].getMessage()


def test_an_async_watcher_survives_an_on_error_hook_that_raises() -> None:
    async def main() -> None:
        lb = bk.RoundRobin()
        source = Scripted(snapshot("10.0.0.1:80"), ConnectionError("registry down"))
        async with AsyncWatcher(lb, source, on_error=raising_hook, **FAST) as watcher:
            for _ in range(1000):  # at most ~10 s
                if watcher.errors >= 3:
                    break
                await asyncio.sleep(0.01)
            assert watcher.errors >= 3 and watcher.is_alive()
            source.set(snapshot("10.0.0.2:80"))
            for _ in range(1000):
                if members(lb) == ["10.0.0.2:80"]:
                    break
                await asyncio.sleep(0.01)
            assert members(lb) == ["10.0.0.2:80"]
        assert not watcher.is_alive()

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        Snapshot((bk.Endpoint("10.0.0.9:80"),), math.nan),  # NaN ttl: a busy loop before
        Snapshot((bk.Endpoint("10.0.0.9:80"),), "60"),  # type: ignore[arg-type]
        Snapshot((bk.Endpoint("10.0.0.9:80"),), -1.0),
        ["10.0.0.9:80"],  # not a snapshot at all
        None,
    ],
)
def test_a_nonsense_answer_is_a_failed_refresh_that_changes_nothing(answer: object) -> None:
    lb = bk.RoundRobin()
    errors: list[BaseException] = []
    watcher = Watcher(lb, Scripted(snapshot("10.0.0.1:80")), on_error=errors.append)
    watcher.start()
    try:
        assert members(lb) == ["10.0.0.1:80"]
        interval = watcher.interval
        watcher.source = Scripted(answer)
        with pytest.raises(bk.discovery.DiscoveryError):
            watcher.refresh()
        assert members(lb) == ["10.0.0.1:80"] and watcher.interval == interval
    finally:
        watcher.stop()


def test_a_source_whose_repr_raises_is_still_watched() -> None:
    class Unprintable(Scripted):
        def __repr__(self) -> str:
            raise ValueError("no repr")

    lb = bk.RoundRobin()
    source = Unprintable(snapshot("10.0.0.1:80"), snapshot())  # then empty answers
    with Watcher(lb, source, **FAST) as watcher:
        assert wait_until(lambda: watcher.errors >= 2)
        assert isinstance(watcher.last_error, bk.discovery.DiscoveryError)
        assert members(lb) == ["10.0.0.1:80"]


HOSTILE_SECONDS = [math.inf, -math.inf, math.nan, 1e300, 10**400, 0, -1, True, "1", None]


@pytest.mark.parametrize("value", HOSTILE_SECONDS, ids=lambda v: repr(v)[:10])
def test_dns_timeout_must_be_finite(value: object) -> None:
    with pytest.raises(bk.InvalidOption, match="timeout"):
        DNS("_http._tcp.backend.test", nameservers=["127.0.0.1"], timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["min_interval", "max_interval", "error_interval"])
@pytest.mark.parametrize("value", HOSTILE_SECONDS, ids=lambda v: repr(v)[:10])
def test_watcher_intervals_must_be_finite(option: str, value: object) -> None:
    with pytest.raises(bk.InvalidOption, match=option):
        Watcher(bk.RoundRobin(), Scripted(snapshot("10.0.0.1:80")), **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.inf, math.nan, 1e300, -1, "5"])
def test_watcher_stop_timeout_must_be_finite(value: object) -> None:
    watcher = Watcher(bk.RoundRobin(), Scripted(snapshot("10.0.0.1:80")))
    with pytest.raises(bk.InvalidOption, match="timeout"):
        watcher.stop(value)  # type: ignore[arg-type]


@given(st.one_of(st.floats(), st.integers(min_value=-(10**30), max_value=10**30)))
def test_dns_timeout_is_a_day_at_most_and_never_reaches_dnspython_unchecked(value: float) -> None:
    if 0 < value <= 86_400:
        assert DNS("backend.test", port=80, nameservers=["127.0.0.1"], timeout=value)
    else:
        with pytest.raises(bk.InvalidOption, match="timeout"):
            DNS("backend.test", port=80, nameservers=["127.0.0.1"], timeout=value)
