"""Custom active checks that answer nonsense (issue 10: the breaker's pass).

A check returns ``(passed, detail)``. One returning anything else (``True``, ``None``, a
3-tuple) raised out of ``check_once`` when the checker unpacked it: the checker's thread (or
task) died on its first round, silently, and an endpoint its checks held down stayed down.
Such a result now counts as a failed probe whose detail says what was wrong, as a check that
raises does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import balancekit as bk
from balancekit.health import ActiveChecker, health_of

JUNK = [True, None, (True, "ok", "extra"), "ok", 1, (True,), [True, "ok"]]
IDS = ["bool", "none", "3-tuple", "str", "int", "1-tuple", "list"]


class Junk:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def check(self, endpoint: bk.Endpoint) -> Any:
        return self.answer

    async def acheck(self, endpoint: bk.Endpoint) -> Any:
        return self.answer


def checked(answer: Any) -> tuple[bk.RoundRobin, ActiveChecker]:
    lb = bk.with_health(bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80"]), bk.PassiveHealth())
    return lb, ActiveChecker(lb, check=Junk(answer), rise=1, fall=1)


@pytest.mark.parametrize("answer", JUNK, ids=IDS)
def test_a_check_answering_nonsense_is_a_failed_probe(answer: Any) -> None:
    lb, checker = checked(answer)
    assert checker.check_once() == {"10.0.0.1:80": False, "10.0.0.2:80": False}
    tracker = health_of(lb)
    assert tracker is not None
    assert tracker.checked_down() == ["10.0.0.1:80", "10.0.0.2:80"]


@pytest.mark.parametrize("answer", JUNK, ids=IDS)
def test_the_async_round_alike(answer: Any) -> None:
    _, checker = checked(answer)
    result = asyncio.run(checker.acheck_once())
    assert result == {"10.0.0.1:80": False, "10.0.0.2:80": False}


def test_a_checker_thread_survives_a_nonsense_answer_and_goes_on() -> None:
    _, checker = checked(None)
    checker.interval = 0.01
    with checker.running():
        for _ in range(500):  # bounded: at most ~5 s
            if checker.rounds >= 3:
                break
            checker._stop.wait(0.01)
    assert checker.rounds >= 3


class FailingRounds(ActiveChecker):
    """A checker whose first two rounds raise past the probes (as a bug in bookkeeping, or a
    balancer whose ``endpoints`` raises, would): the thread and the task must go on."""

    failures = 2

    def _finish_round(self) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a round failed outside the probes")
        super()._finish_round()


def failing_checker() -> FailingRounds:
    lb = bk.with_health(bk.RoundRobin(["10.0.0.1:80"]), bk.PassiveHealth())
    checker = FailingRounds(lb, check=Junk((True, "ok")), rise=1, fall=1, interval=0.01)
    return checker


def test_a_checker_thread_survives_a_round_that_raises() -> None:
    checker = failing_checker()
    with checker.running():
        for _ in range(500):  # bounded: at most ~5 s
            if checker.rounds >= 2:
                break
            checker._stop.wait(0.01)
        assert checker._thread is not None and checker._thread.is_alive()
    assert checker.failures == 0 and checker.rounds >= 2


def test_a_checker_task_survives_a_round_that_raises() -> None:
    checker = failing_checker()

    async def main() -> None:
        task = checker.start_task()
        for _ in range(500):  # bounded: at most ~5 s
            if checker.rounds >= 2:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()

    asyncio.run(main())
    assert checker.failures == 0 and checker.rounds >= 2
