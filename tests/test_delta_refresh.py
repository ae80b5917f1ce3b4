"""Delta refresh (issue 11): a change costs what changed, never a pass over the pool.

No timings here (docs/benchmarks.md has them): these check the *work* a change does. On main
every change recomputed the eligible list (``_eligible``), the health tracker's view of it
(``HealthTracker.eligible``) and rebuilt the strategy's whole index (``_rebuild``); here none of
the three runs for an add, remove, set_weight, update, mark_down/up, an ejection or its end, and
a strategy that only defines ``_rebuild`` (a third party's) still gets every change.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

import balancekit as bk
from balancekit._core import BalancerBase
from balancekit._state import EndpointState
from balancekit.health import health_of
from balancekit.health.tracker import HealthTracker
from balancekit.strategies import round_robin

POOL = [f"10.12.{i // 250}.{i % 250}:80" for i in range(300)]

STRATEGIES: dict[str, Any] = {
    "RoundRobin": bk.RoundRobin,
    "WeightedRoundRobin": bk.WeightedRoundRobin,
    "Random": lambda eps, **kw: bk.Random(eps, seed=1, **kw),
    "WeightedRandom": lambda eps, **kw: bk.WeightedRandom(eps, seed=1, **kw),
    "PowerOfTwoChoices": lambda eps, **kw: bk.PowerOfTwoChoices(eps, seed=1, **kw),
    "PeakEWMA": lambda eps, **kw: bk.PeakEWMA(eps, seed=1, **kw),
    "LeastConnections": bk.LeastConnections,
    "LeastResponseTime": bk.LeastResponseTime,
    "LoadReportWeightedRoundRobin": bk.LoadReportWeightedRoundRobin,
    "JumpHash": bk.JumpHash,
    "Rendezvous": bk.Rendezvous,
    "IPHash": bk.IPHash,
    "Ketama": bk.Ketama,
    "BoundedLoadHash": bk.BoundedLoadHash,
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def forbid_full_passes(lb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every O(n) recomputation main did on a change raise."""

    def refuse(*args: object) -> None:
        raise AssertionError("a full pass over the pool on a change")

    monkeypatch.setattr(lb, "_rebuild", refuse)
    monkeypatch.setattr(lb, "_eligible", refuse)
    monkeypatch.setattr(HealthTracker, "eligible", refuse)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_membership_changes_touch_only_what_changed(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "WeightedRoundRobin":  # past a small pool's budget: NGINX's loop, online
        monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 0)
    lb = STRATEGIES[name](POOL)
    forbid_full_passes(lb, monkeypatch)
    lb.add("10.12.9.1:80")
    lb.remove(POOL[7])
    if name != "Ketama":  # libketama's counts are shares of the total: a weight moves them all
        lb.set_weight(POOL[3], 2)
        lb.set_weight(POOL[3], 1)
    lb.mark_down(POOL[4])
    lb.mark_up(POOL[4])
    lb.update([*POOL[1:], "10.12.9.2:80"])  # one gone, one new, the rest unchanged
    assert POOL[0] not in lb and "10.12.9.2:80" in lb
    lb.release(lb.select("some-key"))
    monkeypatch.undo()
    lb._check_invariants()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_an_ejection_and_its_end_touch_only_that_endpoint(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "WeightedRoundRobin":
        monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 0)
    clock = Clock()
    lb = bk.with_health(
        STRATEGIES[name](POOL, clock=clock),
        bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.5, base_ejection=10.0),
    )
    tracker = health_of(lb)
    assert tracker is not None
    forbid_full_passes(lb, monkeypatch)
    for address in POOL[:20]:
        assert tracker.connect_failed(address)
    assert tracker.ejected() == POOL[:20]
    clock.now = 11.0  # every ejection ends at the next select
    lb.release(lb.select("some-key"))
    assert tracker.ejected() == []
    monkeypatch.undo()
    lb._check_invariants()


def test_panic_flips_without_recounting(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = POOL[:10]
    lb = bk.with_health(
        bk.RoundRobin(pool),
        bk.PassiveHealth(consecutive_failures=1, max_ejection_share=1.0, panic_threshold=0.5),
    )
    tracker = health_of(lb)
    assert tracker is not None
    forbid_full_passes(lb, monkeypatch)
    for address in pool[:6]:  # 4 healthy of 10: below half, panic: all ten in rotation
        tracker.connect_failed(address)
    assert tracker.panic
    assert {lb.select().address for _ in range(10)} == set(pool)
    lb.mark_down(pool[6])  # 3 healthy of 9 up: still panic
    lb.remove(pool[0])  # 3 of 8: panic
    lb.set_weight(pool[1], 3)
    assert tracker.panic
    monkeypatch.undo()
    lb._check_invariants()
    tracker._check_invariants()


class FirstEligible(BalancerBase):
    """A third party's strategy: only ``_rebuild`` and ``_pick``."""

    def __init__(self, endpoints: list[str]) -> None:
        super().__init__(endpoints)
        self.rebuilds: list[list[str]] = []
        self._first: EndpointState | None = None
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        self.rebuilds.append([state.endpoint.address for state in eligible])
        self._first = eligible[0] if eligible else None

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        if self._first is None:
            raise self._nothing_available()
        return self._first


def test_a_strategy_with_only_rebuild_gets_every_change_in_join_order() -> None:
    lb = FirstEligible(["a:1", "b:1", "c:1"])
    lb.mark_down("a:1")
    lb.add("d:1")
    lb.mark_up("a:1")
    lb.remove("b:1")
    lb.add("b:1")  # re-added: joins at the end
    assert lb.rebuilds == [
        ["a:1", "b:1", "c:1"],
        ["b:1", "c:1"],
        ["b:1", "c:1", "d:1"],
        ["a:1", "b:1", "c:1", "d:1"],
        ["a:1", "c:1", "d:1"],
        ["a:1", "c:1", "d:1", "b:1"],
    ]
    assert lb.select().address == "a:1"
    lb._check_invariants()


@pytest.mark.parametrize("name", ["WeightedRoundRobin", "WeightedRandom", "LeastConnections"])
def test_picks_race_delta_changes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selects and releases from four threads while a fifth adds, removes, re-weights and marks
    endpoints: every lease is on an endpoint that was a member, every release is accepted, and
    the delta-kept structures end equal to a from-scratch computation (bounded: 300 changes)."""
    import threading

    monkeypatch.setattr(round_robin, "SMALL_POOL", 0)  # WRR: NGINX's loop online
    monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 0)
    lb = STRATEGIES[name](POOL[:100])
    errors: list[BaseException] = []
    stop = threading.Event()

    def picker() -> None:
        try:
            while not stop.is_set():
                lease = lb.select()
                assert lease.address in POOL or lease.address.startswith("10.12.9.")
                lb.release(lease)
        except bk.NoEndpointAvailable:
            pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=picker) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(300):
            extra = f"10.12.9.{i % 50}:80"
            if extra in lb:
                lb.remove(extra)
            else:
                lb.add(bk.Endpoint(extra, weight=1 + i % 3))
            lb.set_weight(POOL[i % 100], 1 + i % 4)
            (lb.mark_down if i % 2 else lb.mark_up)(POOL[(i * 7) % 100])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    lb._check_invariants()
    assert all(stats.in_flight == 0 for stats in lb.stats().values())
