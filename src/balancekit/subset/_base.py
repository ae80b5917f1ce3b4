"""The subsetting interface: a pure filter from a service's endpoints to this client's share.

A *subsetter* is anything with ``subset(endpoints) -> tuple[Endpoint, ...]``: given the whole
membership list (from discovery or configuration) it returns the endpoints this client process
connects to. It is a function of the list and of the subsetter's own settings (seed, instance
id), never of earlier calls, so the same list gives the same subset in every process and a
simulator can lay out a whole fleet by calling it once per client.

It sits between discovery and any balancer (gRPC A68: "it acts as a simple filter on the
resolver state"): :class:`SubsetSource` wraps a discovery source so a
:class:`~balancekit.discovery.Watcher` hands the balancer only the subset, and
``balancer.update(subsetter.subset(endpoints))`` does the same by hand. The balancer never
knows it sees a subset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from .._endpoint import Endpoint, EndpointLike, as_endpoints
from .._errors import InvalidOption
from ..discovery._source import Snapshot, Source, describe

__all__ = ["SubsetSource", "Subsetter", "members"]


@runtime_checkable
class Subsetter(Protocol):
    """Chooses this client's endpoints from the whole list (pure; see the module docstring)."""

    def subset(self, endpoints: Iterable[EndpointLike]) -> tuple[Endpoint, ...]:
        """This client's share of ``endpoints``."""
        ...


def members(endpoints: Iterable[EndpointLike]) -> list[Endpoint]:
    """``endpoints`` validated (addresses parsed, no address twice) and sorted by address, so
    a subset never depends on the order discovery listed them in."""
    return sorted(as_endpoints(endpoints), key=lambda endpoint: endpoint.address)


class SubsetSource:
    """A discovery source that answers only this client's subset of another source's answer.

    >>> import balancekit as bk
    >>> from balancekit.discovery import Static, Watcher
    >>> everyone = Static([f"10.0.0.{i}:80" for i in range(1, 31)])
    >>> lb = bk.PowerOfTwoChoices(seed=1)
    >>> with Watcher(lb, SubsetSource(everyone, bk.subset.RandomSubset(5, seed=7))):
    ...     len(lb)
    5

    The TTL and any error of the wrapped source pass through unchanged (an error keeps the
    balancer's current endpoints, as for any source). O(n log n) per refresh for n endpoints.
    """

    def __init__(self, source: Source, subsetter: Subsetter) -> None:
        if not callable(getattr(source, "resolve", None)):
            raise InvalidOption(f"source must have a resolve() method, not {describe(source)}")
        if not callable(getattr(subsetter, "subset", None)):
            raise InvalidOption(
                f"subsetter must have a subset(endpoints) method, not {describe(subsetter)}"
            )
        self._source = source
        self._subsetter = subsetter

    def _filter(self, snapshot: Snapshot) -> Snapshot:
        return Snapshot(self._subsetter.subset(snapshot.endpoints), snapshot.ttl)

    def resolve(self) -> Snapshot:
        """The wrapped source's answer, cut to this client's subset."""
        return self._filter(self._source.resolve())

    async def resolve_async(self) -> Snapshot:
        """The same for an asyncio watcher (the wrapped source's ``resolve_async`` if it has
        one, else its ``resolve`` in a thread)."""
        native = getattr(self._source, "resolve_async", None)
        if callable(native):
            return self._filter(await native())
        import asyncio

        return self._filter(await asyncio.to_thread(self._source.resolve))

    def __repr__(self) -> str:
        return f"SubsetSource({describe(self._source)}, {describe(self._subsetter)})"
