"""The per-endpoint counters are tallies (``balancekit._state.tally``, issue 15 session 8).

A tally counts with one C-level ``next()`` that makes no int (an :func:`itertools.repeat`
counting down), where an :func:`itertools.count` made and freed one per event past 256.
:func:`count_value` reads both kinds, so every reader adds the parts as before.
"""

from __future__ import annotations

import itertools
import threading

import balancekit as bk
from balancekit._state import TALLY_START, count_value, tally


def test_a_tally_counts_what_next_was_called() -> None:
    counter = tally()
    assert count_value(counter) == 0
    for _ in range(1000):
        assert next(counter) is None or isinstance(counter, itertools.count)
    assert count_value(counter) == 1000


def test_count_value_reads_counts_as_before() -> None:
    counter = itertools.count()
    for _ in range(300):
        next(counter)
    assert count_value(counter) == 300
    assert count_value(itertools.repeat(None, TALLY_START - 7)) == 7


def test_tallies_count_exactly_from_many_threads() -> None:
    counter = tally()
    start = threading.Barrier(4)

    def count() -> None:
        start.wait()
        for _ in range(20_000):
            next(counter)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count_value(counter) == 80_000


def test_stats_read_the_tallies() -> None:
    lb = bk.RoundRobin(["a:1", "b:1"])
    leases = [lb.select() for _ in range(600)]
    for i, lease in enumerate(leases[:500]):
        if i % 5 == 0:
            lb.cancel(lease)
        else:
            lb.release(lease, ok=i % 5 != 1)
    stats = lb.stats()["a:1"]
    assert (stats.selected, stats.in_flight, stats.cancelled, stats.failed) == (300, 50, 50, 50)
    assert stats.succeeded == 150
