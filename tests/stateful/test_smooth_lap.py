"""WeightedRoundRobin's online mode once a whole cycle is known (issue 15, smooth.Lap).

Large pools step NGINX's loop online (SmoothOnline). After a whole cycle since the last change
the picks are a lock-free lookup in that cycle and the SmoothOnline waits at the cycle's start;
a change first rotates it to the position reached (SmoothOnline.skip). The picks must stay
exactly NGINX's through lookups, changes made mid-cycle, and changes made while stepping.
"""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

import balancekit as bk
from balancekit.strategies import round_robin

from .test_smooth_wrr_changes import NginxModel, Peer, SmoothChurn


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pool steps NGINX's loop online (as pools past SMALL_POOL / PRECOMPUTE_BUDGET do)."""
    monkeypatch.setattr(round_robin, "SMALL_POOL", 0)
    monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 0)


class LapChurn(SmoothChurn):
    """SmoothChurn with runs long enough to complete cycles (7 peers of weight <= 6: L <= 42)."""

    @rule(n=st.integers(30, 130))
    def select_laps(self, n: int) -> None:
        self.select(n)


def test_lap_churn_matches_nginx(online: None) -> None:
    run_state_machine_as_test(
        LapChurn, settings=settings(max_examples=120, stateful_step_count=30, deadline=None)
    )


def _picks(lb: bk.WeightedRoundRobin, model: NginxModel, n: int) -> None:
    for _ in range(n):
        lease = lb.select()
        assert lease.address == model.get_peer()
        lb.release(lease)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changes_mid_cycle_match_nginx(online: None, seed: int) -> None:
    """200 endpoints of weights 1..3 (L = 400): long runs reach the lookup, and each change is
    made at a random point of the cycle; every pick equals NGINX's loop."""
    rng = random.Random(seed)
    model, lb = NginxModel(), bk.WeightedRoundRobin()
    endpoints = [bk.Endpoint(f"10.0.{i // 256}.{i % 256}:80", weight=1 + i % 3) for i in range(200)]
    lb.update(endpoints)
    model.peers = [Peer(e.address, e.weight) for e in endpoints]
    looked_up = 0
    for step in range(24):
        _picks(lb, model, rng.choice([3, 90, 500, 1300]))
        looked_up += lb._lap is not None
        peer = rng.choice(model.peers)
        action = rng.randrange(4)
        if action == 0:
            lb.remove(peer.address)
            model.peers.remove(peer)
        elif action == 1:
            address = f"10.9.0.{step}:80"
            lb.add(bk.Endpoint(address, weight=rng.randint(1, 3)))
            model.peers.append(Peer(address, lb.stats()[address].weight))
        elif action == 2:
            weight = rng.randint(1, 4)
            lb.set_weight(peer.address, weight)
            model.set_weight(peer, weight)
        else:
            (lb.mark_down if not peer.down else lb.mark_up)(peer.address)
            peer.down = not peer.down
        lb._check_invariants()
    assert looked_up >= 5  # the lookup was exercised, not only the heap steps


def test_picks_after_a_cycle_take_no_lock(online: None) -> None:
    """Regression (issue 15: WRR at N=10,000 was 3.2x slower than before issue 11): once a
    whole cycle is known, select neither steps the heaps nor waits for the balancer's lock."""
    endpoints = [bk.Endpoint(f"10.0.0.{i}:80", weight=1 + i % 5) for i in range(100)]
    lb = bk.WeightedRoundRobin(endpoints)
    length = sum(e.weight for e in endpoints)
    for _ in range(3 * length):
        lb.release(lb.select())
    picked: list[str] = []
    with lb._lock:  # held by this thread: a select in another one that needs it would wait
        worker = threading.Thread(target=lambda: picked.append(lb.select().address), daemon=True)
        worker.start()
        worker.join(timeout=30)
        done = not worker.is_alive()
    worker.join(timeout=30)
    assert done and len(picked) == 1
