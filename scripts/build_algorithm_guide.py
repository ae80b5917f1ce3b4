"""Write docs/algorithms.md from the docstrings of every balancer balancekit exports.

The docstrings are the source: each says what the strategy does, when to use it, its cost and
its source. Run ``python scripts/build_algorithm_guide.py``; tests/test_algorithm_guide.py fails
when the committed guide is older than the docstrings.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import balancekit as bk

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "algorithms.md"

HEADER = """# The algorithm guide

Generated from the strategies' docstrings by `python scripts/build_algorithm_guide.py`
(do not edit by hand). Every strategy has the same interface (`select`, `release`, `acquire`,
membership, `stats`), passes the same conformance suite, and is measured in
[benchmarks.md](benchmarks.md).

## Which one?

- Identical servers, similar requests: `RoundRobin`; servers of different capacity:
  `WeightedRoundRobin`.
- Requests of very different cost, long-lived connections: `LeastConnections`.
- Servers whose speed varies or degrades: `LeastResponseTime` (or `PeakEWMA`,
  `PowerOfTwoChoices` where present: cheaper at scale).
- The same client or key must reach the same server (caches, sessions, shards): a consistent
  hash — `IPHash` (a ring), or the specialised ones below where present.

| strategy | in one line |
|---|---|
"""


def balancers() -> list[type]:
    found = []
    for name in sorted(bk.__all__):
        obj = getattr(bk, name)
        if inspect.isclass(obj) and issubclass(obj, bk.BalancerBase) and obj is not bk.BalancerBase:
            found.append(obj)
    return found


def render() -> str:
    parts = [HEADER]
    classes = balancers()
    for cls in classes:
        first = inspect.getdoc(cls).split("\n", 1)[0] if inspect.getdoc(cls) else ""
        parts.append(f"| [`{cls.__name__}`](#{cls.__name__.lower()}) | {first} |\n")
    for cls in classes:
        doc = inspect.getdoc(cls) or "(undocumented)"
        text = [line for line in doc.splitlines()]
        # Drop doctest examples from the guide: they run in the test suite instead.
        kept = [line for line in text if not line.startswith((">>> ", "... "))]
        signature = inspect.signature(cls)
        parts.append(f"\n## {cls.__name__}\n\n`{cls.__name__}{signature}`\n\n")
        parts.append("\n".join(kept).rstrip() + "\n")
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if GUIDE.exists() and GUIDE.read_text() == text else 1
    GUIDE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
