"""Review (review5, integ5 afd2746): pure Python, WeightedRoundRobin's picks are counted
through the fast path's positions (``_fast``) and folded into the count under the lock
whenever a schedule is installed. At the end of a transient every pick that had already gone
to the general path installs ``origin.rotated`` again (``_pick_online``), and that install
folds: a fast-path pick that read ``_fast`` before the fold takes its next index from the
replaced iterator, an index the folded count hands out again. No membership change races
here, yet one position is taken twice, and from then on the picks are one step off NGINX's
loop (main: one atomic count per pick, exact). The threads are ordered deterministically by
a clock that blocks the thread it is called from.
"""

from __future__ import annotations

import threading
import time

import balancekit as bk
from balancekit.strategies.round_robin import count_value
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
    # B goes to the general path (no schedule yet), takes its position and waits for the
    # lock (held here) to install the schedule
    lb._lock.acquire()
    before = count_value(lb._counter) + lb._turns  # the count of picks (both builds)
    b = threading.Thread(target=lambda: picked.append(lb.select().address))
    b.start()
    deadline = time.monotonic() + 10
    while (count_value(lb._counter) + lb._turns) == before and time.monotonic() < deadline:
        time.sleep(0.001)  # ordering only: B has counted its pick
    assert (count_value(lb._counter) + lb._turns) == before + 1
    picked.append(lb.select().address)  # (the lock is reentrant) the next pick installs it
    assert lb._schedule is origin.rotated
    # C takes the lock-free path (the schedule is there) and stops in the clock
    c, c_go = _in_thread(clock, lb, picked)
    lb._lock.release()  # B installs the schedule again: a fold, which no change asked for
    b.join(timeout=10)
    c_go.set()  # C's pick goes on from the positions it read before the fold
    c.join(timeout=10)
    for _ in range(40):
        picked.append(lb.select().address)
    expected = [model.get_peer() for _ in range(len(picked) - 11)]
    # every position taken once: the picks after the race go on as NGINX's loop
    assert sorted(picked[11:]) == sorted(expected)
    assert picked[-40:] == expected[-40:]
