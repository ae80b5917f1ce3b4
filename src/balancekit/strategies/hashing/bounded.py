"""Consistent hashing with bounded loads: a ring where a full endpoint passes the key on.

Source: Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018
(arXiv:1608.01350); as deployed in HAProxy (``hash-balance-factor``) and Vimeo's proxy.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from fractions import Fraction
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ..._core import FLOAT_MAX, NATIVE_TOKENS, NEW_LEASE, SUPER, TOKENS, Clock, Delta, not_its_state
from ..._endpoint import Endpoint, EndpointLike
from ..._errors import InvalidOption
from ..._lease import Lease
from ..._options import describe
from ..._state import NATIVE, EndpointState
from . import _keyed
from ._keyed import KeyFunction, key_bytes
from .ring import IPHash

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_NATIVE: Final = NATIVE
_NATIVE_TOKENS: Final = NATIVE_TOKENS
_NEW_LEASE: Final = NEW_LEASE
_TOKENS: Final = TOKENS
_FLOAT_MAX: Final = FLOAT_MAX
_next: Final = next


__all__ = ["BoundedLoadHash"]


@mypyc_attr(allow_interpreted_subclasses=True)
class BoundedLoadHash(IPHash):
    """Consistent hashing whose busiest endpoint never carries more than (1 + epsilon) x average.

    Use it for affinity (cache locality, sticky sessions) under skewed keys: a hot key or an
    unlucky arc cannot overload one endpoint; the overflow spills clockwise to the next endpoint
    with room, which keeps most keys where they were.

    The ring is :class:`IPHash`'s (``replicas`` points per unit of weight, MurmurHash3, seed 0);
    with no requests in flight a key goes exactly where ``IPHash`` sends it. With ``m``
    requests in flight on eligible endpoints (counting the new one) of total weight ``W``,
    endpoint ``i`` may hold at most ``ceil((1 + epsilon) * m * w_i / W)``; a key walks clockwise
    from its hash to the first endpoint under its cap. The caps sum to more than ``m``, so one
    always has room: no endpoint exceeds the bound (with ``avoid`` leaving only full endpoints,
    the first one not avoided takes the request anyway). The paper shows an expected
    O(1/epsilon^2) walk and that a change moves O(1/epsilon^2) keys per key it must move.

    Load is the in-flight count (``select`` to ``release``), kept per endpoint under the
    balancer's lock; picks and releases take it (the key is hashed, and a key function run,
    before it). ``lookup()`` answers where a key would go now without counting it.
    Lookup: O(1/epsilon^2) expected. Membership changes as ``IPHash`` (point by point); the
    eligible set, total weight and load are kept from the delta.

    >>> lb = BoundedLoadHash(["a:1", "b:1"], epsilon=0.0)
    >>> held = [lb.select("same-key") for _ in range(4)]
    >>> sorted(lease.address for lease in held)  # a hot key spreads once its endpoint is full
    ['a:1', 'a:1', 'b:1', 'b:1']
    """

    _observes_release = True

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        epsilon: float | Any = 0.25,
        key: KeyFunction | None = None,
        replicas: int | Any = 160,
        clock: Clock = time.monotonic,
    ) -> None:
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, int | float)
            or not 0 <= epsilon <= 100
        ):
            raise InvalidOption(f"epsilon must be a number from 0 to 100, not {describe(epsilon)}")
        factor = Fraction(1) + Fraction(epsilon).limit_denominator(1_000_000)
        self._factor = (factor.numerator, factor.denominator)  # exact caps, no float rounding
        self._numerator = factor.numerator
        self._scale = 0  # denominator x total weight: the cap test without a division
        self._epsilon = float(epsilon)
        self._load = 0  # in flight on eligible endpoints (under the lock)
        self._total_weight = 0
        self._eligible_ids: set[int] = set()
        super().__init__(endpoints, key=key, replicas=replicas, clock=clock)

    @property
    def epsilon(self) -> float:
        """How far above the average an endpoint's load may go (0.25: 1.25x)."""
        return self._epsilon

    def capacity(self, address: str) -> int:
        """The most requests ``address`` may hold when one more arrives (0 if not eligible)."""
        with self._lock:
            state = self._members.get(address)
            if state is None or id(state) not in self._eligible_ids:
                return 0
            return self._cap(state.weight, self._load + 1)

    def _cap(self, weight: int, arrivals: int) -> int:
        numerator, denominator = self._factor
        return -(-(numerator * arrivals * weight) // (denominator * self._total_weight))

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        super()._rebuild(eligible)
        self._eligible_ids = {id(state) for state in eligible}
        self._total_weight = sum(state.weight for state in eligible)
        self._load = sum(state.load for state in eligible)
        self._scale = self._factor[1] * self._total_weight

    def _apply(self, delta: Delta) -> None:
        """The eligible set, total weight and load kept from the delta (issue 11), then the
        ring's change (a fallback to :meth:`_rebuild` recounts them all)."""
        if not delta.full:
            ids = self._eligible_ids
            for state in delta.removed:
                ids.discard(id(state))
                self._total_weight -= delta.before[id(state)]
                self._load -= state.load
            for state in delta.reweighted:
                self._total_weight += state.weight - delta.before[id(state)]
            for state in delta.added:
                ids.add(id(state))
                self._total_weight += state.weight
                self._load += state.load
        super()._apply(delta)
        self._scale = self._factor[1] * self._total_weight

    def lookup(self, context: Any = None) -> Endpoint:
        """Where ``select(context)`` would send the key now, without a lease or any counting.

        The pick's usual case inlined as in :meth:`_pick` (issue 11: the calls of ``_hash_of``
        and ``_place`` and the ``with`` were ~15 % of a lookup)."""
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        hashed = _murmur128(key) & _MASK64  # reads no state: outside the lock
        lock = self._lock
        lock.acquire()
        try:
            view = self._view
            if view.dirty:  # overlay (or an empty ring): the general path
                return self._place(hashed, ()).endpoint
            points = view.points  # RingView.base_at, inlined: the sentinel ends it
            index = view.starts[hashed >> view.shift]
            while points[index] < hashed:
                index += 1
            state: EndpointState = view.table[view.ids[index]]  # a base point's owner
            load = state.load  # 0: under any cap (see _pick)
            if load and load * self._scale >= self._numerator * (self._load + 1) * state.weight:
                state = self._place(hashed, ())  # over its cap: walk clockwise
            return state.endpoint
        finally:
            lock.release()

    # select and release below are BalancerBase's with _pick and _after_release inlined for the
    # common case (no avoid, no health tracker, no elapsed or a finite float one, which this
    # strategy does not learn from), as LeastConnections does: one Python call fewer each
    # (issue 15). Everything else takes the general path; keep the two in step.

    def select(self, context: Any = None, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint and return a lease on it (see :meth:`BalancerBase.select`)."""
        if avoid or self._health is not None:
            general: Lease = SUPER(BoundedLoadHash, self).select(context, avoid)
            return general
        clock: Any = self._clock  # LOAD_ATTR is specialised by 3.11, LOAD_METHOD of it is not
        started = clock()  # before the pick counts (as BalancerBase.select)
        key = context if self._key is None else self._key(context)  # _pick, inlined
        if type(key) is str:
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        hashed = _murmur128(key) & _MASK64  # reads no state: outside the lock
        lock = self._lock
        lock.acquire()
        try:
            view = self._view
            arrivals = self._load + 1
            if view.dirty:  # overlay (or an empty ring): the general walk
                state = self._place(hashed, ())
            else:
                points = view.points  # RingView.base_at, inlined: the sentinel ends it
                index = view.starts[hashed >> view.shift]
                while points[index] < hashed:
                    index += 1
                state = view.table[view.ids[index]]  # clean: a base point, never the sentinel
                load = state.load  # 0: under any cap (weights, arrivals and factor are >= 1)
                if load and load * self._scale >= self._numerator * arrivals * state.weight:
                    state = self._place(hashed, ())  # over its cap: walk clockwise
            state.load += 1
            self._load = arrivals
        finally:
            lock.release()
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            token = _NATIVE_TOKENS.take()
            state.n_selected += 1
        else:
            token = _next(_TOKENS)
            _next(state.selected)
        self._outstanding[token] = state
        if state.retired:  # removed since the lock was let go: BalancerBase._select_again
            return self._select_again(state, token, started, context, avoid)
        if _NATIVE:  # a native class: one C call
            return Lease(state.endpoint, token, started)
        lease = _NEW_LEASE(Lease)  # pure Python: no __init__ frame (_core.NEW_LEASE)
        lease._endpoint = state.endpoint
        lease._token = token
        lease._started = started
        return lease

    def release(  # ``| Any``: see BalancerBase.release (mypyc's entry checks)
        self, lease: Lease | Any, *, ok: bool | Any = True, elapsed: float | Any | None = None
    ) -> None:
        """Report how the request on ``lease`` ended (see :meth:`BalancerBase.release`)."""
        if self._health is not None or (
            elapsed is not None and (type(elapsed) is not float or not 0.0 <= elapsed <= _FLOAT_MAX)
        ):  # a finite float elapsed stays here: this strategy does not learn from it
            SUPER(BoundedLoadHash, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        failed = not ok  # first: an ok whose truth raises changes nothing (review7)
        try:
            if type(lease) is Lease:
                endpoint = lease._endpoint  # (before the pop: a blank lease has none)
                state = self._outstanding.pop(lease._token, None)
            else:
                state = None
        except (TypeError, LookupError, AttributeError):  # not a lease: the general path says
            state = None
        if (
            state is not None and state.endpoint is not endpoint and not_its_state(state, endpoint)
        ):  # another lease's token: put back, refused below
            self._outstanding[lease._token] = state
            state = None
        if state is None:  # the general path raises InvalidLease
            SUPER(BoundedLoadHash, self).release(lease, ok=ok, elapsed=elapsed)
            return None
        if _NATIVE:  # counted where this build makes it atomic (balancekit._state)
            state.n_released += 1
            if failed:
                state.n_failed += 1
        else:
            _next(state.released)
            if failed:
                _next(state.failed)
        lock = self._lock  # _after_release, inlined
        lock.acquire()
        try:
            state.load -= 1
            if state.applied is not None:  # eligible: see _on_release
                self._load -= 1
        finally:
            lock.release()
        if state.retired:
            self._forget_if_idle(state)
        return None

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        key = context if self._key is None else self._key(context)
        if type(key) is str:
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        hashed = _murmur128(key) & _MASK64  # reads no state: outside the lock
        lock = self._lock
        lock.acquire()  # explicit: cheaper than `with` on the hot path
        try:
            # The usual case inlined (issue 15: a call of _place is ~8 % of select+release at
            # N = 10): a clean ring, nothing avoided, the key's endpoint under its cap.
            view = self._view
            arrivals = self._load + 1
            if view.dirty or avoid:  # overlay (or an empty ring) or avoid: the general path
                state = self._place(hashed, avoid)
            else:
                points = view.points  # RingView.base_at, inlined: the sentinel ends it
                index = view.starts[hashed >> view.shift]
                while points[index] < hashed:
                    index += 1
                state = view.table[view.ids[index]]  # clean: a base point, never the sentinel
                load = state.load  # 0: under any cap (weights, arrivals and factor are >= 1)
                if load and load * self._scale >= self._numerator * arrivals * state.weight:
                    state = self._place(hashed, avoid)  # over its cap: walk clockwise
            state.load += 1
            self._load = arrivals
            return state
        finally:
            lock.release()

    def _claim(self, state: EndpointState) -> None:
        state.load += 1
        self._load += 1

    def _choose(self, context: Any, avoid: Collection[str]) -> EndpointState:
        """Where ``select(context, avoid=avoid)`` would go now, counting nothing (under the
        lock)."""
        return self._place(self._hash_of(context), avoid)

    def _place(self, hashed: int, avoid: Collection[str]) -> EndpointState:
        """The endpoint for a key of hash ``hashed`` now (under the lock): its ring endpoint if
        under its cap and not avoided, else the first such clockwise."""
        view = self._view
        points = view.points  # RingView.base_at, inlined: the sentinel ends it
        index = view.starts[hashed >> view.shift]
        while points[index] < hashed:
            index += 1
        if view.dirty:  # changes not merged into the base yet, or an empty ring
            if self._ring.merging:
                self._tick()  # one pick in PICK_EVERY merges a chunk
            shift, marks = view.shift, view.marks  # RingView.clean, inlined
            bucket, top = hashed >> shift, points[index] >> shift
            if (
                marks[bucket]
                or index >= view.size
                or (
                    top != bucket
                    and (marks[top] or (top > bucket + 1 and view.marked(bucket + 1, top)))
                )
            ):
                resolved = view.resolve(hashed, index)
                if resolved is None:
                    raise self._nothing_available()
                first = resolved
            else:
                first = view.table[view.ids[index]]
        else:  # index < size here: a base point's owner, never the sentinel
            first = view.table[view.ids[index]]
        numerator, denominator = self._factor
        scaled_arrivals = numerator * (self._load + 1)
        scale = denominator * self._total_weight
        if (not avoid or first.endpoint.address not in avoid) and (
            first.load * scale < scaled_arrivals * first.weight
        ):
            return first  # the usual case, without starting a walk

        def free(state: EndpointState) -> bool:  # not avoided and load < cap, exactly
            return (not avoid or state.endpoint.address not in avoid) and (
                state.load * scale < scaled_arrivals * state.weight
            )

        found = view.find(hashed, free)  # clockwise from the key, each point once
        if found is None:  # every endpoint left is full: the first one not avoided
            found = view.find(
                hashed, lambda state: not avoid or state.endpoint.address not in avoid
            )
        if found is None:
            raise self._nothing_available(avoid)
        return found

    def _after_release(
        self, state: EndpointState, lease: Lease, ok: bool, elapsed: float | None
    ) -> None:
        """The load back, inlined (issue 15: two calls, a clock read and three tests were
        ~0.8 of the lock's cost); with a health tracker attached, the base's path. Nothing
        here reads ``elapsed``: the clock is not read for it (as LeastConnections)."""
        if self._health is not None:
            super()._after_release(state, lease, ok, elapsed)
            return
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            if state.applied is not None:  # eligible: see _on_release
                self._load -= 1
        finally:
            lock.release()
            if state.retired:
                self._forget_if_idle(state)

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            state.load -= 1
            # In the eligible set (``applied`` is the weight the index was given, None when
            # not in it; kept by the base under the lock): ``id(state) in _eligible_ids``
            # without the call.
            if state.applied is not None:
                self._load -= 1
        finally:
            lock.release()

    def _on_cancel(self, state: EndpointState) -> None:
        """A cancelled pick: its load back (this strategy learns nothing from outcomes)."""
        self._on_release(state, True, 0.0)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            eligible = self._eligible()
            assert self._eligible_ids == {id(state) for state in eligible}
            assert self._total_weight == sum(state.weight for state in eligible)
            assert self._scale == self._factor[1] * self._total_weight
            assert self._load == sum(state.load for state in eligible)
            for state in [*self._members.values(), *self._retired.values()]:
                assert (state.applied is not None) == (id(state) in self._eligible_ids)
            for state in [*self._members.values(), *self._retired.values()]:
                assert state.load == state.in_flight() >= 0
