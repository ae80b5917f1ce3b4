"""Scrapes during concurrent picks and membership churn: monotonic, and exact once it settles."""

from __future__ import annotations

import threading

import balancekit as bk
from balancekit.metrics import Source

STABLE = ["10.4.0.1:80", "10.4.0.2:80"]
CHURN = ["10.4.1.1:80", "10.4.1.2:80", "10.4.1.3:80"]
ROUNDS = 3000


def test_scrapes_during_picks_and_churn_never_go_down_and_end_exact() -> None:
    lb = bk.RoundRobin(STABLE + CHURN)
    source = Source(lb, target="threads")
    done = threading.Event()
    counts = [0, 0]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for i in range(ROUNDS):
                lease = lb.select()
                lb.release(lease, ok=i % 3 != 0)
                counts[index] += 1
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def churn() -> None:
        i = 0
        while not done.is_set() and i < 100_000:
            address = CHURN[i % len(CHURN)]
            if address in lb:
                lb.remove(address)
            else:
                lb.add(address)
            i += 1

    def picks() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(p.metric.name, p.labels[1:]): p.value for p in source.read()}

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    churner = threading.Thread(target=churn)
    for thread in (*workers, churner):
        thread.start()
    last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while any(thread.is_alive() for thread in workers):
        now = picks()
        for key in (
            ("balancekit.lb.picks", ()),
            ("balancekit.lb.requests", (("outcome", "succeeded"),)),
            ("balancekit.lb.requests", (("outcome", "failed"),)),
        ):
            assert now[key] >= last.get(key, 0), key
        last = now
    done.set()
    for thread in (*workers, churner):
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert not errors
    final = picks()
    total = sum(counts)
    assert final[("balancekit.lb.picks", ())] == total == 2 * ROUNDS
    assert final[("balancekit.lb.requests", (("outcome", "failed"),))] == 2 * (ROUNDS // 3)
    assert final[("balancekit.lb.in_flight", ())] == 0
    lb._check_invariants()
