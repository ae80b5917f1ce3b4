"""``Retry(retry_result=...)`` through the HTTP integrations (issue 10, item 10).

One of three loopback servers answers 30 % of its requests 503. With a policy that rejects
503s, idempotent requests are retried on another endpoint (Envoy's ``retry_on: 5xx``), the
rejected responses are closed, and a 503 reaches the caller only when the retry budget refuses
a retry: then it is the last response, returned. A user hook that raises releases the attempt
once, as a failure, and propagates.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.integrations.httpx import AsyncBalancedTransport, BalancedTransport
from balancekit.integrations.requests import BalancedAdapter

from ._server import ThreadServer
from .test_httpx import _idle

Start = Callable[..., list[ThreadServer]]
REQUESTS = 300


def rejects_503(response: httpx.Response | requests.Response) -> bool:
    return response.status_code == 503


def _statuses(kind: str, lb: bk.Balancer, retry: bk.Retry, method: str = "GET") -> Counter[int]:
    codes: Counter[int] = Counter()
    if kind == "httpx":
        transport = BalancedTransport(lb, retry=retry)
        with httpx.Client(base_url="http://backend", transport=transport) as client:
            for _ in range(REQUESTS):
                codes[client.request(method, "/", content=b"x").status_code] += 1
    elif kind == "httpx-async":

        async def main() -> None:
            transport = AsyncBalancedTransport(lb, retry=retry)
            async with httpx.AsyncClient(base_url="http://backend", transport=transport) as client:
                for _ in range(REQUESTS):
                    response = await client.request(method, "/", content=b"x")
                    codes[response.status_code] += 1

        asyncio.run(main())
    else:
        with requests.Session() as session:
            session.mount("http://backend/", BalancedAdapter(lb, retry=retry))
            for _ in range(REQUESTS):
                codes[session.request(method, "http://backend/", data=b"x").status_code] += 1
    return codes


KINDS = pytest.mark.parametrize("kind", ["httpx", "httpx-async", "requests"])


@KINDS
def test_rejected_responses_are_retried_elsewhere_until_the_budget_says_no(
    kind: str, servers: Start
) -> None:
    pool = servers(3, failures={0: 0.3})
    lb = bk.RoundRobin([s.address for s in pool])
    budget = bk.RetryBudget(ratio=0.05, burst=2)  # ~15 retries for ~30 rejected responses
    retry = bk.Retry(retry_result=rejects_503, backoff=0.0, budget=budget)
    codes = _statuses(kind, lb, retry)
    assert retry.budget is not None
    assert pool[0].httpd.failed >= 25  # the server did fail: ~30 % of its ~100 requests
    assert codes[503] == retry.budget.denied > 0  # each 503 returned: a retry the budget refused
    assert codes[200] + codes[503] == REQUESTS
    assert retry.budget.retries == pool[0].httpd.failed - codes[503]
    stats = lb.stats()
    assert stats[pool[0].address].failed == pool[0].httpd.failed  # every 503 counted failed
    assert _idle(lb)


@KINDS
def test_without_a_budget_no_rejected_response_reaches_the_caller(
    kind: str, servers: Start
) -> None:
    pool = servers(3, failures={0: 0.3})
    lb = bk.RoundRobin([s.address for s in pool])
    codes = _statuses(kind, lb, bk.Retry(retry_result=rejects_503, backoff=0.0, budget=None))
    assert pool[0].httpd.failed >= 25
    assert codes == {200: REQUESTS}
    assert _idle(lb)


@KINDS
def test_non_idempotent_requests_are_never_sent_twice(kind: str, servers: Start) -> None:
    pool = servers(3, failures={0: 0.3})
    lb = bk.RoundRobin([s.address for s in pool])
    codes = _statuses(kind, lb, bk.Retry(retry_result=rejects_503, budget=None), method="POST")
    assert codes[503] == pool[0].httpd.failed >= 25  # POST (RFC 9110 §9.2.2): returned as is
    assert sum(s.selected for s in lb.stats().values()) == REQUESTS
    assert lb.stats()[pool[0].address].failed == codes[503]  # and counted as failures


def test_when_attempts_run_out_the_last_rejected_response_is_returned(servers: Start) -> None:
    pool = servers(2)
    lb = bk.RoundRobin([s.address for s in pool])
    retry = bk.Retry(retry_result=rejects_503, backoff=0.0, budget=None)
    with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb, retry=retry)) as c:
        response = c.get("/status/503")  # every server answers 503: both tried, the last kept
        assert response.status_code == 503 and response.json()["path"] == "/status/503"
    assert [s.failed for s in lb.stats().values()] == [1, 1]
    assert _idle(lb)


class Tracked(httpx.SyncByteStream):
    """A response body that logs when it is closed."""

    def __init__(self, log: list[str], status: int) -> None:
        self._log = log
        self._status = status

    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    def close(self) -> None:
        self._log.append(f"closed {self._status}")


class Statuses(httpx.BaseTransport):
    """An inner transport answering the given statuses in turn, logging sends and closes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.log: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append(f"sent to {request.url.host}")
        status = self.statuses.pop(0)
        return httpx.Response(status, stream=Tracked(self.log, status))


def test_a_rejected_response_is_closed_before_its_retry_is_sent() -> None:
    lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
    inner = Statuses([503, 502, 200])
    retry = bk.Retry(retry_result=lambda r: r.status_code >= 500, backoff=0.0, budget=None)
    transport = BalancedTransport(lb, transport=inner, retry=retry)
    with httpx.Client(base_url="http://backend", transport=transport) as client:
        assert client.get("/").status_code == 200
    assert inner.log == [
        "sent to 10.0.0.1",
        "closed 503",
        "sent to 10.0.0.2",
        "closed 502",
        "sent to 10.0.0.3",
        "closed 200",  # read by the client
    ]
    assert [s.failed for s in lb.stats().values()] == [1, 1, 0]


@pytest.mark.parametrize("hook", ["retry_result", "ok_status"])
def test_a_raising_hook_releases_its_attempt_once_as_a_failure(hook: str) -> None:
    def broken(response: object) -> bool:
        raise ValueError("a bug in the predicate")

    lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80"])
    inner = Statuses([200, 200])
    if hook == "retry_result":
        transport = BalancedTransport(lb, transport=inner, retry=bk.Retry(retry_result=broken))
    else:
        transport = BalancedTransport(lb, transport=inner, ok_status=broken)
    with (
        httpx.Client(base_url="http://backend", transport=transport) as client,
        pytest.raises(ValueError, match="a bug"),
    ):
        client.get("/")
    stats = lb.stats()["10.0.0.1:80"]
    assert (stats.selected, stats.failed, stats.in_flight) == (1, 1, 0)
    assert inner.log == ["sent to 10.0.0.1", "closed 200"]  # no one will get it: closed


def test_requests_hands_retry_result_the_logical_response(servers: Start) -> None:
    pool = servers(2)
    lb = bk.RoundRobin([s.address for s in pool])
    seen: list[str] = []

    def judge(response: requests.Response) -> bool:
        seen.append(response.url)
        return False

    with requests.Session() as session:
        session.mount("http://backend/", BalancedAdapter(lb, retry=bk.Retry(retry_result=judge)))
        assert session.get("http://backend/x").status_code == 200
    assert seen == ["http://backend/x"]
