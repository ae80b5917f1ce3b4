"""One gRPC channel per endpoint, opened and closed as the balancer's membership changes.

gRPC's own load balancing lives inside a channel (C-core's ``pick_first`` and ``round_robin``
over the addresses a resolver returns, grpc/grpc ``src/core/load_balancing/``), and Python cannot
add a policy to it (grpc/grpc#11685). So the balancing channels keep a channel per endpoint
address and pick one per call. The pool is I/O-free: it opens channels with the function it is
given (channel objects connect lazily, on their first call) and hands back the channels to
close, which the sync or the asyncio channel then closes its own way.

When is membership read? At :meth:`ChannelPool.sync` (called by the balanced channel at most
every ``sweep`` seconds, on the next call, and by anyone after a discovery update): a channel
for a new member is opened; one whose endpoint left is closed once no call uses it, since
closing a gRPC channel cancels its calls. A call picked for an address the pool has no channel
for (a member added since the last sync) opens it at once. Thread-safe: one lock, held for
dictionary work and for making a channel object (which does no I/O: grpcio channels connect on
their first call), never while one closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .._core import Balancer

__all__ = ["ChannelPool", "Entry"]

C = TypeVar("C")


class Entry(Generic[C]):
    """One endpoint's channel, the calls using it, and whether its endpoint has left."""

    __slots__ = ("address", "callables", "channel", "retired", "users")

    def __init__(self, address: str, channel: C) -> None:
        self.address = address
        self.channel = channel
        self.users = 0
        self.retired = False
        #: The channel's multi-callables by (kind, method, serializer, deserializer): made once.
        self.callables: dict[tuple[object, ...], Any] = {}


class ChannelPool(Generic[C]):
    """Channels by endpoint address; ``open_channel(address)`` makes one.

    :meth:`acquire` returns the entry for an address (opening it if needed) and counts a user;
    :meth:`release` uncounts it, returning the channel to close if it was the last user of a
    retired entry. O(1) per call; :meth:`sync` is O(members + channels).
    """

    def __init__(
        self,
        balancer: Balancer,
        open_channel: Callable[[str], C],
        *,
        sweep: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._balancer = balancer
        self._open = open_channel
        self._entries: dict[str, Entry[C]] = {}
        self._lock = threading.Lock()
        self._sweep = sweep
        self._clock = clock
        self._next_sweep = clock() + sweep
        self.closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def addresses(self) -> list[str]:
        """The addresses with an open channel (retired ones still in use included)."""
        return list(self._entries)

    def acquire(self, address: str) -> Entry[C]:
        """The entry for ``address``, counted as used until :meth:`release`.

        All under the lock, so that a sync retiring the entry and a call taking it cannot
        interleave (a channel closed under a call); a missing channel is opened there too
        (grpcio channels connect lazily: making one does no I/O).
        """
        with self._lock:
            entry = self._entries.get(address)
            if entry is None:
                if self.closed:
                    raise ValueError("Cannot invoke RPC on closed channel!")
                entry = self._entries[address] = Entry(address, self._open(address))
            entry.users += 1
            return entry

    def release(self, entry: Entry[C]) -> C | None:
        """One call on ``entry`` is over: the channel to close now, if any."""
        with self._lock:
            entry.users -= 1
            if entry.retired and entry.users == 0 and self._entries.get(entry.address) is entry:
                del self._entries[entry.address]
                return entry.channel
        return None

    def due(self) -> bool:
        """Whether :meth:`sync` is due (every ``sweep`` seconds, checked on each call)."""
        return self._clock() >= self._next_sweep

    def sync(self) -> list[C]:
        """Open channels for new members, retire those of endpoints that left: the channels
        to close now (retired and unused). Others close when their last call ends."""
        members = {endpoint.address for endpoint in self._balancer.endpoints}
        closing: list[C] = []
        with self._lock:
            self._next_sweep = self._clock() + self._sweep
            if self.closed:
                return closing
            for address, entry in list(self._entries.items()):
                if address in members:
                    entry.retired = False  # back before its last call ended: keep it
                    continue
                entry.retired = True
                if entry.users == 0:
                    del self._entries[address]
                    closing.append(entry.channel)
            for address in members:
                if address not in self._entries:
                    self._entries[address] = Entry(address, self._open(address))
        return closing

    def close(self) -> list[C]:
        """Stop: every channel, to close now (their calls are cancelled)."""
        with self._lock:
            self.closed = True
            channels = [entry.channel for entry in self._entries.values()]
            self._entries.clear()
        return channels
