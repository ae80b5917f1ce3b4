"""A Retry policy's counters (gRFC A96's attempt types), as the HTTP integrations drive them."""

from __future__ import annotations

import httpx
import pytest

import balancekit as bk
from balancekit.integrations.httpx import BalancedTransport
from balancekit.retry import RetryCounts

POOL = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]


def test_a_refused_connection_is_a_transparent_retry_and_a_503_a_retry() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}:{request.url.port}")
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503)
        return httpx.Response(200)

    lb = bk.RoundRobin(POOL)
    retry = bk.Retry(attempts=3, backoff=0, retry_result=lambda r: r.status_code == 503)
    transport = BalancedTransport(lb, retry=retry, transport=httpx.MockTransport(handler))
    with httpx.Client(transport=transport, base_url="http://service") as client:
        assert client.get("/").status_code == 200
    assert len(seen) == 3 and len(set(seen)) == 3
    assert retry.stats.read() == RetryCounts(
        original=1, retries=1, transparent=1, budget_denied=0, delay=0.0
    )


def test_budget_denials_are_counted_by_the_policy() -> None:
    lb = bk.RoundRobin(POOL)
    retry = bk.Retry(attempts=3, budget=bk.RetryBudget(ratio=0.0, burst=2.0), sleep=lambda s: None)

    def down(endpoint: bk.Endpoint) -> str:
        raise ConnectionError("refused")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            retry.call(lb, down)
    counts = retry.stats.read()
    # call 1: 1 + 2 retries (both tokens); calls 2 and 3: 1 attempt, retry denied
    assert (counts.original, counts.retries, counts.budget_denied) == (3, 2, 2)
    assert 0 < counts.delay <= 0.025 + 0.05  # two jittered waits within their caps
