"""review8: a change's held clock reading leaks to the other threads (branch clock8).

``holding`` makes every reading of a balancer's clock return the one taken as a membership
change began, in every thread, for as long as the change runs. A change runs user code:
the health tracker's ``on_event`` is called inside it (``_eject``, ``_return``, ``set_check``).
While a slow handler runs (a log handler writing to a socket), every other thread's select and
release read a clock that stands still, and latency-aware strategies learn wrong samples. The
other threads' readings can also go back: one that missed the hold by a hair reads a later
time than the hold's first reading, then the held one. On main (no hold) both tests pass.
A fix that keeps the hold's guarantee: the hold applies to the thread that holds (the one
under the balancer's lock, making the change); other threads read the clock itself.
"""

from __future__ import annotations

import threading
import time

import pytest

import balancekit as bk

STRATEGIES = ["PeakEWMA", "LeastResponseTime"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_release_during_a_slow_event_handler_reads_the_clock(name: str) -> None:
    """t=0 a request on a:1 starts; t=5 another thread's connect_failed(b:1) begins and its
    Ejected handler blocks; t=15 the request ends and is released. clock8: the release reads
    the held 5.0 and a:1's first sample is 5 s; main: 15 s."""
    now = [0.0]
    entered, go = threading.Event(), threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, bk.health.events.Ejected):
            entered.set()
            go.wait(10)

    lb = bk.with_health(
        getattr(bk, name)(["a:1", "b:1", "c:1"], clock=lambda: now[0]), on_event=on_event
    )
    lease = lb.select_override("a:1")
    assert lease is not None
    now[0] = 5.0
    change = threading.Thread(target=lb._health.connect_failed, args=("b:1",))
    change.start()
    try:
        assert entered.wait(10)
        now[0] = 15.0
        release = threading.Thread(target=lb.release, args=(lease,))
        release.start()
        time.sleep(0.2)  # it reads the clock first, then may wait for the balancer's lock
    finally:
        go.set()
        change.join(10)
    release.join(10)
    assert lb.stats()["a:1"].latency == 15.0


def test_one_threads_readings_do_not_go_back() -> None:
    """The hold's first reading is taken, then stored: a reading of another thread in
    between sees no hold and reads later. That thread's next reading during the change is
    the held one: earlier than its last."""
    now = [5.0]
    a_read, b_read, entered, go = (threading.Event() for _ in range(4))
    holder: list[threading.Thread] = []

    def clock() -> float:
        reading = now[0]
        if holder and threading.current_thread() is holder[0] and not a_read.is_set():
            a_read.set()  # the hold's first reading, not yet stored: the other thread reads
            b_read.wait(10)
        return reading

    def on_event(event: object) -> None:
        entered.set()
        go.wait(10)

    lb = bk.with_health(bk.Random(["a:1", "b:1", "c:1"], clock=clock), on_event=on_event)
    change = threading.Thread(target=lb._health.connect_failed, args=("b:1",))
    holder.append(change)
    change.start()
    try:
        assert a_read.wait(10)
        now[0] = 10.0
        first = lb.select()  # Random: lock-free in both builds (the change holds the lock)
        b_read.set()
        assert entered.wait(10)
        second = lb.select()
    finally:
        go.set()
        change.join(10)
    assert second.started >= first.started, (first.started, second.started)
