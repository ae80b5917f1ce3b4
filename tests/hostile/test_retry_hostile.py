"""Retry policies that pass validation but broke a call (issue 10: the breaker's pass)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk

ADDRESSES = [f"10.0.0.{i}:80" for i in range(1, 6)]


def refuse(endpoint: bk.Endpoint) -> Any:
    raise ConnectionRefusedError(endpoint.address)


@settings(max_examples=50, deadline=None)
@given(
    multiplier=st.one_of(st.floats(1, sys.float_info.max), st.sampled_from([1e200, 1e308])),
    backoff=st.sampled_from([0.0, 1e-9, 0.025, 1e300]),
    retry=st.integers(1, 10_000),
)
def test_a_delay_is_a_finite_wait_within_max_backoff(
    multiplier: float, backoff: float, retry: int
) -> None:
    policy = bk.Retry(backoff=backoff, max_backoff=2.0, multiplier=multiplier, attempts=100)
    delay = policy.delay(retry)
    assert 0.0 <= delay <= 2.0
    if backoff == 0.0:
        assert delay == 0.0


def test_a_huge_multiplier_retries_and_raises_the_last_failure() -> None:
    lb = bk.RoundRobin(ADDRESSES)
    policy = bk.Retry(attempts=5, multiplier=1e200, sleep=lambda s: None, budget=None)
    with pytest.raises(ConnectionRefusedError):  # it was OverflowError at the third attempt
        policy.call(lb, refuse)
    stats = lb.stats()
    assert sum(s.failed for s in stats.values()) == 5
    assert all(s.in_flight == 0 for s in stats.values())


@pytest.mark.parametrize(
    "avoid",
    [[["x"]], 5, [object()], "10.0.0.1:80"],
    ids=["nested-list", "int", "object", "one-string"],
)
def test_a_flow_refuses_an_avoid_that_is_not_addresses(avoid: Any) -> None:
    lb = bk.RoundRobin(ADDRESSES)
    with pytest.raises(bk.InvalidOption, match="avoid"):
        next(bk.Retry().flow(lb, avoid=avoid))
    assert all(s.selected == 0 for s in lb.stats().values())
