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
