"""Per-key rate limits (via the ``limits`` library), concurrency limits and temporary bans.

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

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from .._errors import InvalidOption
from ..keys import KeyFunc, client_ip
from ..request import Request
from ._verdict import ALLOW, Verdict, check_status, key_text

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import RateLimiter

__all__ = ["BanList", "ConcurrencyLimit", "RateLimit"]

Strategy = Literal["moving-window", "fixed-window", "sliding-window"]


def _positive(name: str, value: object, *, integer: bool = False) -> float:
    ok_type = int if integer else (int, float)
    if not isinstance(value, ok_type) or isinstance(value, bool) or not (0 < value < math.inf):
        kind = "a positive int" if integer else "a positive finite number"
        raise InvalidOption(f"{name} must be {kind}, got {value!r}")
    return float(value)


def _check_key(key: object) -> KeyFunc:
    if not callable(key):
        raise InvalidOption(f"key must be a key extractor (e.g. keys.client_ip()), got {key!r}")
    return key


class BanList:
    """Temporary bans: a key that earns ``strikes`` strikes within ``within`` seconds is banned
    for ``ban_for`` seconds. Other guards add strikes (``bans=`` option) when they reject.

    As a guard, ``check`` rejects a banned key with ``status`` (403) and rule id ``"ban"``.
    Times come from ``clock`` (default ``time.monotonic``). Memory is bounded by ``max_keys``:
    beyond it, expired entries are swept and then the oldest strike records dropped. ``check``
    and ``strike`` are O(1) amortised; thread-safe (one lock).
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
    ) -> None:
        self._key = _check_key(key if key is not None else client_ip())
        self._strikes = int(_positive("strikes", strikes, integer=True))
        self._within = _positive("within", within)
        self._ban_for = _positive("ban_for", ban_for)
        self._max_keys = int(_positive("max_keys", max_keys, integer=True))
        if not callable(clock):
            raise InvalidOption(f"clock must be a function returning seconds, got {clock!r}")
        self._clock = clock
        self._status = check_status(status)
        self._bans: dict[str, tuple[float, str]] = {}
        self._records: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _until(self, ident: str, now: float) -> float | None:
        entry = self._bans.get(ident)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._bans[ident]
            return None
        return entry[0]

    def banned_until(self, request: Request) -> float | None:
        """When the request's key's ban ends (clock reading), or ``None`` if it is not banned."""
        with self._lock:
            return self._until(key_text(self._key(request)), self._clock())

    def check(self, request: Request) -> Verdict:
        """Reject while the request's key is banned."""
        ident = key_text(self._key(request))
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

    def ban(
        self, request: Request, *, seconds: float | None = None, reason: str = "manual"
    ) -> float:
        """Ban the request's key now for ``seconds`` (default ``ban_for``); return the end."""
        length = self._ban_for if seconds is None else _positive("seconds", seconds)
        ident = key_text(self._key(request))
        with self._lock:
            until = self._clock() + length
            self._bans[ident] = (until, reason)
            self._records.pop(ident, None)
            self._bound()
        return until

    def unban(self, request: Request) -> None:
        """Lift the request's key's ban and forget its strikes."""
        ident = key_text(self._key(request))
        with self._lock:
            self._bans.pop(ident, None)
            self._records.pop(ident, None)

    def strike(self, request: Request, reason: str) -> float | None:
        """Record an offence; return the ban's end if this strike bans the key, else ``None``."""
        ident = key_text(self._key(request))
        with self._lock:
            now = self._clock()
            if self._until(ident, now) is not None:
                return None
            times = self._records.setdefault(ident, deque())
            times.append(now)
            while times and times[0] <= now - self._within:
                times.popleft()
            if len(times) < self._strikes:
                self._bound()
                return None
            del self._records[ident]
            until = now + self._ban_for
            self._bans[ident] = (until, f"{self._strikes} strikes in {self._within:g}s: {reason}")
            self._bound()
            return until

    def _bound(self) -> None:
        if len(self._bans) + len(self._records) <= self._max_keys:
            return
        now = self._clock()
        for ident in [i for i, (until, _) in self._bans.items() if until <= now]:
            del self._bans[ident]
        for ident in [i for i, t in self._records.items() if not t or t[-1] <= now - self._within]:
            del self._records[ident]
        while self._records and len(self._bans) + len(self._records) > self._max_keys:
            del self._records[next(iter(self._records))]

    def __len__(self) -> int:
        """Keys currently tracked (bans and strike records, expired ones not yet swept)."""
        return len(self._bans) + len(self._records)


def _limits() -> Any:
    """The ``limits`` package, or an ImportError that says how to install it."""
    try:
        import limits
        import limits.storage
        import limits.strategies
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RateLimit needs the 'limits' package: pip install 'balancekit[guard]'"
        ) from None
    return limits


def _limiter(strategy: str, storage: Any) -> RateLimiter:
    package = _limits()
    classes: dict[str, type[RateLimiter]] = {
        "moving-window": package.strategies.MovingWindowRateLimiter,
        "fixed-window": package.strategies.FixedWindowRateLimiter,
        "sliding-window": package.strategies.SlidingWindowCounterRateLimiter,
    }
    if strategy not in classes:
        raise InvalidOption(f"strategy must be one of {sorted(classes)}, got {strategy!r}")
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
    ) -> None:
        if not isinstance(limit, str):
            raise InvalidOption(f"limit must be a string like '100/minute', got {limit!r}")
        try:
            self._item: RateLimitItem = _limits().parse(limit)
        except ValueError as exc:
            raise InvalidOption(f"limit {limit!r} is not a rate like '100/minute': {exc}") from None
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {bans!r}")
        self._key = _check_key(key if key is not None else client_ip())
        self._limiter = _limiter(strategy, storage)
        self._bans = bans
        self._status = check_status(status)
        self._rule = f"rate:{limit.replace(' ', '')}"

    def check(self, request: Request) -> Verdict:
        """Count the request against its key's limit; reject if over it."""
        ident = key_text(self._key(request))
        if self._limiter.hit(self._item, ident):
            return ALLOW
        stats = self._limiter.get_window_stats(self._item, ident)
        retry = max(0.0, stats.reset_time - time.time())
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
