"""A fixed list of endpoints, as a discovery source (tests, configuration files, fallbacks)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .._endpoint import EndpointLike, as_endpoints
from ._source import Snapshot

__all__ = ["Static"]


class Static:
    """A source that always answers the same endpoints (validated at construction).

    >>> from balancekit.discovery import Static
    >>> Static(["10.0.0.1:80", "10.0.0.2:80"]).resolve().endpoints[1].address
    '10.0.0.2:80'

    ``ttl`` is infinite: a watcher resolves it once. Use it where code expects a source, or as
    the fallback of a dynamic one.
    """

    def __init__(self, endpoints: Iterable[EndpointLike]) -> None:
        self._snapshot = Snapshot(tuple(as_endpoints(endpoints)), math.inf)

    def resolve(self) -> Snapshot:
        """The endpoints given at construction. O(1)."""
        return self._snapshot

    async def resolve_async(self) -> Snapshot:
        """The same, for an asyncio watcher."""
        return self._snapshot

    def __repr__(self) -> str:
        return f"Static({[e.address for e in self._snapshot.endpoints]!r})"
