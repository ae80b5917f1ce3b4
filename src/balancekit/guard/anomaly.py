"""Abnormal-traffic detection: learn each key's usual request rate and flag keys far above it.

Time is cut into buckets of ``bucket`` seconds (from the injected clock). Per key the detector
keeps the count of the current bucket and a *baseline*: an exponentially weighted moving
average (EWMA) of the counts of past buckets, with weight ``alpha = 1 - 0.5 ** (bucket /
half_life)`` so a bucket's influence halves every ``half_life`` seconds; buckets without requests
count as zero (the baseline decays by ``(1 - alpha) ** gap``, computed in O(1)). A request is
anomalous when its bucket's count exceeds ``threshold = max(min_count, factor * baseline)``:
new keys, with no history, are held to ``min_count`` per bucket. So that a flood cannot teach
the detector that floods are normal, a bucket over its threshold is learned as ``max(min_count,
baseline)`` rather than its count: a flooding key's threshold rises to at most ``factor x
max(min_count, its baseline before the flood)``, while growth within the threshold is learned.

Per request O(1); memory O(max_keys) (least recently seen keys are forgotten first).
Explicit-time EWMA in the manner of linkerd2-proxy's ``linkerd/ewma``.

>>> import balancekit as bk
>>> from balancekit.guard import AnomalyDetector
>>> now = [0.0]
>>> detector = AnomalyDetector(bucket=1, half_life=10, factor=5, min_count=3,
...                            clock=lambda: now[0])
>>> calm = bk.Request(client_addr="198.51.100.7")
>>> for second in range(100):  # two requests a second, every second
...     now[0] = second
...     assert detector.check(calm).allowed and detector.check(calm).allowed
>>> round(detector.baseline(calm), 2)
2.0
>>> # 12 more in this second: 14 in all; beyond the threshold (5 x 2.0, about 10), rejected
>>> [detector.check(calm).allowed for _ in range(12)].count(False)
5
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._clock import check_clock
from .._errors import InvalidOption
from .._options import describe, integer, number
from ..keys import KeyFunc, client_ip
from ..request import Request
from ._verdict import ALLOW, Verdict, check_status, key_text
from .bans import BanList, _check_store
from .store import milliseconds

if TYPE_CHECKING:
    from .store import RedisStore

__all__ = ["AnomalyDetector"]


def _number(name: str, value: object, low: float) -> float:
    return number(name, value, low=low, what=f"a finite number greater than {low:g}")


class _KeyState:
    __slots__ = ("baseline", "bucket", "count")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.count = 0
        self.baseline = 0.0


class AnomalyDetector:
    """Flags keys whose request rate jumps far above their own learned normal rate.

    ``bucket`` (s): counting interval. ``half_life`` (s): how fast the baseline forgets.
    ``factor``: how many times the baseline counts as abnormal. ``min_count``: requests per
    bucket never flagged (and the ceiling for keys without history). ``clock``: seconds,
    default ``time.monotonic``. ``bans``: a :class:`~balancekit.guard.BanList` that gets a
    strike for every flagged request. Rejections: ``status`` 429, rule id ``"anomaly"``.
    Thread-safe (one lock).

    ``store``: a :class:`~balancekit.guard.RedisStore`: each key's bucket count and baseline
    live in one Redis hash updated by one atomic script (schema in
    :mod:`balancekit.guard.store`), so all processes count the key's requests together and
    learn one baseline; buckets are cut by the Redis server's clock (``clock`` and
    ``max_keys`` are then unused: idle keys expire after 20 half-lives). When Redis fails,
    ``check`` answers by the store's ``on_error`` policy and ``baseline`` returns ``None``.
    """

    def __init__(
        self,
        *,
        key: KeyFunc | None = None,
        bucket: float = 1.0,
        half_life: float = 300.0,
        factor: float = 10.0,
        min_count: int = 20,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        bans: BanList | None = None,
        status: int = 429,
        store: RedisStore | None = None,
    ) -> None:
        extractor = key if key is not None else client_ip()
        if not callable(extractor):
            raise InvalidOption(f"key must be a key extractor, got {describe(key)}")
        integer("min_count", min_count, 1, 2**53)
        integer("max_keys", max_keys, 1, 2**53)
        if bans is not None and not isinstance(bans, BanList):
            raise InvalidOption(f"bans must be a BanList or None, got {describe(bans)}")
        self._key = extractor
        # A bucket under a millisecond would turn clock readings into bucket numbers beyond
        # the float range (clock / 5e-324 is inf); half_life and factor stay finite.
        self._bucket = number(
            "bucket", bucket, low=0.001, low_open=False, what="a finite number of seconds >= 0.001"
        )
        half = _number("half_life", half_life, 0.0)
        self._factor = _number("factor", factor, 1.0)
        self._min = min_count
        self._keep = 0.5 ** (self._bucket / half)  # 1 - alpha
        self._clock = check_clock(clock)  # readings checked: balancekit._clock
        self._max_keys = max_keys
        self._bans = bans
        self._status = check_status(status)
        self._states: OrderedDict[str, _KeyState] = OrderedDict()
        self._lock = threading.Lock()
        self._store = _check_store(store)
        if self._store is not None:
            self._bucket_ms = milliseconds("bucket", self._bucket)
            self._ttl_ms = milliseconds("half_life", max(20 * half, 2 * self._bucket))

    def _threshold(self, baseline: float) -> float:
        return max(float(self._min), self._factor * baseline)

    def _advance(self, state: _KeyState, bucket: int) -> None:
        """Close the state's bucket and decay over the empty buckets up to ``bucket``."""
        gap = bucket - state.bucket
        if gap <= 0:
            return
        count = float(state.count)
        if count > self._threshold(state.baseline):
            count = max(float(self._min), state.baseline)
        keep = self._keep
        state.baseline = state.baseline * keep + (1.0 - keep) * count
        if gap > 1:
            state.baseline *= keep ** (gap - 1)
        state.bucket = bucket
        state.count = 0

    def _state(self, ident: str, bucket: int) -> _KeyState:
        state = self._states.get(ident)
        if state is None:
            state = self._states[ident] = _KeyState(bucket)
            if len(self._states) > self._max_keys:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(ident)
            self._advance(state, bucket)
        return state

    def check(self, request: Request) -> Verdict:
        """Count the request; reject it if its key's current rate is abnormal."""
        ident = key_text(self._key(request))
        if self._store is not None:
            store, low = self._store, self._min
            ok, result = store.call(
                lambda: store.anomaly_count(
                    ident, self._bucket_ms, self._keep, self._factor, low, self._ttl_ms
                )
            )
            if not ok or result is None:
                return store.unavailable("anomaly")
            count, baseline = result
        else:
            with self._lock:
                bucket = math.floor(self._clock() / self._bucket)
                state = self._state(ident, bucket)
                state.count += 1
                count, baseline = state.count, state.baseline
        threshold = self._threshold(baseline)
        if count <= threshold:
            return ALLOW
        reason = (
            f"{count} requests in {self._bucket:g}s, normal for this key is {baseline:.2f}"
            f" (threshold {threshold:.1f})"
        )
        banned = self._bans.strike(request, reason) if self._bans is not None else None
        return Verdict.reject(
            reason, status=self._status, rule_ids=("anomaly",), banned_until=banned
        )

    def baseline(self, request: Request) -> float | None:
        """The key's learned requests per bucket as of now, or ``None`` for an unknown key.

        Reading does not change the learned state (it advances a copy). With a store, also
        ``None`` when Redis cannot say.
        """
        ident = key_text(self._key(request))
        if self._store is not None:
            store = self._store
            ok, found = store.call(lambda: store.anomaly_state(ident, self._bucket_ms))
            if not ok or found is None:
                return None
            now_bucket, bucket, count, base = found
            shared = _KeyState(bucket)
            shared.count, shared.baseline = count, base
            self._advance(shared, now_bucket)
            return shared.baseline
        with self._lock:
            state = self._states.get(ident)
            if state is None:
                return None
            copy = _KeyState(state.bucket)
            copy.count, copy.baseline = state.count, state.baseline
            self._advance(copy, math.floor(self._clock() / self._bucket))
            return copy.baseline

    def __len__(self) -> int:
        """Keys currently tracked."""
        return len(self._states)
