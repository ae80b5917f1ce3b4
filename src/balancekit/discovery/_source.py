"""The interface between service discovery and a balancer: a source answers snapshots.

A *source* is anything with ``resolve() -> Snapshot`` (and optionally ``async resolve_async()``):
the endpoints a service has now and how long that answer stays good (``ttl`` seconds). A
:class:`~balancekit.discovery.Watcher` asks the source again after ``ttl`` and hands the
endpoints to ``balancer.update(...)``, which keeps the live state (in-flight counts, latency
averages, up/down) of endpoints that stay and retires those that go once their leases return.

This is also the hook for registries other than DNS. A Consul source's ``resolve`` makes a
blocking query (``GET /v1/health/service/<name>?passing&index=<last index>&wait=30s``) and
returns with ``ttl=0`` so it is called again at once; an etcd source reads the keys under a
prefix and waits on a watch the same way. Raising any exception keeps the current membership;
the watcher retries with backoff.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from .._endpoint import Endpoint
from .._errors import BalancekitError

__all__ = ["AsyncSource", "DiscoveryError", "Snapshot", "Source"]

#: The longest wait or timeout a discovery option accepts (one day): finite, and far below
#: ``threading.TIMEOUT_MAX``, past which a wait raises OverflowError instead of waiting.
LONGEST_WAIT = 86_400.0


def describe(source: object) -> str:
    """``repr(source)`` for messages and thread names, or its type if its ``__repr__`` raises."""
    try:
        return repr(source)[:200]
    except Exception:
        return f"<{type(source).__name__} (repr failed)>"


class DiscoveryError(BalancekitError):
    """A source could not give a usable answer; the balancer keeps its current endpoints."""


class Snapshot(NamedTuple):
    """A source's answer: the endpoints now, and the seconds until it should be asked again."""

    endpoints: tuple[Endpoint, ...]
    ttl: float


@runtime_checkable
class Source(Protocol):
    """Something that can tell which endpoints a service has (may block, e.g. a long poll)."""

    def resolve(self) -> Snapshot:
        """The endpoints now; raise to keep the balancer's current ones."""
        ...


@runtime_checkable
class AsyncSource(Protocol):
    """A source with a native asyncio variant (otherwise ``resolve`` runs in a thread)."""

    async def resolve_async(self) -> Snapshot:
        """The endpoints now, without blocking the event loop."""
        ...
