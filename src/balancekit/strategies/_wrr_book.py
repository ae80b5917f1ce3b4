"""gRFC A58's per-endpoint weights, kept incrementally (issue 11: a change in O(changed)).

:class:`~balancekit.strategies.load_report.LoadReportWeightedRoundRobin` rebuilds its stride
scheduler on every membership change and every ``weight_update_period``, from every eligible
endpoint's usable weight at that instant (gRPC C-core ``weighted_round_robin.cc``:
``EndpointWeight::GetWeight`` of each endpoint, then ``StaticStrideScheduler::Make``). Reading
every endpoint's report again on each change is O(n) Python work (~1.3 ms at n = 10,000); this
book keeps the result instead:

* each record's ``current`` usable weight (0 in blackout or expired) as of the last
  :meth:`WeightBook.sync`, and ``slots``: the eligible endpoints' records aligned with
  ``states`` (the eligible endpoints in join order, as the base's eligible list; a shared
  empty record for those that never reported), so the scheduler's weights are one C-level
  ``map`` over ``slots``, their sum and max C-level passes;
* counts over the eligible ones, kept as they change: positive weights, gRFC A78's histogram
  buckets (see :mod:`._wrr_stats`) and expired reports;
* a heap of due times (a report's expiry at ``last_updated + weight_expiration_period``, a
  blackout's end at ``non_empty_since + blackout_period``) and the records whose blackout a
  report started or that had no usable weight (``dirty``), so a sync re-reads only the records
  whose weight can have changed: O(k log n) for k of them. A report on a record that was usable
  and stays so (no blackout restarted) sets its weight at once (``LoadReportWeightedRoundRobin.
  report``; :meth:`WeightBook.recount` if it changes A78 bucket): it stays usable until its
  expiry, which is queued. Each record has at most one live entry
  (``due``); entries of dropped records and superseded ones are skipped when they come due,
  and compacted when they outnumber records.

A due time is ``last + period``, while GetWeight tests ``now - last >= period``; the two can
disagree by a rounding, so a sync takes the entries due within a relative 1e-12 of ``now`` and
re-reads each record with GetWeight itself (:meth:`WeightBook.usable`), the one definition of a
usable weight. When most records are due, one pass over all of them replaces the per-record
updates. The clock is taken to be monotonic (``time.monotonic``); one that steps back makes the
next sync read every record again.

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
_current: Final = attrgetter("current")
_expired: Final = attrgetter("expired")
_bucket: Final = partial(bisect_left, WEIGHT_BUCKETS)
#: Bucket ``i`` holds the weights ``w`` with ``_BOUNDS[i][0] < w <= _BOUNDS[i][1]``.
_BOUNDS: Final = tuple(zip((-math.inf, *WEIGHT_BUCKETS), (*WEIGHT_BUCKETS, math.inf), strict=True))
#: A sync takes heap entries due up to ``now + SLACK * (|now| + periods + 1)`` (see the module).
SLACK: Final = 1e-12


class Record:
    """A58's per-endpoint weight record, and what the book last counted for it."""

    __slots__ = (
        "address",
        "bucket",
        "current",
        "due",
        "eligible",
        "expired",
        "high",
        "last_updated",
        "low",
        "non_empty_since",
        "weight",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        self.weight = 0.0
        self.last_updated = -math.inf
        self.non_empty_since: float | None = None  # None: A58's "infinity"
        self.current = 0.0  # its usable weight at the last sync
        self.bucket = 0  # the A78 bucket of ``current``, and its bounds (low, high]
        self.low, self.high = _BOUNDS[0]
        self.expired = False  # whether its report had expired at the last sync
        self.eligible = False  # whether it is in ``slots`` (and in the counts)
        self.due: float | None = None  # the due time of its live heap entry


#: The slot of an eligible endpoint that has no record: weight 0, never expired, never changed.
_NO_RECORD: Final = Record("")


class WeightBook:
    """The eligible endpoints' usable weights and their counts, kept by O(changed) updates."""

    __slots__ = (
        "blackout",
        "buckets",
        "dirty",
        "expiration",
        "heap",
        "positive",
        "records",
        "slots",
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
        #: Records to read again at the next sync (a dict for a deterministic order).
        self.dirty: dict[Record, None] = {}
        self.states: list[EndpointState] = []
        self.slots: list[Record] = []
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

    def add(self, address: str, eligible: EndpointState | None) -> Record:
        """A record for member ``address``'s first report, ``eligible`` its state if it is
        eligible (the record takes its slot; its counts are the empty slot's)."""
        record = self.records[address] = Record(address)
        if eligible is not None:
            self.slots[self._index(eligible)] = record
            record.eligible = True
        return record

    def recount(self, record: Record, weight: float) -> None:
        """A usable record's new usable weight, in another A78 bucket (a report)."""
        if record.eligible:
            self._count(record, -1)
        self._set(record, weight)
        if record.eligible:
            self._count(record, 1)

    @staticmethod
    def _set(record: Record, weight: float) -> None:
        record.current = weight
        bucket = record.bucket = _bucket(weight)
        record.low, record.high = _BOUNDS[bucket]

    # -- membership: O(log n) each ---------------------------------------------------------------

    def _index(self, state: EndpointState) -> int:
        index = bisect_left(self.states, state.seq, key=_seq)
        assert self.states[index] is state
        return index

    def enter(self, state: EndpointState) -> None:
        """``state`` became eligible: its weight is its record's as of the last sync."""
        record = self.records.get(state.endpoint.address, _NO_RECORD)
        index = bisect_left(self.states, state.seq, key=_seq)
        self.states.insert(index, state)
        self.slots.insert(index, record)
        self._count(record, 1)
        if record is not _NO_RECORD:
            record.eligible = True

    def leave(self, state: EndpointState) -> None:
        """``state`` stopped being eligible."""
        index = self._index(state)
        record = self.slots[index]
        del self.states[index], self.slots[index]
        self._count(record, -1)
        record.eligible = False

    def _count(self, record: Record, sign: int) -> None:
        self.buckets[record.bucket] += sign
        if record.current > 0:
            self.positive += sign
        if record.expired:
            self.stale += sign

    def drop(self, address: str) -> None:
        """A member left: forget its record (after :meth:`leave` if it was eligible)."""
        record = self.records.pop(address, None)
        if record is not None:
            assert not record.eligible
            self.dirty.pop(record, None)
            record.due = None  # its heap entry is superseded: compacted, not kept to its due time

    # -- the weights at a given time ---------------------------------------------------------------

    def weights(self) -> tuple[float, ...]:
        """The eligible endpoints' usable weights at the last sync, in join order (C-level)."""
        return tuple(map(_current, self.slots))

    def sync(self, now: float) -> None:
        """Bring the weights and counts to ``now``: the records dirty or with an expiry or a
        blackout end due are read again, O(k log n) for k of them."""
        if now < self.synced_at:  # the clock stepped back: an expiry may be undone, so
            self.dirty = {}  # read every record again (time.monotonic never does)
            self.heap = []
            for record in self.records.values():
                record.due = None
            self._reread(now)
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
        if len(work) * 2 > len(self.records) + len(self.slots) + 64:  # most: one pass
            self._reread(now)
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
        if record.eligible:
            self._count(record, -1)
        self._set(record, weight)
        record.expired = expired
        if record.eligible:
            self._count(record, 1)
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
        """Everything from scratch at ``now``, O(records + n): the first build, a health
        tracker attached."""
        states = self.states = list(eligible)
        get = self.records.get
        for record in self.records.values():
            record.eligible = False
            record.due = None
        slots = self.slots = [get(state.endpoint.address, _NO_RECORD) for state in states]
        for record in slots:
            if record is not _NO_RECORD:
                record.eligible = True
        self.dirty = {}
        self.heap = []
        self._reread(now)

    def _reread(self, now: float) -> None:
        """Every record read again at ``now`` and the counts recounted: O(records + n), for a
        sync where most records are due. A record's heap entry is kept when it comes no later
        than its new due time."""
        self.dirty = {}
        heap = self.heap
        usable = self.usable
        expiration, blackout = self.expiration, self.blackout
        queued = len(heap)
        for record in self.records.values():
            weight = usable(record, now)
            self._set(record, weight)
            last = record.last_updated
            if now - last >= expiration:
                record.expired = True
                continue
            record.expired = False
            due = last + expiration
            since = record.non_empty_since
            if weight == 0.0 and blackout > 0 and since is not None and since + blackout < due:
                due = since + blackout  # the end of its blackout (as _next_due)
            if record.due is None or due < record.due:
                record.due = due
                self.tickets += 1
                heap.append((due, self.tickets, record))
        if len(heap) != queued:
            heapify(heap)
        raw = list(map(_current, self.slots))
        self.positive = len(raw) - raw.count(0.0)
        self.stale = sum(map(_expired, self.slots))
        buckets = self.buckets = [0] * (len(WEIGHT_BUCKETS) + 1)
        for index, count in Counter(map(_bucket, raw)).items():
            buckets[index] += count
        self.synced_at = now

    def check(self, eligible: list[EndpointState]) -> None:
        """Assert the kept values equal a from-scratch reading at the last sync (the dirty
        records excepted: their new weights count from the next sync)."""
        assert [id(s) for s in self.states] == [id(s) for s in eligible]
        records = [self.records.get(state.endpoint.address) for state in eligible]
        assert [id(r) for r in self.slots] == [id(_NO_RECORD if r is None else r) for r in records]
        assert not _NO_RECORD.current and not _NO_RECORD.expired and not _NO_RECORD.eligible
        for record in self.records.values():
            assert record.eligible == any(r is record for r in records)
            assert record.bucket == _bucket(record.current)
            assert (record.low, record.high) == _BOUNDS[record.bucket]
            if record not in self.dirty:
                assert record.current == self.usable(record, self.synced_at)
        raw = self.weights()
        assert self.positive == sum(1 for weight in raw if weight > 0)
        assert self.stale == sum(1 for r in self.slots if r.expired)
        expected = [0] * (len(WEIGHT_BUCKETS) + 1)
        for weight in raw:
            expected[_bucket(weight)] += 1
        assert self.buckets == expected
        live = {id(entry[2]) for entry in self.heap if entry[2].due == entry[0]}
        for record in self.records.values():
            assert record.due is None or id(record) in live
