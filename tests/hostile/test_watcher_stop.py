"""A Watcher stopped while its source blocks (issue 10: the breaker's pass).

``stop(timeout)`` waits at most ``timeout`` for the refresh thread; a source blocked in
``resolve`` (a long poll, a hung DNS server) outlives it. Its answer, when it came, was still
applied: the balancer's membership changed after ``stop()`` had returned, under a caller that
had taken over membership or started another watcher; and a watcher started again meanwhile
ran two refresh threads, the old one reading the new stop event.
"""

from __future__ import annotations

import threading
from typing import Any

import balancekit as bk
from balancekit.discovery import Snapshot, Watcher

FIRST = (bk.Endpoint("10.0.0.1:80"),)
LATE = (bk.Endpoint("10.0.0.9:80"),)


class Blocking:
    """Answers FIRST at once, then blocks until ``release`` is set and answers LATE."""

    def __init__(self) -> None:
        self.calls = 0
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()

    def resolve(self) -> Snapshot:
        self.calls += 1
        if self.calls == 1:
            return Snapshot(FIRST, ttl=0.0)
        self.blocked.set()
        self.release.wait(10)
        self.answered.set()
        return Snapshot(LATE, ttl=0.0)


def test_an_answer_arriving_after_stop_is_not_applied() -> None:
    lb = bk.RoundRobin()
    source = Blocking()
    watcher = Watcher(lb, source, min_interval=0.01)
    watcher.start()
    assert source.blocked.wait(5)
    thread = watcher._thread
    assert thread is not None
    watcher.stop(timeout=0.05)  # the thread is blocked in resolve: stop gives up waiting
    lb.update([bk.Endpoint("10.0.0.5:80")])  # the caller takes over membership
    source.release.set()
    assert source.answered.wait(5)
    thread.join(5)
    assert not thread.is_alive()
    assert [e.address for e in lb.endpoints] == ["10.0.0.5:80"]


def test_a_watcher_started_again_while_its_old_thread_blocks_runs_one_thread() -> None:
    lb = bk.RoundRobin()
    source = Blocking()
    watcher = Watcher(lb, source, min_interval=0.01)
    watcher.start()
    assert source.blocked.wait(5)
    old = watcher._thread
    assert old is not None
    watcher.stop(timeout=0.05)
    source.calls = 0  # the restart's first answer comes at once again
    watcher.start()
    source.release.set()
    old.join(5)
    assert not old.is_alive()  # it saw its own stop event, not the new one
    watcher.stop(timeout=5)


def test_stop_called_from_inside_an_update_does_not_hang_the_thread() -> None:
    """A hook that runs inside ``update`` (e.g. a health event callback) may call ``stop``;
    the refresh thread holds the apply lock there, so the lock must be re-entrant."""
    stopping: list[Watcher] = []

    class StopsInUpdate(bk.RoundRobin):
        def update(self, endpoints: Any) -> None:
            super().update(endpoints)
            if stopping:
                stopping[0].stop(timeout=0)

    class Twice:
        def resolve(self) -> Snapshot:
            return Snapshot(FIRST, ttl=0.0)

    lb = StopsInUpdate()
    watcher = Watcher(lb, Twice(), min_interval=0.01)
    watcher.start()
    thread = watcher._thread
    assert thread is not None
    stopping.append(watcher)  # the next refresh, in the thread, stops the watcher
    thread.join(5)
    assert not thread.is_alive()
