"""Regressions found by an adversarial review of the incremental strategies (2026-12-07)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk


@settings(max_examples=20, deadline=None)
@given(churn=st.integers(200, 600), step=st.sampled_from([0.0, 0.001, 0.01]))
def test_load_report_heap_of_due_times_stays_bounded_under_membership_churn(
    churn: int, step: float
) -> None:
    """Endpoints that join, report and leave: a dropped record's heap entry counted as live until
    its expiry (180 s), so the heap of due times grew with the churn (one entry per endpoint
    that ever left in the last 180 s) while the book held no record at all. It must stay within
    the documented compaction bound, 2 * records + 64."""
    now = [0.0]
    lb = bk.LoadReportWeightedRoundRobin(["a:1", "b:1"], blackout_period=0, clock=lambda: now[0])
    book = lb._book
    for i in range(churn):
        address = f"x{i}:1"
        lb.add(address)
        lb.report(address, bk.LoadReport(cpu_utilization=0.5, qps=100))
        lb.mark_down("a:1")  # a change: a sync reads the report and queues its expiry
        lb.mark_up("a:1")
        lb.remove(address)
        now[0] += step
        assert len(book.heap) <= 2 * (len(book.records) + 1) + 64 + 1, i  # +1: the one just gone
    book.check(lb._eligible())


@settings(max_examples=30, deadline=None)
@given(back=st.floats(181.0, 1e9), again=st.floats(1.0, 150.0), sync_back=st.booleans())
def test_load_report_after_the_clock_stepped_back_is_read_again(
    back: float, again: float, sync_back: bool
) -> None:
    """A report made while the clock reads earlier than the last sync (a clock that steps back,
    then forward again before the next update) set a usable record's weight at once, while its
    queued expiry stayed the one of its previous report: the next sync kept a weight that
    GetWeight calls expired (``now - last_updated >= weight_expiration_period``) until that old
    due time. Every update must use GetWeight's weights (``weight_at``)."""
    now = [1000.0]
    lb = bk.LoadReportWeightedRoundRobin(
        ["a:1", "b:1", "c:1"], blackout_period=0, clock=lambda: now[0]
    )
    for address, qps in (("a:1", 300), ("b:1", 100), ("c:1", 200)):
        lb.report(address, bk.LoadReport(cpu_utilization=0.5, qps=qps))
    now[0] += 1.0
    lb.select()  # an update: all three usable
    now[0] -= back  # the clock steps back (an update runs there, or not); a reports
    if sync_back:  # a change: a sync there, which reads every record again
        lb.mark_down("c:1")
        lb.mark_up("c:1")
    lb.report("a:1", bk.LoadReport(cpu_utilization=0.5, qps=400))
    now[0] += back + again  # and forward again, past the last update: the next one runs
    lb.select()
    states, _, scale = lb._scheduler
    kept = list(scale[0]) if scale[0] else [0.0] * len(states)
    assert kept == [lb.weight_at(state.endpoint.address) for state in states]
    lb._book.check(lb._eligible_list)  # (not _check_invariants: it assumes a monotonic clock)
