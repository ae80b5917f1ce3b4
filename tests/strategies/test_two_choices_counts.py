"""PowerOfTwoChoices' and PeakEWMA's fast paths count in the ``n_*`` ints under the balancer's
lock in both builds (issue 15; ``balancekit._state``'s rule for a pure hot path that holds the
lock), while the general path (``avoid``, ``cancel``) counts pure Python in the
``itertools.count`` parts. Under many threads and membership churn, every count stays exact:
at each pause the in-flight count of every endpoint is the leases held on it
(``selected == released + in_flight`` with ``in_flight`` known), readers racing the counting
never see a negative value, and the totals equal the calls.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from typing import Any

import pytest

import balancekit as bk

STRATEGIES: dict[str, Any] = {
    "PowerOfTwoChoices": lambda eps: bk.PowerOfTwoChoices(eps, seed=5),
    "PeakEWMA": lambda eps: bk.PeakEWMA(eps, seed=5),
}
THREADS = 6
PHASES = 6
ROUNDS = 250  # per thread and phase
AVOID = frozenset({"nobody:0"})  # avoids nothing, but takes the general path


def _endpoints(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.7.0.{i}:80", weight=1 + i % 3) for i in range(n)]


def _totals(lb: Any) -> list[int]:
    """(selected, released, failed, cancelled) over the members, the endpoints removed with
    leases out, and those removed for good (their final counts, ``Tally.absorb``)."""
    tally = lb._tally
    totals = [tally.gone_selected, tally.gone_released, tally.gone_failed, tally.gone_cancelled]
    for state in [*lb._members.values(), *lb._retired.values()]:
        for i, count in enumerate(state.counts()):
            totals[i] += count
    return totals


@pytest.fixture
def switch_often() -> Any:
    """Threads switch every 10 us (CPython's default is 5 ms: a phase could run in one slice)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_counts_exact_under_threads_and_churn(name: str) -> None:
    endpoints = _endpoints(12)
    lb = STRATEGIES[name](endpoints)
    pause = threading.Barrier(THREADS + 2)  # the workers, the churner, the main thread
    resume = threading.Barrier(THREADS + 2)
    stop = threading.Event()
    errors: list[BaseException] = []
    held: list[list[bk.Lease]] = [[] for _ in range(THREADS)]
    calls = [[0, 0, 0, 0] for _ in range(THREADS)]  # selected, released, failed, cancelled

    def worker(n: int) -> None:
        rng = random.Random(n)
        mine, counted = held[n], calls[n]
        try:
            for _ in range(PHASES):
                for _ in range(ROUNDS):
                    lease = lb.select(None, AVOID) if rng.random() < 0.1 else lb.select()
                    counted[0] += 1
                    mine.append(lease)
                    while len(mine) > rng.randrange(4):  # some leases stay out across pauses
                        out = mine.pop(rng.randrange(len(mine)))
                        roll = rng.random()
                        if roll < 0.1:
                            lb.cancel(out)
                            counted[3] += 1
                        else:
                            ok, elapsed = roll > 0.3, rng.random() / 50
                            lb.release(out, ok=ok, elapsed=None if roll > 0.9 else elapsed)
                            counted[2] += not ok
                        counted[1] += 1
                pause.wait(timeout=60)
                resume.wait(timeout=60)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            pause.abort()
            resume.abort()

    def churner() -> None:
        rng = random.Random(99)
        try:
            for _ in range(PHASES):
                for step in range(60):
                    victim = rng.choice(endpoints)
                    if step % 4 == 0:  # leases on a removed endpoint stay valid
                        if victim.address in lb:
                            lb.remove(victim.address)
                        else:
                            lb.add(victim)
                    elif step % 4 == 1 and victim.address in lb:
                        lb.set_weight(victim.address, rng.randint(1, 4))
                    elif victim.address in lb:
                        lb.mark_down(victim.address)
                        lb.mark_up(victim.address)
                pause.wait(timeout=60)
                resume.wait(timeout=60)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            pause.abort()
            resume.abort()

    def reader() -> None:  # stats racing the counting: never a negative derived value
        try:
            while not stop.is_set():
                for s in lb.stats().values():
                    assert s.in_flight >= 0 and s.succeeded >= 0, s
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads += [threading.Thread(target=churner), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(PHASES):
            pause.wait(timeout=120)  # everyone parked: the counts are still
            out = Counter(lease.address for mine in held for lease in mine)
            states = {**lb._retired, **lb._members}
            assert {a: s.in_flight() for a, s in states.items() if s.in_flight()} == out
            assert all(s.load == s.in_flight() for s in states.values())
            assert _totals(lb) == [sum(c[i] for c in calls) for i in range(4)]
            lb._check_invariants()
            resume.wait(timeout=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors[0]
    assert not any(thread.is_alive() for thread in threads)
    for mine in held:
        for lease in mine:
            lb.release(lease)
    selected, released, failed, cancelled = _totals(lb)
    assert selected == released == THREADS * PHASES * ROUNDS == sum(c[0] for c in calls)
    assert [failed, cancelled] == [sum(c[2] for c in calls), sum(c[3] for c in calls)]
    assert all(s.in_flight == 0 for s in lb.stats().values()) and not lb._retired
    lb._check_invariants()
