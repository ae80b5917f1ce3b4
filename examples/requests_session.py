"""A service client with requests: weighted round robin, one backend down.

Run: ``python examples/requests_session.py`` (starts its own servers on 127.0.0.1). The third
endpoint refuses connections: those requests are retried on another endpoint and it is ejected.
"""

from __future__ import annotations

import socket
from collections import Counter

import requests
from _backends import backends

import balancekit as bk


def main() -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        down = f"127.0.0.1:{probe.getsockname()[1]}"
    with backends({"big": 0.0, "small": 0.0}) as names:
        big, small = list(names)
        lb = bk.WeightedRoundRobin([bk.Endpoint(big, weight=3), small, down])
        served: Counter[str] = Counter()
        failed = 0
        with requests.Session() as session:
            session.mount("http://orders/", bk.requests.BalancedAdapter(lb))
            for i in range(40):
                try:
                    response = session.get(f"http://orders/orders/{i}", timeout=5)
                except requests.RequestException:  # every endpoint tried failed
                    failed += 1
                    continue
                if response.status_code >= 500:
                    failed += 1
                else:
                    served[response.json()["server"]] += 1
        print("served:", dict(served), "| failed requests:", failed)
        print("down endpoint:", down, "ejected" if lb.stats()[down].ejected else "in rotation")


if __name__ == "__main__":
    main()
