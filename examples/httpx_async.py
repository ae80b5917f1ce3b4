"""A service client with httpx (asyncio): least connections, 50 concurrent requests.

Run: ``python examples/httpx_async.py`` (starts its own servers on 127.0.0.1). A discovery
watcher keeps the balancer's membership current; here from a static list, in production from
``bk.discovery.DNS("_http._tcp.users.example")``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from _backends import backends

import balancekit as bk


async def main() -> None:
    with backends({"a": 0.01, "b": 0.01, "slow": 0.1}) as names:
        lb = bk.LeastConnections()
        source = bk.discovery.Static(list(names))
        async with bk.discovery.AsyncWatcher(lb, source):
            transport = bk.httpx.AsyncBalancedTransport(lb)
            async with httpx.AsyncClient(base_url="http://users", transport=transport) as client:
                limit = asyncio.Semaphore(10)

                async def fetch(i: int) -> str:
                    async with limit:
                        response = await client.get(f"/users/{i}")
                        return str(response.json()["server"])

                served = Counter(await asyncio.gather(*(fetch(i) for i in range(50))))
        print("served:", dict(served), "(the slow one holds its requests longer: fewer)")


if __name__ == "__main__":
    asyncio.run(main())
