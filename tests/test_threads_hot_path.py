"""The schedule and random strategies' inlined select and flag-driven release (issue 15), under
threads: every count exact, leases refused once released, and WeightedRoundRobin's cycle lookup
(smooth.Lap) racing changes that end it."""

from __future__ import annotations

import threading

import pytest

import balancekit as bk
from balancekit.strategies import round_robin

STRATEGIES = ["RoundRobin", "WeightedRoundRobin", "Random", "WeightedRandom"]


def _endpoints(n: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.3.{i // 256}.{i % 256}:80", weight=1 + i % 4) for i in range(n)]


@pytest.mark.parametrize("online", [False, True], ids=["default", "online"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_counts_exact_under_threads_with_churn(
    name: str, online: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if online:  # WRR steps NGINX's loop online, so its cycle lookup is reached and ended
        monkeypatch.setattr(round_robin, "SMALL_POOL", 0)
        monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 0)
    endpoints = _endpoints(24)
    lb = getattr(bk, name)(endpoints)
    threads, rounds = 6, 1200
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    outcomes = [[0, 0, 0] for _ in range(threads)]  # ok, failed, cancelled

    def worker(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(rounds):
                lease = lb.select()
                if i % 7 == 3:
                    lb.cancel(lease)
                    outcomes[n][2] += 1
                else:
                    ok = i % 5 != 0
                    lb.release(lease, ok=ok, elapsed=0.001)
                    outcomes[n][0 if ok else 1] += 1
                if n == 0 and i % 50 == 25:  # changes race the lock-free picks
                    victim = endpoints[(i // 50) % 6].address
                    lb.mark_down(victim)
                    lb.mark_up(victim)
                    lb.set_weight(victim, 1 + (i // 50) % 3)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    start.wait(timeout=30)
    for thread in pool:
        thread.join(timeout=300)
    assert not errors and not any(thread.is_alive() for thread in pool)
    stats = lb.stats().values()
    assert all(s.in_flight == 0 for s in stats)
    assert sum(s.selected for s in stats) == threads * rounds
    assert sum(s.succeeded for s in stats) == sum(o[0] for o in outcomes)
    assert sum(s.failed for s in stats) == sum(o[1] for o in outcomes)
    assert sum(s.cancelled for s in stats) == sum(o[2] for o in outcomes)
    lb._check_invariants()


@pytest.mark.parametrize("name", STRATEGIES)
def test_release_twice_or_foreign_changes_nothing(name: str) -> None:
    lb = getattr(bk, name)(_endpoints(5))
    other = getattr(bk, name)(_endpoints(5))
    lease = lb.select()
    lb.release(lease, ok=True, elapsed=0.001)
    before = lb.stats()
    for bad in (lease, other.select(), None, "x", (1, 2), {1: 2}):
        with pytest.raises(bk.InvalidLease):
            lb.release(bad)  # type: ignore[arg-type]
        with pytest.raises(bk.InvalidLease):
            lb.cancel(bad)  # type: ignore[arg-type]
    assert lb.stats() == before
    held = lb.select()
    with pytest.raises(bk.InvalidOption):  # refused before the lease is looked at
        lb.release(held, elapsed=float("nan"))
    assert sum(s.in_flight for s in lb.stats().values()) == 1  # still out, releasable
    lb.release(held, elapsed=0.001)
    assert sum(s.in_flight for s in lb.stats().values()) == 0


@pytest.mark.parametrize("name", STRATEGIES)
def test_health_attached_after_construction_sees_releases(name: str) -> None:
    """release's one flag (_hooks) follows with_health, which attaches after construction."""
    lb = bk.with_health(getattr(bk, name)(_endpoints(3)))
    for _ in range(40):
        lb.release(lb.select(), ok=False, elapsed=0.001)
    assert any(s.ejected for s in lb.stats().values())


@pytest.mark.parametrize("name", STRATEGIES)
def test_lease_on_removed_endpoint_stays_valid(name: str) -> None:
    lb = getattr(bk, name)(_endpoints(3))
    lease = lb.select()
    lb.remove(lease.address)
    lb.release(lease, ok=False, elapsed=0.001)
    with pytest.raises(bk.InvalidLease):
        lb.release(lease)
    assert lease.address not in lb.stats()
