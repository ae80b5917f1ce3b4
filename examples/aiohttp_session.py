"""A service client with aiohttp: least response time over three servers, one of them slow.

Run: ``python examples/aiohttp_session.py`` (starts its own servers on 127.0.0.1). The
balancer's membership could come from ``bk.discovery.Etcd("services/users/")`` with an
``AsyncWatcher``; here it is a fixed list.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from _backends import backends

import balancekit as bk


async def main() -> None:
    with backends({"a": 0.005, "b": 0.005, "slow": 0.08}) as names:
        lb = bk.LeastResponseTime(list(names))
        balanced = bk.aiohttp.BalancedMiddleware(lb)
        async with aiohttp.ClientSession("http://users", middlewares=(balanced,)) as session:
            limit = asyncio.Semaphore(4)

            async def fetch(i: int) -> str:
                async with limit, session.get(f"/users/{i}") as response:
                    return str((await response.json())["server"])

            served = Counter(await asyncio.gather(*(fetch(i) for i in range(60))))
        print("served:", dict(served), "(the slow one is measured, then mostly avoided)")


if __name__ == "__main__":
    asyncio.run(main())
