"""Every balancer in ``balancekit.__all__`` works behind the httpx and requests integrations.

Whatever the strategy, every request succeeds, every lease is released (nothing left in
flight) and every outcome is counted; strategies that neither hash nor chase the fastest
endpoint spread requests over all servers.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.integrations.httpx import BalancedTransport
from balancekit.integrations.requests import BalancedAdapter

from ._server import ThreadServer

STRATEGIES = sorted(
    name
    for name in bk.__all__
    if isinstance(getattr(bk, name), type)
    and issubclass(getattr(bk, name), bk.BalancerBase)
    and name != "BalancerBase"
)
# these may keep to the fastest endpoint they know in a short sequential run
LATENCY_CHASERS = {"LeastResponseTime", "PeakEWMA"}


def _build(name: str, addresses: list[str]) -> bk.Balancer:
    kind = getattr(bk, name)
    if "key" in inspect.signature(kind).parameters:
        return kind(addresses, key=bk.keys.path())  # type: ignore[no-any-return]
    return kind(addresses)  # type: ignore[no-any-return]


@pytest.mark.parametrize("client", ["httpx", "requests"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_behind_a_client(
    name: str, client: str, servers: Callable[..., list[ThreadServer]]
) -> None:
    pool = servers(3)
    lb = _build(name, [s.address for s in pool])
    paths = [f"/item/{i}" for i in range(60)]
    if client == "httpx":
        with httpx.Client(base_url="http://backend", transport=BalancedTransport(lb)) as c:
            served = Counter(c.get(path).json()["id"] for path in paths)
    else:
        with requests.Session() as session:
            session.mount("http://backend/", BalancedAdapter(lb))
            served = Counter(session.get(f"http://backend{p}").json()["id"] for p in paths)
    stats = lb.stats().values()
    assert sum(served.values()) == 60
    assert all(s.in_flight == 0 for s in stats)
    assert sum(s.succeeded for s in stats) == 60 and sum(s.failed for s in stats) == 0
    if name not in LATENCY_CHASERS:
        assert len(served) == 3, served
