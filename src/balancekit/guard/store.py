"""Shared guard state in Redis, so many client processes enforce one limit, one ban list and
one anomaly baseline together.

Pass one :class:`RedisStore` as ``store=`` to :class:`~balancekit.guard.RateLimit`,
:class:`~balancekit.guard.BanList` and :class:`~balancekit.guard.AnomalyDetector`. Rate windows
use the ``limits`` package's own Redis storage (its Lua scripts); bans, strikes and anomaly
counters use the schema below, every key with a TTL, every read-modify-write one Lua script
(atomic in Redis, one round trip). Nothing is a counter that a cancelled request would have to
give back: strikes are sorted-set members that age out, a ban is a key that expires, and an
anomaly count belongs to a time bucket that the next bucket replaces.

Schema (``P`` is ``prefix``, default ``balancekit``; ``K`` the guard's key as
:func:`~balancekit.guard._verdict.key_text` writes it, UTF-8):

=====================  ============  ==============================================  ==========
key                    type          content                                         TTL
=====================  ============  ==============================================  ==========
``P:ban:K``            string        the ban's reason                                ``ban_for``
``P:strikes:K``        sorted set    one member per strike, scored by Redis ``TIME``  ``within``
                                     in ms; trimmed to the last ``within``
``P:anomaly:B:K``      hash          ``b`` bucket number (Redis ``TIME`` / bucket),  ``keep``
                                     ``c`` count in it, ``base`` learned baseline
``P:rate:LIMITER/...``  list/string  ``limits``' moving window / counters            the window
=====================  ============  ==============================================  ==========

Times that several processes must agree on come from the Redis server (``TIME`` inside the
scripts, key expiry), not from each process's clock. ``keep`` for anomaly state is 20 half-lives
(the baseline has decayed to a millionth by then) and at least two buckets. ``B`` is the
detector's bucket in milliseconds: bucket numbers are in its units, so detectors with different
buckets on one store keep apart (sharing one hash, each reset the other's count).

**Failure policy.** Every Redis call is bounded by ``timeout`` (socket connect and read
timeouts, no retries). When a call fails (Redis down, timeout, pool exhausted, an error
reply), the guard answers by ``on_error``: ``"fail_open"`` (default) allows the request,
``"fail_closed"`` rejects it with status 503 and rule id ``"store:unavailable"``. No exception
reaches the request path. After a failure the store does not try Redis again for
``retry_interval`` seconds, then lets one caller probe it while the others still answer by
the policy (so a dead Redis costs one timeout per interval, not one per request)
and logs one warning on the ``balancekit.guard`` logger; the first call that succeeds after that
logs one info line, and enforcement resumes with whatever state Redis has (a restarted Redis
without persistence starts empty). Strikes added while Redis is down are lost.

Thread-safe (redis-py's connection pool; the breaker's state under a lock) and fork-safe
(redis-py opens new connections in a child process).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._clock import check_clock
from .._errors import InvalidOption
from .._options import describe, integer, seconds
from ._verdict import ALLOW, Verdict

if TYPE_CHECKING:
    from limits.storage import Storage

__all__ = ["FailurePolicy", "RedisStore"]

FailurePolicy = Literal["fail_open", "fail_closed"]
T = TypeVar("T")

_log = logging.getLogger("balancekit.guard")

#: The longest TTL a script is asked to set (~31,700 years, far inside Redis' 64-bit ms range).
MAX_TTL_MS = 10**15

_STRIKE = """
if redis.call('PTTL', KEYS[1]) > 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local strikes, within, ban = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - within)
redis.call('ZADD', KEYS[2], now, ARGV[5])
if redis.call('ZCARD', KEYS[2]) >= strikes then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ban)
  return ban
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -strikes)
redis.call('PEXPIRE', KEYS[2], within)
return 0
"""

_ANOMALY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bucket = math.floor(now / tonumber(ARGV[1]))
local keep, factor, low = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'b', 'c', 'base')
local b, c, base = tonumber(state[1]), tonumber(state[2]), tonumber(state[3])
if b == nil or c == nil or base == nil then b, c, base = bucket, 0, 0 end
local gap = bucket - b
if gap > 0 then
  local count = c
  if count > math.max(low, factor * base) then count = math.max(low, base) end
  base = base * keep + (1 - keep) * count
  if gap > 1 then base = base * keep ^ (gap - 1) end
  b, c = bucket, 0
end
c = c + 1
local text = string.format('%.17g', base)
redis.call('HSET', KEYS[1], 'b', string.format('%d', b), 'c', string.format('%d', c), 'base', text)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {c, text}
"""


def _redis() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RedisStore needs the redis package (redis-py): pip install 'balancekit[redis]'"
        ) from None
    return redis


def milliseconds(name: str, value: float) -> int:
    """A duration in whole milliseconds for a Redis TTL (at least 1), or InvalidOption."""
    ms = max(1, math.ceil(value * 1000))
    if ms > MAX_TTL_MS:
        raise InvalidOption(f"{name} must be at most {MAX_TTL_MS // 1000} seconds with a store")
    return ms


class RedisStore:
    """A Redis connection, key prefix, timeout and failure policy shared by guards.

    ``url``: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket); give
    an IP address or a name your resolver answers fast, since name lookup is not bounded by
    ``timeout``. ``prefix``: the first part of every key (module docstring). ``timeout``:
    seconds each connect and each command may take (default 0.1). ``on_error``:
    ``"fail_open"`` or ``"fail_closed"``. ``retry_interval``: seconds to answer by the policy
    without asking Redis after a failure (default 1). ``max_connections``: the pool's bound
    (default 64). ``clock``: for ``retry_interval`` only (default ``time.monotonic``).

    >>> from balancekit.guard import RedisStore
    >>> store = RedisStore("redis://127.0.0.1:6379/0", timeout=0.05, on_error="fail_closed")
    >>> store.on_error
    'fail_closed'
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "balancekit",
        timeout: float = 0.1,
        on_error: FailurePolicy = "fail_open",
        retry_interval: float = 1.0,
        max_connections: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(url, str) or len(url) > 2048:
            raise InvalidOption(f"url must be a redis:// URL string, not {describe(url)}")
        if not isinstance(prefix, str) or not 0 < len(prefix) <= 128:
            raise InvalidOption(
                f"prefix must be a str of 1 to 128 characters, not {describe(prefix)}"
            )
        for name, text in (("url", url), ("prefix", prefix)):
            try:  # a lone surrogate: every call would fail (limits encodes keys strictly)
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidOption(
                    f"{name} must be encodable as UTF-8: {describe(text)}"
                ) from None
        if on_error not in ("fail_open", "fail_closed"):
            raise InvalidOption(
                f"on_error must be 'fail_open' or 'fail_closed', not {describe(on_error)}"
            )
        self.timeout = seconds("timeout", timeout, high=60.0)
        self.retry_interval = seconds("retry_interval", retry_interval, zero=True, high=3600.0)
        max_connections = integer("max_connections", max_connections, 1, 100_000)
        self.url = url
        self.on_error: FailurePolicy = on_error
        self._prefix = prefix.encode("utf-8")
        self._clock = check_clock(clock)  # readings checked: balancekit._clock
        redis = _redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            self._pool = redis.ConnectionPool.from_url(
                url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                max_connections=max_connections,
            )
        except ValueError as exc:
            raise InvalidOption(f"url {describe(url)} is not a Redis URL: {exc}") from None
        self.client = redis.Redis(connection_pool=self._pool)
        self._strike = self.client.register_script(_STRIKE)
        self._anomaly = self.client.register_script(_ANOMALY)
        self._lock = threading.Lock()
        self._retry_at = -math.inf  # clock reading before which Redis is not asked
        self._down = False

    # -- the breaker -------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store answers by policy after a failure."""
        return not self._down

    def call(self, operation: Callable[[], T]) -> tuple[bool, T | None]:
        """Run ``operation`` (Redis calls) unless a recent failure says not to: ``(True,
        result)``, or ``(False, None)`` when Redis failed or is skipped. Never raises an
        :class:`Exception`; cancellation (``BaseException``) passes through."""
        if self._down:
            with self._lock:  # one caller probes Redis per interval; the others wait it out
                now = self._clock()
                if now < self._retry_at:
                    return False, None
                self._retry_at = now + self.retry_interval
        try:
            result = operation()
        except Exception as exc:
            with self._lock:
                self._retry_at = self._clock() + self.retry_interval
                was_down, self._down = self._down, True
            if not was_down:
                _log.warning(
                    "guard store %s unavailable (%s: %s); answering %s for %gs at a time",
                    self._safe_url(), type(exc).__name__, exc, self.on_error, self.retry_interval,
                )  # fmt: skip
            return False, None
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                _log.info("guard store %s available again", self._safe_url())
        return True, result

    def unavailable(self, rule: str) -> Verdict:
        """The verdict of the failure policy for a guard whose rule id is ``rule``."""
        if self.on_error == "fail_open":
            return ALLOW
        return Verdict.reject(
            "shared guard state is unavailable (Redis) and the policy is fail_closed",
            status=503,
            rule_ids=(rule, "store:unavailable"),
        )

    def _safe_url(self) -> str:
        """The URL without a password, for log lines."""
        kwargs = self._pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"redis {where} db {kwargs.get('db', 0)}"

    # -- keys and schema operations ----------------------------------------------------------

    def key(self, kind: str, ident: str) -> bytes:
        """``prefix:kind:ident`` as bytes (a lone surrogate in ``ident`` passes unchanged)."""
        return b"%s:%s:%s" % (self._prefix, kind.encode(), ident.encode("utf-8", "surrogatepass"))

    def ban_state(self, ident: str) -> tuple[int, str]:
        """The ban's remaining milliseconds (<= 0: none) and reason. Raises on Redis errors."""
        key = self.key("ban", ident)
        pipe = self.client.pipeline(transaction=False)
        pipe.pttl(key)
        pipe.get(key)
        ttl, reason = pipe.execute()
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else ""
        return int(ttl), text

    def set_ban(self, ident: str, ms: int, reason: str) -> None:
        """Ban for ``ms`` milliseconds and forget the strikes. Raises on Redis errors."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.key("ban", ident), reason.encode("utf-8", "surrogatepass"), px=ms)
        pipe.delete(self.key("strikes", ident))
        pipe.execute()

    def clear_ban(self, ident: str) -> None:
        """Lift the ban and forget the strikes. Raises on Redis errors."""
        self.client.delete(self.key("ban", ident), self.key("strikes", ident))

    def strike(self, ident: str, strikes: int, within_ms: int, ban_ms: int, reason: str) -> int:
        """Add a strike; the ban's length in ms if this strike bans, 0 if not, -1 if already
        banned. One atomic script. Raises on Redis errors."""
        keys = [self.key("ban", ident), self.key("strikes", ident)]
        token = os.urandom(8).hex()  # distinct members for strikes in the same millisecond
        args = [strikes, within_ms, ban_ms, reason.encode("utf-8", "surrogatepass"), token]
        return int(self._strike(keys=keys, args=args))

    def anomaly_count(
        self, ident: str, bucket_ms: int, keep: float, factor: float, low: int, ttl_ms: int
    ) -> tuple[int, float]:
        """Count a request in the current bucket; its count and the baseline before it. One
        atomic script. Raises on Redis errors."""
        args = [bucket_ms, repr(keep), repr(factor), low, ttl_ms]
        count, base = self._anomaly(keys=[self.key(f"anomaly:{bucket_ms}", ident)], args=args)
        return int(count), float(base)

    def anomaly_state(self, ident: str, bucket_ms: int) -> tuple[int, int, int, float] | None:
        """``(current bucket, state's bucket, count, baseline)`` read without changing them, or
        ``None`` for an unknown key. Raises on Redis errors."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(self.key(f"anomaly:{bucket_ms}", ident), "b", "c", "base")
        (secs, micros), (bucket, count, base) = pipe.execute()
        if bucket is None or count is None or base is None:
            return None
        now_ms = int(secs) * 1000 + int(micros) // 1000
        return now_ms // bucket_ms, int(bucket), int(count), float(base)

    def limits_storage(self) -> Storage:
        """A ``limits`` Redis storage on this store's connection pool, keys under
        ``prefix:rate``."""
        from limits.storage import RedisStorage

        return RedisStorage(
            self.url,
            connection_pool=self._pool,
            key_prefix=self._prefix.decode("utf-8") + ":rate",
        )

    def __repr__(self) -> str:
        return f"RedisStore({self._safe_url()!r}, on_error={self.on_error!r})"


def redis_ident(ident: str) -> str:
    """``ident`` if it encodes as UTF-8, else a digest of it (``limits`` encodes keys strictly,
    so a lone surrogate would be a failed Redis call rather than a key)."""
    try:
        ident.encode("utf-8")
    except UnicodeEncodeError:
        data = ident.encode("utf-8", "surrogatepass")
        return "hs:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    return ident
