"""The default PassiveHealth catches the three failures issue 10.12 found, in simulated time.

A small deterministic fleet: four endpoints behind RoundRobin, 100 requests/s for ten simulated
minutes, one random draw per request (common random numbers: the same draws whatever is picked).
A request to a server fails with that server's failure probability at that moment; a killed server
fails every request and every check. The figures are the share of requests that failed as clients
saw them (no retries), and when the bad servers were ejected.

- a server failing 30 % of its requests (503s) is ejected, quickly, by the failure-rate detector
  (five failures in a row alone take ~590 requests to see at 30 %);
- a killed server and a flaky one, among four, are both ejected (a share of 0.1 let only one out);
- a killed server that restarts and passes its active checks returns before its ejection ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

import balancekit as bk
from balancekit.health import ActiveChecker, Ejected, HealthEvent, PanicEngaged, Returned, health_of

POOL = [f"10.0.0.{i}:80" for i in range(1, 5)]
RATE = 100.0  # requests per second
SEEDS = range(5)

#: The defaults before issue 10.12, to show what changed (consecutive failures alone, 10 %).
OLD = bk.PassiveHealth(
    failure_rate=None, minimum_requests=20, max_ejection_share=0.1, check_ends_ejection=False
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


#: A server's failure probability at a time; 1.0 is a killed server.
Behaviour = Callable[[float], float]


@dataclass
class Run:
    requests: int = 0
    failed: int = 0
    events: list[HealthEvent] = field(default_factory=list)
    picks: dict[str, list[float]] = field(default_factory=dict)  # times each server was picked
    both_ejected: bool = False

    @property
    def share(self) -> float:
        return self.failed / self.requests

    def ejections(self, address: str) -> list[Ejected]:
        return [e for e in self.events if isinstance(e, Ejected) and e.address == address]


def simulate(
    behaviour: dict[str, Behaviour],
    passive: bk.PassiveHealth | None,
    *,
    seed: int,
    seconds: float = 600.0,
    watch: tuple[str, str] | None = None,
    checks: bool = False,
) -> Run:
    """Drive a RoundRobin over POOL with ``passive`` (None: no health) in simulated time."""
    clock, rng, run = Clock(), random.Random(seed), Run()
    lb = bk.RoundRobin(POOL, clock=clock)
    if passive is not None:
        bk.with_health(lb, passive, on_event=run.events.append)

    def failure(address: str) -> float:
        return behaviour[address](clock.now) if address in behaviour else 0.0

    class Scripted:
        """A check that fails while its server is killed (failure probability 1)."""

        def check(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
            dead = failure(endpoint.address) >= 1.0
            return (False, "connection refused") if dead else (True, "HTTP 200")

        async def acheck(self, endpoint: bk.Endpoint) -> tuple[bool, str]:
            return self.check(endpoint)

    checker = ActiveChecker(lb, check=Scripted()) if checks else None
    next_round = 1.0
    tracker = health_of(lb)
    for _ in range(int(seconds * RATE)):
        clock.now += 1.0 / RATE
        if checker is not None and clock.now >= next_round:
            checker.check_once()
            next_round += checker.interval
        lease = lb.select()
        draw = rng.random()
        ok = draw >= failure(lease.address)
        lb.release(lease, ok=ok)
        run.requests += 1
        run.failed += not ok
        run.picks.setdefault(lease.address, []).append(clock.now)
        if watch is not None and tracker is not None:
            run.both_ejected |= set(watch) <= set(tracker.ejected())
    return run


def failing(share: float, since: float = 0.0) -> Behaviour:
    return lambda now: share if now >= since else 0.0


def killed(since: float = 0.0, until: float = float("inf")) -> Behaviour:
    return lambda now: 1.0 if since <= now < until else 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_server_failing_30_percent_is_ejected_quickly(seed: int) -> None:
    bad = POOL[2]
    run = simulate({bad: failing(0.30)}, bk.PassiveHealth(), seed=seed)
    first = run.ejections(bad)[0]
    served_before = sum(1 for t in run.picks[bad] if t <= first.at)
    assert served_before <= 150  # the rate detector's 50-request minimum, and then some
    assert run.share < 0.01  # bare: 7.5 % (a quarter of the traffic failing 30 %)


def test_the_30_percent_server_costs_far_fewer_failures_than_before() -> None:
    bad = POOL[2]
    shares = {
        name: sum(simulate({bad: failing(0.30)}, passive, seed=s).share for s in SEEDS) / 5
        for name, passive in (("bare", None), ("old", OLD), ("new", bk.PassiveHealth()))
    }
    assert shares["bare"] > 0.07
    assert shares["new"] < shares["old"] / 3, shares


@pytest.mark.parametrize("seed", SEEDS)
def test_a_killed_and_a_flaky_server_are_both_ejected_among_four(seed: int) -> None:
    dead, flaky = POOL[0], POOL[3]
    behaviour = {dead: killed(), flaky: failing(0.30, since=5.0)}
    run = simulate(behaviour, bk.PassiveHealth(), seed=seed, watch=(dead, flaky))
    assert run.both_ejected  # with a share of 0.1 of 4, one ejection blocked the other
    assert run.ejections(flaky)
    assert run.share < 0.02  # bare: 32.5 %
    # Two of four ejected leaves half healthy: not below the 0.5 panic threshold.
    assert not any(isinstance(e, PanicEngaged) for e in run.events)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_restarted_server_that_passes_its_checks_returns_before_its_ejection_ends(
    seed: int,
) -> None:
    server = POOL[1]
    run = simulate(
        {server: killed(since=0.0, until=10.0)},
        bk.PassiveHealth(),
        seed=seed,
        seconds=40.0,
        checks=True,
    )
    ejection = run.ejections(server)[0]
    assert ejection.until == ejection.at + 30.0
    returned = [e for e in run.events if isinstance(e, Returned) and e.address == server]
    assert returned and returned[0].at < ejection.until  # the checks saw it down, then up
    back = [t for t in run.picks[server] if ejection.at < t < ejection.until]
    assert back, "the restarted server got no traffic until its ejection ended"
    assert min(back) < 15.0  # restarted at 10 s; checks every ~2 s, rise 2


def test_a_check_that_never_failed_does_not_end_an_ejection() -> None:
    """A server failing requests while its health endpoint passes stays out (unlike Envoy)."""
    server = POOL[1]
    run = simulate({server: failing(0.9)}, bk.PassiveHealth(), seed=1, seconds=40.0, checks=True)
    ejection = run.ejections(server)[0]
    returned = [e for e in run.events if isinstance(e, Returned) and e.address == server]
    assert not returned or returned[0].at >= ejection.until


def test_check_ends_ejection_false_keeps_the_ejection() -> None:
    server = POOL[1]
    passive = bk.PassiveHealth(check_ends_ejection=False)
    run = simulate({server: killed(0.0, 10.0)}, passive, seed=1, seconds=40.0, checks=True)
    ejection = run.ejections(server)[0]
    assert not [t for t in run.picks[server] if ejection.at < t < ejection.until]


def test_the_always_eject_one_minimum() -> None:
    """One endpoint can always be ejected, whatever the share (unless it is 0)."""
    for members in range(1, 12):
        for share in (0.01, 0.1, 0.25, 0.5, 1.0):
            limit = bk.PassiveHealth(max_ejection_share=share).ejection_limit(members)
            assert limit == max(1, int(share * members + 1e-9))
        assert bk.PassiveHealth(max_ejection_share=0.0).ejection_limit(members) == 0
    assert bk.PassiveHealth().ejection_limit(4) == 2


def test_the_defaults_are_what_the_docs_say() -> None:
    passive = bk.PassiveHealth()
    assert (passive.consecutive_failures, passive.failure_rate) == (5, 0.25)
    assert (passive.window, passive.minimum_requests) == (100, 50)
    assert (passive.max_ejection_share, passive.panic_threshold) == (0.5, 0.5)
    assert passive.check_ends_ejection is True
    assert bk.PassiveHealth(window=20).minimum_requests == 20  # the whole window, when smaller
    with pytest.raises(bk.InvalidOption, match="check_ends_ejection"):
        bk.PassiveHealth(check_ends_ejection=1)  # type: ignore[arg-type]
