"""Log lines: one per state change (ejection, return, panic, discovery change, check verdict).

Nothing is logged per request: a storm of failures writes a line per ejection, and repeated
failing checks or unchanged discovery answers write nothing more.
"""

from __future__ import annotations

import logging

import pytest

import balancekit as bk
from balancekit.discovery import Snapshot, Watcher
from balancekit.health import ActiveChecker, health_of

POOL = [f"10.0.0.{i}:80" for i in range(1, 5)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [
        (record.name, record.levelno, record.getMessage())
        for record in caplog.records
        if record.name.startswith("balancekit")
    ]


def test_an_ejection_and_its_return_are_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="balancekit")
    clock = Clock()
    lb = bk.with_health(
        bk.RoundRobin(POOL, clock=clock),
        bk.PassiveHealth(consecutive_failures=3, failure_rate=None, base_ejection=30),
    )
    others = set(POOL[1:])
    for _ in range(3):
        lb.release(lb.select(avoid=others), ok=False)
    assert lines(caplog) == [
        (
            "balancekit.health",
            logging.WARNING,
            "balancekit health: ejected 10.0.0.1:80 (consecutive_failures), ejection #1, for 30 s",
        )
    ]
    ejected = caplog.records[-1]
    assert ejected.balancekit_event.address == POOL[0]  # type: ignore[attr-defined]
    caplog.clear()
    for _ in range(20):  # traffic while ejected, then the ejection ends: one line
        lb.release(lb.select())
    clock.now += 30
    for _ in range(20):
        lb.release(lb.select())
    assert lines(caplog) == [
        ("balancekit.health", logging.INFO, "balancekit health: 10.0.0.1:80 returned to rotation")
    ]


def test_a_failure_storm_logs_one_line_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="balancekit")
    lb = bk.with_health(
        bk.RoundRobin(POOL, clock=Clock()),
        bk.PassiveHealth(consecutive_failures=5, failure_rate=None, max_ejection_share=0.5),
    )
    for _ in range(2000):  # every request fails: two may be ejected, the rest are refused
        lb.release(lb.select(), ok=False)
    tracker = health_of(lb)
    assert tracker is not None and tracker.ejections_refused > 100
    logged = lines(caplog)
    assert [level for _, level, _ in logged] == [logging.WARNING, logging.WARNING]
    assert all("ejected" in message for _, _, message in logged)
    assert sum(tracker.event_counts.values()) == len(logged)


def test_panic_engaging_warns_and_its_end_informs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="balancekit")
    clock = Clock()
    lb = bk.with_health(
        bk.RoundRobin(POOL[:2], clock=clock),
        bk.PassiveHealth(consecutive_failures=1, failure_rate=None, base_ejection=10),
    )
    lb.release(lb.select(avoid={POOL[1]}), ok=False)  # 1 of 2 healthy: below 0.5? no, equal
    lb.release(lb.select(avoid={POOL[0]}), ok=False)  # refused: the share allows one
    assert [m for _, _, m in lines(caplog)] == [
        "balancekit health: ejected 10.0.0.1:80 (consecutive_failures), ejection #1, for 10 s"
    ]
    caplog.clear()
    lb.mark_down(POOL[1])  # 0 of 1 up endpoint healthy: panic
    lb.mark_up(POOL[1])  # 1 of 2: no longer below half
    assert lines(caplog) == [
        (
            "balancekit.health",
            logging.WARNING,
            "balancekit health: panic engaged, 0 of 1 endpoints healthy: failing open over all",
        ),
        (
            "balancekit.health",
            logging.INFO,
            "balancekit health: panic over, 1 of 2 endpoints healthy",
        ),
    ]


def test_a_failing_check_logs_when_its_verdict_changes_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="balancekit")

    class Flaky:
        down = True

        def check(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
            failing = self.down and endpoint.address == POOL[0]
            return (not failing, "connection refused\n" * 50 if failing else "")

        async def acheck(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
            return self.check(endpoint)

    check = Flaky()
    lb = bk.RoundRobin(POOL)
    checker = ActiveChecker(lb, check=check, rise=1, fall=2)
    for _ in range(10):  # ten failing rounds: the verdict changes once
        checker.check_once()
    check.down = False
    for _ in range(3):
        checker.check_once()
    logged = lines(caplog)
    assert [(level, message.split(":")[1].strip()) for _, level, message in logged] == [
        (logging.WARNING, "active check failed for 10.0.0.1"),
        (logging.INFO, "active check passed for 10.0.0.1"),
    ]
    assert len(logged[0][2]) < 400  # the server's text is cut to a bounded length
    assert "\n" not in logged[0][2]  # and quoted, so it cannot forge a second line


def test_discovery_logs_membership_changes_not_unchanged_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="balancekit")

    class Source:
        def __init__(self) -> None:
            self.addresses = POOL[:2]

        def resolve(self) -> Snapshot:
            return Snapshot(tuple(bk.Endpoint(a) for a in self.addresses), 30.0)

        def __repr__(self) -> str:
            return "Source()"

    source = Source()
    lb = bk.RoundRobin()
    watcher = Watcher(lb, source)
    watcher.refresh()
    watcher.refresh()  # the same answer: nothing to say
    source.addresses = [POOL[1], *(f"10.9.{i // 250}.{i % 250}:80" for i in range(1000))]
    watcher.refresh()
    logged = lines(caplog)
    assert [(name, level) for name, level, _ in logged] == [
        ("balancekit.discovery", logging.INFO),
        ("balancekit.discovery", logging.INFO),
    ]
    assert logged[0][2] == (
        "balancekit discovery: Source() changed the membership: +2 -0, 2 endpoints now;"
        " added 10.0.0.1:80, 10.0.0.2:80"
    )
    assert logged[1][2].startswith(
        "balancekit discovery: Source() changed the membership: +1000 -1, 1001 endpoints now;"
    )
    assert logged[1][2].endswith("and 995 more; removed 10.0.0.1:80")
    assert len(logged[1][2]) < 400  # a thousand new endpoints, one bounded line


def test_a_raising_log_filter_leaves_the_tracker_consistent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("balancekit.health")

    def broken(record: logging.LogRecord) -> bool:
        raise RuntimeError("a broken filter")

    logger.addFilter(broken)
    try:
        lb = bk.with_health(
            bk.RoundRobin(POOL, clock=Clock()),
            bk.PassiveHealth(consecutive_failures=1, failure_rate=None),
        )
        lb.release(lb.select(avoid=set(POOL[1:])), ok=False)
    finally:
        logger.removeFilter(broken)
    assert lb.stats()[POOL[0]].ejected
    tracker = health_of(lb)
    assert tracker is not None
    assert tracker.event_counts == {"ejected:consecutive_failures": 1}
    tracker._check_invariants()
    lb._check_invariants()


def test_an_application_without_logging_configured_gets_no_stderr_lines() -> None:
    """balancekit's loggers have a NullHandler: logging's last-resort handler stays silent."""
    import subprocess
    import sys

    code = (
        "import balancekit as bk\n"
        "lb = bk.with_health(bk.RoundRobin(['a:1', 'b:1']),"
        " bk.PassiveHealth(consecutive_failures=1, failure_rate=None))\n"
        "lb.release(lb.select(avoid={'b:1'}), ok=False)\n"
        "assert lb.stats()['a:1'].ejected\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == ""
