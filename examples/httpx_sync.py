"""A service client with httpx (sync): least response time over three backends, one slow.

Run: ``python examples/httpx_sync.py`` (starts its own servers on 127.0.0.1). The slow backend
is tried first, measured, and then avoided; least response time keeps to the fastest endpoint it
knows and probes the others about once a second (``probe_interval``), so a short run like this
one may leave an untried fast endpoint idle.
"""

from __future__ import annotations

from collections import Counter

import httpx
from _backends import backends

import balancekit as bk


def main() -> None:
    with backends({"slow": 0.03, "fast-1": 0.0, "fast-2": 0.0}) as names:
        lb = bk.LeastResponseTime(names)  # the addresses
        transport = bk.httpx.BalancedTransport(lb)  # retries refused connections elsewhere
        with httpx.Client(base_url="http://users-service", transport=transport) as client:
            served = Counter(client.get(f"/users/{i}").json()["server"] for i in range(100))
        print("served:", dict(served))
        for address, stats in lb.stats().items():
            latency = f"{stats.latency * 1000:.1f} ms" if stats.latency is not None else "-"
            print(f"  {names[address]:7} {address:21} ok={stats.succeeded:3} latency={latency}")


if __name__ == "__main__":
    main()
