"""Per-key rate limits (via the ``limits`` library) and concurrency limits.

:class:`BanList` (temporary bans) lives in :mod:`balancekit.guard.bans` and is re-exported here.

Rate windows are not re-implemented: :class:`RateLimit` delegates to ``limits``
(https://limits.readthedocs.io), whose moving-window, fixed-window and sliding-window-counter
strategies run on its memory storage now and on Redis or Memcached later without a change here.
``limits``' storage reads the wall clock itself (``time.time()``) and cannot take an injected
clock, so rate windows run in real time (its memory storage also expires entries from a
``threading.Timer``); everything balancekit keeps itself (bans, strikes, concurrency) uses the
injected clock and is tested without waiting.

>>> import balancekit as bk
>>> from balancekit.guard import BanList, Chain, RateLimit
>>> now = [0.0]
>>> bans = BanList(key=bk.keys.client_ip(), strikes=2, within=60, ban_for=300, clock=lambda: now[0])
>>> guard = Chain([bans, RateLimit("2/hour", key=bk.keys.client_ip(), bans=bans)])
>>> flood = bk.Request(client_addr="203.0.113.9")
>>> [guard.check(flood).status for _ in range(5)]
[None, None, 429, 429, 403]
>>> now[0] = 301.0; bans.check(flood).allowed
True
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

from .._errors import InvalidOption, missing_extra
from .._options import describe, number
from .._options import integer as _integer
from ..keys import KeyFunc, client_ip
from ..request import Request
from ._verdict import ALLOW, Verdict, check_status, key_text
from .bans import MAX_COUNT, BanList, _check_store
from .bans import check_key as _check_key
from .store import redis_ident

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import RateLimiter

    from .store import RedisStore

__all__ = ["BanList", "ConcurrencyLimit", "RateLimit"]

Strategy = Literal["moving-window", "fixed-window", "sliding-window"]


def _positive(name: str, value: object, *, integer: bool = False) -> float:
    if integer:
        return float(_integer(name, value, 1, MAX_COUNT))
    return number(name, value, what="a positive finite number")


def _limits() -> Any:
    """The ``limits`` package, or an ImportError that says how to install it."""
    try:
        import limits
        import limits.storage
        import limits.strategies
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "limits":
            raise
        raise missing_extra("RateLimit", "limits", "guard", "limits") from None
    return limits


def _limiter(strategy: str, storage: Any) -> RateLimiter:
    package = _limits()
    classes: dict[str, type[RateLimiter]] = {
        "moving-window": package.strategies.MovingWindowRateLimiter,
        "fixed-window": package.strategies.FixedWindowRateLimiter,
        "sliding-window": package.strategies.SlidingWindowCounterRateLimiter,
    }
    if not isinstance(strategy, str) or strategy not in classes:
        raise InvalidOption(f"strategy must be one of {sorted(classes)}, got {describe(strategy)}")
    if storage is not None and not isinstance(storage, package.storage.Storage):
        raise InvalidOption(f"storage must be a limits storage or None, got {describe(storage)}")
    return classes[strategy](storage if storage is not None else package.storage.MemoryStorage())


class RateLimit:
    """At most ``limit`` requests per key, e.g. ``"100/minute"`` or ``"10 per second"``.

    ``key``: the extractor (default :func:`~balancekit.keys.client_ip`); requests without a key
    share one bucket. ``strategy``: ``limits``' ``"moving-window"`` (exact, O(limit) memory per
    key), ``"fixed-window"`` (one counter, allows bursts of 2x at window edges) or
    ``"sliding-window"`` (two counters, approximate). ``storage``: a ``limits`` storage (default
    a new ``MemoryStorage``). ``bans``: a :class:`BanList` to which each rejection adds a strike.
    A rejection has ``status`` (429), rule id ``"rate:<limit>"`` and ``retry_after``. O(1) for
    the fixed and sliding windows, O(log limit) for the moving window (``limits``' memory storage).
    ``max_keys``: keys whose windows are kept; beyond it the least recently seen key's window is
    cleared from the storage (its count starts afresh), so memory is O(max_keys) however many
    keys a flood rotates through. Default 100,000 with the default memory storage, and ``0``
    (no bound: the storage's own expiry) with a ``storage`` or ``store`` you pass, whose keys
    other processes may share.

    ``store``: a :class:`~balancekit.guard.RedisStore` instead of ``storage``: the windows live
    in Redis (``limits``' Redis storage on the store's connection pool), so every process using
    the same Redis and limit enforces one limit together, and a Redis failure is answered by
    the store's ``on_error`` policy instead of raising (:mod:`balancekit.guard.store`).
    """

    def __init__(
        self,
        limit: str,
        *,
        key: KeyFunc | None = None,
        strategy: Strategy = "moving-window",
        storage: Any = None,
        bans: BanList | None = None,
        status: int = 429,
        max_keys: int | None = None,
        store: RedisStore | None = None,
    ) -> None:
        if not isinstance(limit, str):
            raise InvalidOption(f"limit must be a string like '100/minute', got {describe(limit)}")
        try:
            self._item: RateLimitItem = _limits().parse(limit)
        except ValueError as exc:
            raise InvalidOption(
                f"limit {describe(limit)} is not a rate like '100/minute': {exc}"
            ) from None
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {describe(bans)}")
        self._key = _check_key(key if key is not None else client_ip())
        self._store = _check_store(store)
        if store is not None:
            if storage is not None:
                raise InvalidOption("pass storage= or store=, not both")
            storage = store.limits_storage()
        self._limiter = _limiter(strategy, storage)
        if max_keys is None:
            max_keys = 100_000 if storage is None else 0
        self._max_keys = _integer("max_keys", max_keys, 0, MAX_COUNT)
        self._seen: OrderedDict[str, None] = OrderedDict()  # keys in use, least recent first
        self._lock = threading.Lock()
        self._bans = bans
        self._status = check_status(status)
        self._rule = f"rate:{limit.replace(' ', '')}"

    def check(self, request: Request) -> Verdict:
        """Count the request against its key's limit; reject if over it."""
        ident = key_text(self._key(request))
        if self._store is not None:
            ident = redis_ident(ident)
        if self._max_keys:
            self._track(ident)
        if self._store is not None:
            return self._check_shared(request, ident)
        if self._limiter.hit(self._item, ident):
            return ALLOW
        stats = self._limiter.get_window_stats(self._item, ident)
        return self._reject(request, stats.reset_time)

    def _check_shared(self, request: Request, ident: str) -> Verdict:
        """``check`` on a Redis store: one hit (one script), the window's reset time only on a
        rejection; the store's policy when Redis fails."""
        assert self._store is not None
        limiter, item = self._limiter, self._item
        ok, admitted = self._store.call(lambda: limiter.hit(item, ident))
        if not ok:
            return self._store.unavailable(self._rule)
        if admitted:
            return ALLOW
        ok, stats = self._store.call(lambda: limiter.get_window_stats(item, ident))
        return self._reject(request, stats.reset_time if ok and stats is not None else time.time())

    def _reject(self, request: Request, reset_time: float) -> Verdict:
        retry = max(0.0, reset_time - time.time())
        banned = (
            self._bans.strike(request, f"over {self._item}") if self._bans is not None else None
        )
        return Verdict.reject(
            f"over the rate limit of {self._item} for this key",
            status=self._status,
            rule_ids=(self._rule,),
            retry_after=retry,
            banned_until=banned,
        )

    def _track(self, ident: str) -> None:
        """Note ``ident`` as the most recent key; beyond ``max_keys``, clear the least recent
        key's window from the storage. O(1)."""
        with self._lock:
            seen = self._seen
            if ident in seen:
                seen.move_to_end(ident)
                return
            seen[ident] = None
            if len(seen) <= self._max_keys:
                return
            oldest = seen.popitem(last=False)[0]
        limiter, item = self._limiter, self._item
        if self._store is not None:
            self._store.call(lambda: limiter.clear(item, oldest))
        else:
            limiter.clear(item, oldest)


class ConcurrencyLimit:
    """At most ``max_in_flight`` requests in progress per key; :meth:`release` ends one.

    A :class:`~balancekit.guard.ReleasingGuard`: an allowed ``check`` takes a slot, so call
    ``release(request)`` when the request ends (a :class:`~balancekit.guard.Chain` does it for
    you when a later guard rejects). An extra release never drives a count below zero.
    Rejections have ``status`` (429) and rule id ``"concurrency:<n>"``; ``bans`` gets a strike.
    O(1), thread-safe.
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        key: KeyFunc | None = None,
        bans: BanList | None = None,
        status: int = 429,
    ) -> None:
        self._max = int(_positive("max_in_flight", max_in_flight, integer=True))
        self._key = _check_key(key if key is not None else client_ip())
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {describe(bans)}")
        self._bans = bans
        self._status = check_status(status)
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, request: Request) -> Verdict:
        """Take a slot for the request's key, or reject when its slots are all taken."""
        ident = key_text(self._key(request))
        with self._lock:
            count = self._active.get(ident, 0)
            if count < self._max:
                self._active[ident] = count + 1
                return ALLOW
        banned = (
            self._bans.strike(request, "too many concurrent requests")
            if self._bans is not None
            else None
        )
        return Verdict.reject(
            f"{count} requests already in progress for this key (max {self._max})",
            status=self._status,
            rule_ids=(f"concurrency:{self._max}",),
            banned_until=banned,
        )

    def release(self, request: Request) -> None:
        """Free the slot an allowed ``check`` took."""
        ident = key_text(self._key(request))
        with self._lock:
            count = self._active.get(ident, 0)
            if count <= 1:
                self._active.pop(ident, None)
            else:
                self._active[ident] = count - 1

    def in_flight(self, request: Request) -> int:
        """Requests in progress for the request's key."""
        with self._lock:
            return self._active.get(key_text(self._key(request)), 0)
