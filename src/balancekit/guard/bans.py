"""Temporary bans after repeated strikes, in memory bounded by ``max_keys``.

A key that earns ``strikes`` strikes within ``within`` seconds is banned for ``ban_for``
seconds (fail2ban's ``maxretry`` / ``findtime`` / ``bantime``). Each key has at most one entry:
either a strike record (the times of its recent strikes, at most ``strikes`` of them) or a ban.
The number of entries never exceeds ``max_keys``. When a new key needs an entry and the list is
full, one entry is evicted, in this order:

1. a ban that has ended, or a strike record whose last strike is older than ``within``;
2. the strike record struck least recently (a partial count is the cheapest state to lose);
3. the live ban that ends soonest (bans are the valuable state, so they go last, and the one
   with the least time left loses least).

Strike records are kept in an ordered dict in order of their last strike (an LRU), bans in a
dict plus a min-heap of end times with lazy invalidation (as Envoy's and Finagle's timer heaps
do), compacted when stale entries outnumber live ones; so every strike, check and eviction is
O(log n) amortised, where the old sweep of every record under the lock cost O(n) per strike
past the cap (5 ms at 100,000 keys).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._clock import check_clock
from .._errors import InvalidOption
from .._options import describe, integer, number
from ..keys import KeyFunc, client_ip
from ..request import Request
from ._verdict import ALLOW, Verdict, check_status, key_text
from .store import milliseconds

if TYPE_CHECKING:
    from .store import RedisStore

__all__ = ["BanList"]

#: The largest count option (strikes, max_keys) accepted: 2**53, where floats stop counting.
MAX_COUNT = 2**53


def _check_store(store: object) -> RedisStore | None:
    """Validate a guard's ``store`` option (a RedisStore or None)."""
    if store is None:
        return None
    from .store import RedisStore

    if not isinstance(store, RedisStore):
        raise InvalidOption(f"store must be a RedisStore or None, got {describe(store)}")
    return store


def check_key(key: object) -> KeyFunc:
    """Validate a guard's ``key`` option (a key extractor)."""
    if not callable(key):
        raise InvalidOption(
            f"key must be a key extractor (e.g. keys.client_ip()), got {describe(key)}"
        )
    return key


class BanList:
    """Temporary bans: a key that earns ``strikes`` strikes within ``within`` seconds is banned
    for ``ban_for`` seconds. Other guards add strikes (``bans=`` option) when they reject.

    As a guard, ``check`` rejects a banned key with ``status`` (403) and rule id ``"ban"``.
    Times come from ``clock`` (default ``time.monotonic``). At most ``max_keys`` keys are
    tracked (bans and strike records together); when full, a new key evicts an expired entry,
    else the least recently struck record, else the ban that ends soonest (module docstring).
    ``check``, ``strike``, ``ban`` and ``unban`` are O(log n) amortised; memory is
    O(max_keys x strikes). Thread-safe (one lock).

    ``store``: a :class:`~balancekit.guard.RedisStore`: bans and strikes live in Redis (a key
    per ban that expires with it, a sorted set of strike times per key; schema in
    :mod:`balancekit.guard.store`), shared by every process using it; times come from Redis
    (``clock`` and ``max_keys`` are then unused: Redis expires the keys), ban ends are reported
    on ``clock``. When Redis fails, ``check`` answers by the store's ``on_error`` policy and a
    strike is dropped (no ban), without raising; ``ban`` and ``unban`` return normally too
    (``ban`` still returns the end it would have set).
    """

    def __init__(
        self,
        *,
        key: KeyFunc | None = None,
        strikes: int = 5,
        within: float = 60.0,
        ban_for: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        status: int = 403,
        store: RedisStore | None = None,
    ) -> None:
        self._key = check_key(key if key is not None else client_ip())
        self._store = _check_store(store)
        self._strikes = integer("strikes", strikes, 1, MAX_COUNT)
        self._within = number("within", within, what="a positive finite number")
        self._ban_for = number("ban_for", ban_for, what="a positive finite number")
        self._max_keys = integer("max_keys", max_keys, 1, MAX_COUNT)
        self._clock = check_clock(clock)  # readings checked: balancekit._clock
        self._status = check_status(status)
        if self._store is not None:  # refused now, not on the first strike
            milliseconds("within", self._within)
            milliseconds("ban_for", self._ban_for)
        self._bans: dict[str, tuple[float, str]] = {}
        self._ends: list[tuple[float, str]] = []  # heap of (end, ident); stale when replaced
        self._records: OrderedDict[str, deque[float]] = OrderedDict()  # by last strike
        self._lock = threading.Lock()

    # -- ban bookkeeping (callers hold the lock) -------------------------------------------------

    def _set_ban(self, ident: str, until: float, reason: str) -> None:
        self._bans[ident] = (until, reason)
        heapq.heappush(self._ends, (until, ident))
        if len(self._ends) > 2 * len(self._bans) + 16:  # compact: O(n) once per n stale pushes
            self._ends = [(end, i) for i, (end, _) in self._bans.items()]
            heapq.heapify(self._ends)

    def _soonest_ban(self) -> tuple[float, str] | None:
        """The live ban that ends first (dropping stale heap entries on the way)."""
        ends, bans = self._ends, self._bans
        while ends:
            end, ident = ends[0]
            entry = bans.get(ident)
            if entry is not None and entry[0] == end:
                return end, ident
            heapq.heappop(ends)
        return None

    def _until(self, ident: str, now: float) -> float | None:
        entry = self._bans.get(ident)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._bans[ident]  # its heap entry is now stale
            return None
        return entry[0]

    def _make_room(self, now: float) -> None:
        """Evict entries (module docstring order) until a new key fits. O(log n) amortised."""
        while len(self._bans) + len(self._records) >= self._max_keys:
            soonest = self._soonest_ban()
            if soonest is not None and soonest[0] <= now:
                del self._bans[soonest[1]]
            elif self._records:
                self._records.popitem(last=False)  # expired or least recently struck
            elif soonest is not None:
                del self._bans[soonest[1]]
            else:  # pragma: no cover - max_keys >= 1 and the list is full, so one exists
                return

    # -- public API -------------------------------------------------------------------------------

    def banned_until(self, request: Request) -> float | None:
        """When the request's key's ban ends (clock reading), or ``None`` if it is not banned
        (or, with a store, if Redis cannot say)."""
        ident = key_text(self._key(request))
        if self._store is not None:
            store = self._store
            ok, state = store.call(lambda: store.ban_state(ident))
            if not ok or state is None or state[0] <= 0:
                return None
            return self._clock() + state[0] / 1000
        with self._lock:
            return self._until(ident, self._clock())

    def check(self, request: Request) -> Verdict:
        """Reject while the request's key is banned."""
        ident = key_text(self._key(request))
        if self._store is not None:
            return self._check_shared(ident)
        with self._lock:
            now = self._clock()
            until = self._until(ident, now)
            if until is None:
                return ALLOW
            reason = self._bans[ident][1]
        return Verdict.reject(
            f"banned until t={until:g} ({reason})",
            status=self._status,
            rule_ids=("ban",),
            retry_after=until - now,
            banned_until=until,
        )

    def _check_shared(self, ident: str) -> Verdict:
        store = self._store
        assert store is not None
        ok, state = store.call(lambda: store.ban_state(ident))
        if not ok or state is None:
            return store.unavailable("ban")
        remaining_ms, reason = state
        if remaining_ms <= 0:
            return ALLOW
        now = self._clock()
        until = now + remaining_ms / 1000
        return Verdict.reject(
            f"banned until t={until:g} ({reason})",
            status=self._status,
            rule_ids=("ban",),
            retry_after=remaining_ms / 1000,
            banned_until=until,
        )

    def ban(
        self, request: Request, *, seconds: float | None = None, reason: str = "manual"
    ) -> float:
        """Ban the request's key now for ``seconds`` (default ``ban_for``); return the end."""
        length = (
            self._ban_for
            if seconds is None
            else number("seconds", seconds, what="a positive finite number")
        )
        if not isinstance(reason, str):
            raise InvalidOption(f"reason must be a str, got {describe(reason)}")
        ident = key_text(self._key(request))
        if self._store is not None:
            store, ms = self._store, milliseconds("seconds", length)
            store.call(lambda: store.set_ban(ident, ms, reason))
            return self._clock() + length
        with self._lock:
            now = self._clock()
            until = now + length
            if self._records.pop(ident, None) is None and ident not in self._bans:
                self._make_room(now)
            self._set_ban(ident, until, reason)
        return until

    def unban(self, request: Request) -> None:
        """Lift the request's key's ban and forget its strikes."""
        ident = key_text(self._key(request))
        if self._store is not None:
            store = self._store
            store.call(lambda: store.clear_ban(ident))
            return
        with self._lock:
            self._bans.pop(ident, None)
            self._records.pop(ident, None)

    def strike(self, request: Request, reason: str) -> float | None:
        """Record an offence; return the ban's end if this strike bans the key, else ``None``."""
        ident = key_text(self._key(request))
        if self._store is not None:
            return self._strike_shared(ident, reason)
        with self._lock:
            now = self._clock()
            if self._until(ident, now) is not None:
                return None
            times = self._records.get(ident)
            if times is None:
                self._make_room(now)
                times = self._records[ident] = deque(maxlen=self._strikes)
            else:
                self._records.move_to_end(ident)
            times.append(now)
            while times[0] <= now - self._within:
                times.popleft()
            if len(times) < self._strikes:
                return None
            del self._records[ident]
            until = now + self._ban_for
            self._set_ban(ident, until, f"{self._strikes} strikes in {self._within:g}s: {reason}")
            return until

    def _strike_shared(self, ident: str, reason: str) -> float | None:
        store = self._store
        assert store is not None
        if not isinstance(reason, str):
            raise InvalidOption(f"reason must be a str, got {describe(reason)}")
        text = f"{self._strikes} strikes in {self._within:g}s: {reason}"
        within, ban = milliseconds("within", self._within), milliseconds("ban_for", self._ban_for)
        ok, banned_ms = store.call(lambda: store.strike(ident, self._strikes, within, ban, text))
        if not ok or banned_ms is None or banned_ms <= 0:
            return None
        return self._clock() + banned_ms / 1000

    def __len__(self) -> int:
        """Keys currently tracked (bans and strike records, expired ones not yet evicted); with
        a store, 0 (the keys are in Redis)."""
        with self._lock:
            return len(self._bans) + len(self._records)

    def _check_invariants(self) -> None:
        """At most ``max_keys`` entries; a key is banned or has a record, never both; every
        live ban has its end in the heap; records hold 1 to ``strikes`` times, in order."""
        with self._lock:
            assert len(self._bans) + len(self._records) <= self._max_keys
            assert not self._bans.keys() & self._records.keys()
            assert len(self._ends) <= 2 * self._max_keys + 16
            heap = set(self._ends)
            for ident, (end, _) in self._bans.items():
                assert (end, ident) in heap
            for times in self._records.values():
                assert 1 <= len(times) <= self._strikes
                assert list(times) == sorted(times)
