"""LoadReportWeightedRoundRobin's weights after any sequence of changes are what a from-scratch
computation gives (issue 11: a change costs O(changed), <= 2 ms at n = 10,000): every eligible
endpoint's ``weight_at`` (GetWeight) scaled by a plain transcription of gRPC C-core's
``StaticStrideScheduler::Make`` (min/max/lround per weight), checked over random weights, over
reports and time, and by a state machine of membership changes, reports and clock steps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from balancekit import LoadReport
from balancekit.strategies._wrr_book import Record, WeightBook
from balancekit.strategies.load_report import (
    MAX_WEIGHT,
    MIN_WEIGHT,
    STRIDE_MAX_RATIO,
    STRIDE_MAX_WEIGHT,
    STRIDE_MIN_RATIO,
    LoadReportWeightedRoundRobin,
    _scaled_at,
    stride_weights,
)


def _lround(value: float) -> int:
    return math.floor(value + 0.5)


def reference_stride_weights(weights: list[float]) -> list[int] | None:
    weights = [min(w, MAX_WEIGHT) if w >= MIN_WEIGHT else 0.0 for w in weights]
    positive = [w for w in weights if w > 0]
    if len(positive) < 2:
        return None
    mean = sum(positive) / len(positive)
    largest = min(max(positive), STRIDE_MAX_RATIO * mean)
    scale = STRIDE_MAX_WEIGHT / largest
    scaled_mean = _lround(scale * mean)
    lowest = max(1, _lround(scaled_mean * STRIDE_MIN_RATIO))
    return [
        min(max(_lround(w * scale), lowest), STRIDE_MAX_WEIGHT) if w > 0 else scaled_mean
        for w in weights
    ]


weight = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e40, allow_nan=False),
    st.floats(min_value=0.5, max_value=2000.0),
    st.sampled_from([MIN_WEIGHT, MAX_WEIGHT, 1e-300, 3.5e38, 1.0]),
)


@settings(max_examples=400)
@given(st.lists(weight, max_size=40))
def test_stride_weights_equal_the_plain_transcription(weights: list[float]) -> None:
    got = stride_weights(weights)
    expected = reference_stride_weights(weights)
    assert (None if got is None else list(got)) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def expired(balancer: LoadReportWeightedRoundRobin, address: str, now: float) -> bool:
    """Whether ``address`` has reported, but not within ``weight_expiration_period``."""
    record = balancer._book.records.get(address)
    return record is not None and now - record.last_updated >= balancer._expiration


def from_scratch(
    balancer: LoadReportWeightedRoundRobin, now: float
) -> tuple[list[float], list[int] | None]:
    """Every eligible endpoint's GetWeight at ``now`` (``weight_at``, one by one) and what the
    plain transcription of ``StaticStrideScheduler::Make`` scales them to."""
    weights = [balancer.weight_at(s.endpoint.address, now) for s in balancer._eligible()]
    return weights, reference_stride_weights(weights)


def scheduler_now(balancer: LoadReportWeightedRoundRobin) -> tuple[list[float], list[int] | None]:
    """The scheduler's weights: those scaled already (by the periodic update, or by picks),
    and the rest scaled as the picks would scale them."""
    _, weights, scale = balancer._scheduler
    if weights is None:
        return list(balancer._book.weights()), None
    return list(scale[0]), [w or _scaled_at(scale, weights, i) for i, w in enumerate(weights)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 11), st.floats(0.0, 1.0), st.floats(1.0, 500.0), st.floats(0, 30)),
        max_size=30,
    ),
    st.sampled_from([0.0, 5.0]),
    st.floats(0.0, 60.0),
)
def test_the_kept_weights_equal_weight_at_of_each_endpoint(
    reports: list[tuple[int, float, float, float]], blackout: float, later: float
) -> None:
    clock = Clock()
    pool = [f"10.0.0.{i}:80" for i in range(12)]
    balancer = LoadReportWeightedRoundRobin(
        pool, clock=clock, blackout_period=blackout, weight_expiration_period=20.0
    )
    for index, cpu, qps, step in reports:
        clock.now += step
        balancer.report(pool[index], LoadReport(cpu_utilization=cpu, qps=qps))
    clock.now += later
    balancer._reweigh()
    book = balancer._book
    assert list(book.weights()) == [balancer.weight_at(address, clock.now) for address in pool]
    assert book.stale == sum(1 for address in pool if expired(balancer, address, clock.now))
    assert scheduler_now(balancer) == from_scratch(balancer, clock.now)


POOL = [f"10.0.1.{i}:80" for i in range(8)]


class IncrementalEqualsScratch(RuleBasedStateMachine):
    """Membership changes, reports and the clock, in any order: after each change (and each
    periodic update a pick runs) the scheduler equals the from-scratch one at that instant."""

    @initialize(blackout=st.sampled_from([0.0, 3.0]), start=st.integers(2, 8))
    def build(self, blackout: float, start: int) -> None:
        self.clock = Clock()
        self.lb = LoadReportWeightedRoundRobin(
            POOL[:start], clock=self.clock, blackout_period=blackout,
            weight_expiration_period=10.0, weight_update_period=1.0,
        )  # fmt: skip
        self.updates = self.lb.wrr_stats.updates

    def assert_scratch(self) -> None:
        """After a weight update (a change of the eligible set runs one): equal to scratch."""
        if self.lb.wrr_stats.updates != self.updates:
            self.updates = self.lb.wrr_stats.updates
            assert scheduler_now(self.lb) == from_scratch(self.lb, self.clock.now)

    @rule(address=st.sampled_from(POOL))
    def add(self, address: str) -> None:
        if address not in self.lb._members:
            self.lb.add(address)
            self.assert_scratch()

    @rule(address=st.sampled_from(POOL))
    def remove(self, address: str) -> None:
        if address in self.lb._members:
            self.lb.remove(address)
            self.assert_scratch()

    @rule(address=st.sampled_from(POOL), up=st.booleans())
    def mark(self, address: str, up: bool) -> None:
        if address in self.lb._members:
            (self.lb.mark_up if up else self.lb.mark_down)(address)
            self.assert_scratch()

    @rule(address=st.sampled_from(POOL), weight=st.integers(1, 5))
    def set_weight(self, address: str, weight: int) -> None:
        if address in self.lb._members:
            self.lb.set_weight(address, weight)
            self.assert_scratch()

    @rule(
        address=st.sampled_from(POOL),
        cpu=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
        qps=st.one_of(st.sampled_from([1.0, 10.0, 100.0, 5000.0]), st.floats(1e-3, 1e6)),
    )
    def report(self, address: str, cpu: float, qps: float) -> None:
        if address in self.lb._members:
            self.lb.report(address, LoadReport(cpu_utilization=cpu, qps=qps))

    @rule(step=st.sampled_from([0.0, 0.5, 1.0, 2.999, 3.0, 7.0, 10.0, 25.0]))
    def advance(self, step: float) -> None:
        self.clock.now += step

    @precondition(lambda self: self.lb._eligible_list)
    @rule(count=st.integers(1, 20))
    def pick(self, count: int) -> None:
        for _ in range(count):
            self.lb.release(self.lb.select())
        self.assert_scratch()  # if the periodic update ran (at this instant)

    @invariant()
    def consistent(self) -> None:
        self.lb._check_invariants()


TestIncrementalEqualsScratch = IncrementalEqualsScratch.TestCase
TestIncrementalEqualsScratch.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)


@pytest.mark.parametrize("blackout", [0.0, 10.0])
def test_a_change_reads_only_what_changed(blackout: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: with every one of 2,000 endpoints reporting, a membership change reads no
    report but those due or new (O(changed), not O(n)) and scales no weight (the picks do)."""
    clock = Clock()
    pool = [f"10.1.{i >> 8}.{i & 255}:80" for i in range(2000)]
    lb = LoadReportWeightedRoundRobin(pool, clock=clock, blackout_period=blackout)
    for i, address in enumerate(pool):
        lb.report(address, LoadReport(cpu_utilization=0.5, qps=100.0 + i % 97))
    clock.now += blackout + 1.0
    lb.select()  # the periodic update reads every report once
    reads: list[Record] = []
    usable = WeightBook.usable

    def counted(book: WeightBook, record: Record, now: float) -> float:
        reads.append(record)
        return usable(book, record, now)

    monkeypatch.setattr(WeightBook, "usable", counted)
    for address in pool[:10]:
        lb.mark_down(address)
        assert not any(lb._scheduler[1] or ())  # nothing scaled by the change
        lb.mark_up(address)
        lb.remove(address)
        lb.add(address)
    lb.report(pool[20], LoadReport(cpu_utilization=0.5, qps=7.0))
    lb.mark_down(pool[30])
    # the 10 marked up (blackout again: read again); the reporter was usable and stays so, its
    # new weight is counted when it reports, without a read
    assert len(reads) == 10
    assert scheduler_now(lb) == from_scratch(lb, clock.now)


def test_an_expiry_a_rounding_early_is_taken() -> None:
    """``66.3 + 180 == 246.3`` as floats, yet GetWeight's ``now - last >= 180`` already holds at
    the float before it: a due time is only an estimate, GetWeight decides (within a slack)."""
    now = 246.29999999999998
    assert now - 66.3 >= 180.0 and now < 66.3 + 180.0
    clock = Clock()
    lb = LoadReportWeightedRoundRobin(["a:1", "b:1", "c:1"], blackout_period=0, clock=clock)
    clock.now = 66.3
    lb.report("a:1", LoadReport(cpu_utilization=0.5, qps=300))
    clock.now = 100.0
    lb.report("b:1", LoadReport(cpu_utilization=0.5, qps=100))
    lb.report("c:1", LoadReport(cpu_utilization=0.5, qps=100))
    lb.mark_down("c:1")  # an update: a and b usable
    assert lb._book.weights() == (600.0, 200.0)
    clock.now = now
    lb.mark_up("c:1")  # an update at the instant a's report expires
    assert lb.weight_at("a:1") == 0.0
    assert scheduler_now(lb) == from_scratch(lb, now)


def test_a_clock_that_steps_back_reads_every_record_again() -> None:
    """An injected clock may step back: reports expired at 20 are usable again at 5, as
    GetWeight computes (no heap entry brings them back: the book reads every record)."""
    clock = Clock()
    lb = LoadReportWeightedRoundRobin(
        ["a:1", "b:1"], blackout_period=0, weight_expiration_period=10, clock=clock
    )
    lb.report("a:1", LoadReport(cpu_utilization=0.5, qps=300))
    lb.report("b:1", LoadReport(cpu_utilization=0.5, qps=100))
    clock.now = 20.0
    lb.add("c:1")  # an update: both expired, round robin
    assert lb._scheduler[1] is None
    clock.now = 5.0
    lb.remove("c:1")  # an update at 5: both usable
    assert scheduler_now(lb) == from_scratch(lb, 5.0) == ([600.0, 200.0], [65535, 21845])


def test_an_update_slower_than_the_period_does_not_leave_the_next_pick_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The weight update period counts from the end of an update: one that takes longer than
    the period (a slow machine, a huge pool) runs once, not again on every following pick."""
    now = [0.0]
    lb = LoadReportWeightedRoundRobin(
        ["a:1", "b:1", "c:1"],
        blackout_period=0,
        weight_update_period=1.0,
        clock=lambda: now[0],
    )
    for address, qps in (("a:1", 10.0), ("b:1", 20.0), ("c:1", 30.0)):
        lb.report(address, LoadReport(cpu_utilization=0.5, qps=qps))
    reads = [0]
    weights = WeightBook.weights

    def slow_weights(book: WeightBook) -> tuple[float, ...]:  # the O(n) pass, 2.5 periods long
        reads[0] += 1
        now[0] += 2.5
        return weights(book)

    monkeypatch.setattr(WeightBook, "weights", slow_weights)
    now[0] = 5.0
    lb.release(lb.select())  # due: one update, which ends at 7.5
    assert reads[0] == 1
    for _ in range(5):  # the clock stands at 7.5: the next update is due at 8.5, not before
        lb.release(lb.select())
    assert reads[0] == 1
