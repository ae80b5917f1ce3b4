"""gRFC A58's per-endpoint weights, kept incrementally (issue 11: a change in O(changed)).

:class:`~balancekit.strategies.load_report.LoadReportWeightedRoundRobin` rebuilds its stride
scheduler on every membership change and every ``weight_update_period``, from every eligible
endpoint's usable weight at that instant (gRPC C-core ``weighted_round_robin.cc``:
``EndpointWeight::GetWeight`` of each endpoint, then ``StaticStrideScheduler::Make``). Reading
every endpoint's report again on each change is O(n) Python work (~1.3 ms at n = 10,000); this
book keeps the result instead:

* ``raw``: each eligible endpoint's usable weight (0 without a report, in blackout or expired)
  as of the last :meth:`WeightBook.sync`, aligned with ``states`` (the eligible endpoints in
  join order, as the base's eligible list), so the scheduler's snapshot is one C-level copy;
* counts over it, kept as it changes: positive weights, gRFC A78's histogram buckets (see
  :mod:`._wrr_stats`) and expired reports;
* a heap of due times (a report's expiry at ``last_updated + weight_expiration_period``, a
  blackout's end at ``non_empty_since + blackout_period``) and the records reported since the
  last sync, so a sync re-reads only the records whose weight can have changed: O(k log n) for
  k of them. Each record has at most one live entry (``due``); entries of dropped records and
  superseded ones are skipped when they come due, and compacted when they outnumber records.

A due time is ``last + period``, while GetWeight tests ``now - last >= period``; the two can
disagree by a rounding, so a sync takes the entries due within a relative 1e-12 of ``now`` and
re-reads each record with GetWeight itself (:meth:`WeightBook.usable`), the one definition of a
usable weight. When most records changed (every endpoint reported since the last update), one
pass over all of them replaces the per-record updates (:meth:`WeightBook.rebuild`).

Not compiled by mypyc (setup.py's list), like the rings' ``hashing/_points.py``: it is off the
pick path, and its test counts the records a change reads by patching :meth:`WeightBook.usable`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from functools import partial
from heapq import heapify, heappop, heappush
from operator import attrgetter
from typing import Final

from .._state import EndpointState
from ._wrr_stats import WEIGHT_BUCKETS

__all__ = ["Record", "WeightBook"]

_seq: Final = attrgetter("seq")
_bucket: Final = partial(bisect_left, WEIGHT_BUCKETS)
#: A sync takes heap entries due up to ``now + SLACK * (|now| + periods + 1)`` (see the module).
SLACK: Final = 1e-12


class Record:
    """A58's per-endpoint weight record, and what the book last counted for it."""

    __slots__ = (
        "address",
        "current",
        "due",
        "expired",
        "last_updated",
        "non_empty_since",
        "weight",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        self.weight = 0.0
        self.last_updated = -math.inf
        self.non_empty_since: float | None = None  # None: A58's "infinity"
        self.current = 0.0  # its usable weight at the last sync (``raw``'s entry if eligible)
        self.expired = False  # whether its report had expired at the last sync
        self.due: float | None = None  # the due time of its live heap entry


class WeightBook:
    """The eligible endpoints' usable weights and their counts, kept by O(changed) updates."""

    __slots__ = (
        "blackout",
        "buckets",
        "dirty",
        "eligible",
        "expiration",
        "heap",
        "positive",
        "raw",
        "records",
        "stale",
        "states",
        "synced_at",
        "tickets",
    )

    def __init__(self, blackout: float, expiration: float) -> None:
        self.blackout = blackout
        self.expiration = expiration
        #: address -> record, for members that have reported (dropped when they leave).
        self.records: dict[str, Record] = {}
        #: Records reported since the last sync (a dict for a deterministic order).
        self.dirty: dict[Record, None] = {}
        self.states: list[EndpointState] = []
        self.raw: list[float] = []
        self.eligible: dict[str, EndpointState] = {}
        self.positive = 0
        self.stale = 0
        self.buckets = [0] * (len(WEIGHT_BUCKETS) + 1)
        self.heap: list[tuple[float, int, Record]] = []
        self.tickets = 0
        self.synced_at = -math.inf

    def usable(self, record: Record, now: float) -> float:
        """C-core's ``GetWeight`` at ``now``: the weight, or 0 when expired or in blackout (the
        blackout test only when the period is above 0, so with ``blackout_period=0`` an
        endpoint back up keeps its unexpired weight at once)."""
        if now - record.last_updated >= self.expiration:
            return 0.0
        if self.blackout > 0 and (
            record.non_empty_since is None or now - record.non_empty_since < self.blackout
        ):
            return 0.0
        return record.weight

    # -- membership: O(log n) each ---------------------------------------------------------------

    def enter(self, state: EndpointState) -> None:
        """``state`` became eligible: its weight is its record's as of the last sync."""
        address = state.endpoint.address
        record = self.records.get(address)
        weight = 0.0 if record is None else record.current
        index = bisect_left(self.states, state.seq, key=_seq)
        self.states.insert(index, state)
        self.raw.insert(index, weight)
        self.eligible[address] = state
        self.buckets[_bucket(weight)] += 1
        if weight > 0:
            self.positive += 1
        if record is not None and record.expired:
            self.stale += 1

    def leave(self, state: EndpointState) -> None:
        """``state`` stopped being eligible."""
        address = state.endpoint.address
        index = bisect_left(self.states, state.seq, key=_seq)
        assert self.states[index] is state
        weight = self.raw[index]
        del self.states[index], self.raw[index], self.eligible[address]
        self.buckets[_bucket(weight)] -= 1
        if weight > 0:
            self.positive -= 1
        record = self.records.get(address)
        if record is not None and record.expired:
            self.stale -= 1

    def drop(self, address: str) -> None:
        """A member left: forget its record (after :meth:`leave` if it was eligible)."""
        record = self.records.pop(address, None)
        if record is not None:
            self.dirty.pop(record, None)

    # -- the weights at a given time ---------------------------------------------------------------

    def sync(self, now: float) -> None:
        """Bring ``raw`` and the counts to ``now``: the records reported since the last sync and
        those with an expiry or a blackout end come due, O(k log n) for k of them."""
        if now < self.synced_at:  # the clock stepped back: an expiry may be undone, so
            self.rebuild(self.states, now)  # read every record again (time.monotonic never does)
            return
        work = self.dirty
        self.dirty = {}
        heap = self.heap
        limit = now + SLACK * (abs(now) + self.expiration + self.blackout + 1.0)
        while heap and heap[0][0] <= limit:
            due, _, record = heappop(heap)
            if record.due == due:
                record.due = None
                work[record] = None
        if len(work) * 3 > len(self.records) + 64:  # most of them: one pass over all
            self.rebuild(self.states, now)
            return
        for record in work:
            self._update(record, now)
        self.synced_at = now
        if len(heap) > 2 * len(self.records) + 64:  # superseded entries: drop them
            heap[:] = [entry for entry in heap if entry[2].due == entry[0]]
            heapify(heap)

    def _update(self, record: Record, now: float) -> None:
        """Re-read one record at ``now``, fix its counts, and queue its next due time."""
        if self.records.get(record.address) is not record:
            return  # dropped
        weight = self.usable(record, now)
        expired = now - record.last_updated >= self.expiration
        state = self.eligible.get(record.address)
        if state is not None:
            old = record.current
            if weight != old:
                self.raw[bisect_left(self.states, state.seq, key=_seq)] = weight
                buckets = self.buckets
                buckets[_bucket(old)] -= 1
                buckets[_bucket(weight)] += 1
                self.positive += (weight > 0) - (old > 0)
            if expired != record.expired:
                self.stale += 1 if expired else -1
        record.current = weight
        record.expired = expired
        due = self._next_due(record, weight, expired)
        if due is not None and (record.due is None or due < record.due):
            record.due = due
            self.tickets += 1
            heappush(self.heap, (due, self.tickets, record))

    def _next_due(self, record: Record, weight: float, expired: bool) -> float | None:
        """When the record's usable weight can next change without a report, if ever."""
        if expired:
            return None  # only a report brings it back
        due = record.last_updated + self.expiration
        since = record.non_empty_since
        if self.blackout > 0 and weight == 0.0 and since is not None:
            due = min(due, since + self.blackout)  # the end of its blackout
        return due

    def rebuild(self, eligible: Iterable[EndpointState], now: float) -> None:
        """Everything from scratch at ``now``: O(records + n), the first build, a health
        tracker attached, or a sync where most records changed."""
        states = self.states = list(eligible)
        get = self.records.get
        self.eligible = {state.endpoint.address: state for state in states}
        self.dirty = {}
        heap: list[tuple[float, int, Record]] = []
        expiration = self.expiration
        for record in self.records.values():
            weight = self.usable(record, now)
            expired = now - record.last_updated >= expiration
            record.current = weight
            record.expired = expired
            record.due = self._next_due(record, weight, expired)
            if record.due is not None:
                self.tickets += 1
                heap.append((record.due, self.tickets, record))
        heapify(heap)
        self.heap = heap
        records = [get(state.endpoint.address) for state in states]
        raw = self.raw = [0.0 if record is None else record.current for record in records]
        self.positive = len(raw) - raw.count(0.0)
        self.stale = sum(1 for record in records if record is not None and record.expired)
        buckets = self.buckets = [0] * (len(WEIGHT_BUCKETS) + 1)
        for index, count in Counter(map(_bucket, raw)).items():
            buckets[index] += count
        self.synced_at = now

    def check(self, eligible: list[EndpointState]) -> None:
        """Assert the kept values equal a from-scratch reading at the last sync (the records
        reported since excepted: their new weights count from the next sync)."""
        assert [id(s) for s in self.states] == [id(s) for s in eligible]
        assert self.eligible == {s.endpoint.address: s for s in eligible}
        records = [self.records.get(state.endpoint.address) for state in eligible]
        for record, weight in zip(records, self.raw, strict=True):
            assert weight == (0.0 if record is None else record.current)
            if record is not None and record not in self.dirty:
                assert weight == self.usable(record, self.synced_at)
        assert self.positive == sum(1 for weight in self.raw if weight > 0)
        assert self.stale == sum(1 for r in records if r is not None and r.expired)
        expected = [0] * (len(WEIGHT_BUCKETS) + 1)
        for weight in self.raw:
            expected[_bucket(weight)] += 1
        assert self.buckets == expected
        live = {id(entry[2]) for entry in self.heap if entry[2].due == entry[0]}
        for record in self.records.values():
            assert record.due is None or id(record) in live
