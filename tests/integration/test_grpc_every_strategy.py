"""Every balancer in ``balancekit.__all__`` behind balancekit.grpc (sync and asyncio).

Whatever the strategy, every call succeeds, every lease is released and every outcome counted;
hashing strategies key on the metadata (one user, one server); the others spread the calls
over the three servers (except those chasing the fastest one in a short sequential run).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter

import pytest

import balancekit as bk
from balancekit.integrations.grpc import AsyncBalancedChannel, BalancedChannel

from ._grpc_fixture import Start
from .test_every_strategy import LATENCY_CHASERS, STRATEGIES

UNARY = "/test.Echo/Unary"


def _build(name: str, addresses: list[str]) -> tuple[bk.Balancer, bool]:
    kind = getattr(bk, name)
    if "key" in inspect.signature(kind).parameters:
        return kind(addresses, key=bk.keys.header("x-user")), True
    return kind(addresses), False


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_behind_a_grpc_channel(name: str, grpc_servers: Start) -> None:
    servers = grpc_servers(3)
    lb, hashing = _build(name, [s.address for s in servers])
    # 30 users, each calling once on the sync and once on the asyncio channel: the hashes must
    # keep each on one server, and with 30 keys over 3 servers (on random ports) a server left
    # without a key has probability 3 * (2/3)**30 ~ 1.5e-5 (with 12 keys it was ~2 %).
    users = [f"user-{i % 30}" for i in range(60)]
    with BalancedChannel(lb) as channel:
        call = channel.unary_unary(UNARY)
        answers = [(user, call(b"{}", metadata=(("x-user", user),))) for user in users[:30]]

    async def main() -> list[tuple[str, bytes]]:
        async with AsyncBalancedChannel(lb) as achannel:
            acall = achannel.unary_unary(UNARY)
            return [(user, await acall(b"{}", metadata=(("x-user", user),))) for user in users[30:]]

    answers += asyncio.run(main())
    stats = lb.stats().values()
    assert len(answers) == 60
    assert all(s.in_flight == 0 for s in stats)
    assert sum(s.succeeded for s in stats) == 60 and sum(s.failed for s in stats) == 0
    served = Counter(answer for _, answer in answers)
    if hashing:
        for user in set(users):
            assert len({answer for u, answer in answers if u == user}) == 1, user
    if name not in LATENCY_CHASERS:
        assert len(served) == 3, served
