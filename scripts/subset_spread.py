"""Connections per server under each subsetter, for docs/many-clients.md.

Every client's subset is computed with balancekit's own subsetters and counted per server; the
least and most connected servers are printed as a share of the mean. Deterministic: seeds are
the client numbers. Run: ``PYTHONPATH=src python scripts/subset_spread.py``.
"""

from __future__ import annotations

from collections import Counter

from balancekit.subset import DeterministicAperture, DeterministicSubset, RandomSubset, Subsetter


def spread(counts: Counter[str], servers: list[str]) -> str:
    values = [counts.get(server, 0) for server in servers]
    mean = sum(values) / len(values)
    return f"mean {mean:5.1f}  min {min(values) / mean:4.0%}  max {max(values) / mean:4.0%}"


def main() -> None:
    for clients, count, k in [(300, 300, 30), (300, 300, 90), (100, 500, 20)]:
        servers = [f"10.{i // 250}.{i % 250}.1:80" for i in range(count)]
        print(f"{clients} clients x {count} servers, k = {k}")
        subsetters: dict[str, list[Subsetter]] = {
            "RandomSubset": [RandomSubset(k, seed=c) for c in range(clients)],
            "DeterministicSubset": [DeterministicSubset(k, client_id=c) for c in range(clients)],
            "DeterministicAperture": [DeterministicAperture(c, clients) for c in range(clients)],
        }
        for name, fleet in subsetters.items():
            counts: Counter[str] = Counter()
            for subsetter in fleet:
                counts.update(e.address for e in subsetter.subset(servers))
            per_client = sum(counts.values()) / clients
            print(f"  {name:22} {spread(counts, servers)}  ({per_client:.0f} servers per client)")


if __name__ == "__main__":
    main()
