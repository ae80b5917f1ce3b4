"""review7b (issue 15 session 7): findings on the compiled LeastConnections/LeastResponseTime
node rewrite. Each holds in pure Python. The first failed in integ7's compiled build before its
fix (a run emptied by ``_drop_top`` kept ``run.last`` on the popped node, so a removed
endpoint's state stayed reachable). The second finding (an int clock past 2**53 learned exactly
in pure Python and in floats compiled) ended when every clock's readings became floats in both
builds: tests/hostile/test_clock_readings.py.
"""

from __future__ import annotations

import gc

import pytest

import balancekit as bk


def _states_of(address: str) -> list[object]:
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if type(o).__name__ == "EndpointState" and o.endpoint.address == address  # type: ignore[attr-defined]
    ]


@pytest.mark.parametrize("name", ["LeastConnections", "LeastResponseTime"])
def test_removed_endpoint_is_not_retained_by_an_emptied_run(name: str) -> None:
    # Addresses no other test uses: the check looks at every EndpointState in the process.
    kept, removed = f"kept-{name.lower()}.test:1", f"removed-{name.lower()}.test:1"
    lb = getattr(bk, name)(
        [bk.Endpoint(kept, weight=1), bk.Endpoint(removed, weight=5)], clock=lambda: 0.0
    )
    for _ in range(4):
        lb.release(lb.select())
    assert len(_states_of(removed)) == 1  # (the address as the balancer keeps it)
    lb.remove(removed)
    for _ in range(4):  # the removed one's dead entry surfaces and is dropped: its run is empty
        lb.release(lb.select())
    lb._check_invariants()
    assert _states_of(removed) == []
