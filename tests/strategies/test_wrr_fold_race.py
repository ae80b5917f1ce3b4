"""Picks racing the end of a transient take each position once (pure Python's fast-path
positions; both builds).

Found by review5 on integ5 afd2746: WeightedRoundRobin's pure-Python picks take their
positions from the fast path's iterator (``_fast``) once a schedule is installed, and from
the count before. At the end of a transient, picks that had already gone to the general path
(no schedule yet) installed ``origin.rotated`` again, folding, and took their position from
the count while the fast path took the same one from the iterator: one position twice, and
from then on the picks one step off NGINX's loop (main: one atomic count, exact). Now a
general-path position is taken under the lock (``_ScheduleBalancer._turn``), where every
install and fold happens, and from the iterator once one is installed. The threads are
ordered by a clock that blocks the thread calling it; each interleaving must give every
position once, so the ordering is best effort and the assertion holds for any.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import balancekit as bk
from balancekit.strategies import round_robin
from tests.stateful.test_smooth_wrr_changes import NginxModel, Peer

WEIGHTS = [9, 2, 3, 5, 2]
NAMES = [f"10.5.0.{i}:80" for i in range(len(WEIGHTS))]


class GatedClock:
    """Blocks the one call made from a thread registered with ``gate`` until it is opened."""

    def __init__(self) -> None:
        self.gates: dict[int, tuple[threading.Event, threading.Event]] = {}

    def gate(self, ident: int) -> tuple[threading.Event, threading.Event]:
        self.gates[ident] = (threading.Event(), threading.Event())
        return self.gates[ident]

    def __call__(self) -> float:
        gate = self.gates.pop(threading.get_ident(), None)
        if gate is not None:
            arrived, go = gate
            arrived.set()
            assert go.wait(timeout=10)
        return 0.0


def _in_thread(clock: GatedClock, lb: bk.WeightedRoundRobin, picked: list[str]):
    started = threading.Event()
    holder: dict[str, tuple[threading.Event, threading.Event]] = {}

    def run() -> None:
        holder["gate"] = clock.gate(threading.get_ident())
        started.set()
        lease = lb.select()
        picked.append(lease.address)
        lb.release(lease)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(timeout=10)
    arrived, go = holder["gate"]
    assert arrived.wait(timeout=10)  # blocked inside select, in the clock
    return thread, go


def test_picks_racing_the_end_of_a_transient_take_each_position_once() -> None:
    clock = GatedClock()
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint(n, weight=w) for n, w in zip(NAMES, WEIGHTS, strict=True)], clock=clock
    )
    model = NginxModel()
    model.peers = [Peer(n, w) for n, w in zip(NAMES, WEIGHTS, strict=True)]
    picked: list[str] = []
    for _ in range(11):
        picked.append(lb.select().address)
    assert picked == [model.get_peer() for _ in range(11)]
    lb.mark_down(NAMES[1])  # NGINX keeps the current weights: a transient, then the cycle
    model.peers[1].down = True
    origin = lb._origin
    assert origin is not None and origin.transient and lb._schedule == ()
    for _ in origin.transient:  # the transient, picked one by one
        picked.append(lb.select().address)
    # B goes to the general path (no schedule yet) and stops in the clock
    b, b_go = _in_thread(clock, lb, picked)
    lb._lock.acquire()
    try:
        b_go.set()  # B goes on to take its position: under the lock, held here
        time.sleep(0.05)  # ordering only (any interleaving must pass)
        picked.append(lb.select().address)  # (the lock is reentrant) this pick installs it
        assert lb._schedule is origin.rotated
        # C takes the lock-free path (the schedule is there) and stops in the clock
        c, c_go = _in_thread(clock, lb, picked)
    finally:
        lb._lock.release()  # B takes its position now
    b.join(timeout=10)
    c_go.set()
    c.join(timeout=10)
    assert not b.is_alive() and not c.is_alive()
    for _ in range(40):
        picked.append(lb.select().address)
    expected = [model.get_peer() for _ in range(len(picked) - 11)]
    # every position taken once: the picks after the race go on as NGINX's loop
    assert sorted(picked[11:]) == sorted(expected)
    assert picked[-40:] == expected[-40:]


def test_a_general_path_pick_during_the_install_takes_a_position_of_its_own(
    monkeypatch: Any,
) -> None:
    """The install reads the count, then publishes the positions; a general-path pick that
    took its position from the count in between took the fast path's first one too (the
    straggler review5's probe found at a 1 us switch interval). Here B is let go inside the
    install's read of the count and given 0.2 s to take its position there: under the lock
    it cannot, so it takes one after the install, from the positions."""
    clock = GatedClock()
    lb = bk.WeightedRoundRobin(
        [bk.Endpoint(n, weight=w) for n, w in zip(NAMES, WEIGHTS, strict=True)], clock=clock
    )
    model = NginxModel()
    model.peers = [Peer(n, w) for n, w in zip(NAMES, WEIGHTS, strict=True)]
    picked = [lb.select().address for _ in range(11)]
    assert picked == [model.get_peer() for _ in range(11)]
    lb.mark_down(NAMES[1])
    model.peers[1].down = True
    origin = lb._origin
    assert origin is not None and origin.transient
    for _ in origin.transient:
        picked.append(lb.select().address)
    b, b_go = _in_thread(clock, lb, picked)  # B: the general path, stopped in the clock
    real = round_robin.count_value
    armed = [True]

    def count_value(counter: Any) -> int:
        value = real(counter)
        if armed and threading.current_thread() is threading.main_thread():
            armed.clear()
            b_go.set()  # B may take its position now, while the install reads the count
            deadline = time.monotonic() + 0.2
            while real(lb._counter) == value and time.monotonic() < deadline:
                time.sleep(0.001)  # ordering only (any interleaving must pass)
        return value

    monkeypatch.setattr(round_robin, "count_value", count_value)
    picked.append(lb.select().address)  # this pick installs the cycle's schedule
    b_go.set()  # (compiled, the install calls _state's count_value itself, not the patch)
    b.join(timeout=10)
    assert not b.is_alive()
    monkeypatch.setattr(round_robin, "count_value", real)
    for _ in range(40):
        picked.append(lb.select().address)
    expected = [model.get_peer() for _ in range(len(picked) - 11)]
    assert sorted(picked[11:]) == sorted(expected)
    assert picked[-40:] == expected[-40:]
