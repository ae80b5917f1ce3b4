"""JumpHash: Lamping & Veach's jump consistent hash, with removal of any endpoint (a memento).

Sources: John Lamping and Eric Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
(Google, 2014, arXiv:1406.2294), Figure 1 (``JumpConsistentHash``); the removal scheme follows
Coluzzi, Brocco, Antonucci & Leidi, "MementoHash: A Stateful, Minimal Memory, Best Performing
Consistent Hash Algorithm" (IEEE/ACM Transactions on Networking, 2024).
"""

from __future__ import annotations

import time
from bisect import insort
from collections.abc import Callable, Collection, Iterable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ..._core import Clock, Delta
from ..._endpoint import EndpointLike
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from . import _keyed
from ._keyed import KeyedBalancer, KeyFunction, key_bytes

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF


__all__ = ["JumpHash", "jump_hash"]


def _load_jump_c() -> Callable[[int, int], int] | None:
    """The optional accelerator (extra "jump"): the same function in C, ~10x faster, same
    results; None without it."""
    try:
        from jump import hash as jump_in_c
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return jump_in_c


_jump_c: Final = _load_jump_c()  # Final: a C static in the compiled build, not a dict lookup

_MULTIPLIER: Final = 2862933555777941757  # the paper's 64-bit linear congruential generator
_TWO_31: Final = float(1 << 31)


def jump_hash(key: int, buckets: int) -> int:
    """The paper's ``JumpConsistentHash(key, num_buckets)``, bit for bit (Figure 1).

    ``key`` is an unsigned 64-bit integer; the result is in ``range(buckets)``. The division is
    done in IEEE double precision, as the reference C++ does. O(log buckets).

    >>> [jump_hash(k, 10) for k in (0, 1, 2**63)]
    [0, 6, 5]
    """
    if buckets < 1:
        raise InvalidOption(f"buckets must be >= 1, not {describe(buckets)}")
    key &= _MASK64
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * _MULTIPLIER + 1) & _MASK64
        jump = int((bucket + 1) * (_TWO_31 / float((key >> 33) + 1)))
    return bucket


_GOLDEN: Final = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: spreads bucket numbers over 64 bits
_C1: Final = 0xFF51AFD7ED558CCD  # MurmurHash3's fmix64 constants
_C2: Final = 0xC4CEB9FE1A85EC53


def rehash(hashed: int, bucket: int) -> int:
    """A second, independent 64-bit hash of a key for a removed bucket: MurmurHash3's ``fmix64``
    of ``hash64(key) ^ ((bucket + 1) * 0x9E3779B97F4A7C15 mod 2^64)``."""
    value = hashed ^ (((bucket + 1) * _GOLDEN) & _MASK64)
    value ^= value >> 33
    value = (value * _C1) & _MASK64
    value ^= value >> 33
    value = (value * _C2) & _MASK64
    return value ^ (value >> 33)


class _Buckets:
    """What a pick reads, swapped in with one assignment: the jump range ``size``, bucket -> holder
    (None if removed), and the memento (removed bucket -> working count right after removal)."""

    __slots__ = ("holders", "memento", "size")

    def __init__(
        self, size: int, holders: tuple[EndpointState | None, ...], memento: dict[int, int]
    ) -> None:
        self.size = size
        self.holders = holders
        self.memento = memento


@mypyc_attr(allow_interpreted_subclasses=True)
class JumpHash(KeyedBalancer):
    """Jump consistent hashing: perfect balance, minimal disruption, a few bytes per endpoint.

    Use it for sharding and affinity when balance and memory matter (caches, partitions): keys
    split evenly up to sampling noise, and adding or removing any endpoint moves only the keys
    that must move (1/N of them).

    A key's bucket is ``jump_hash(hash64(key), n)`` (``hash64``: low 64 bits of
    MurmurHash3_x64_128, seed 0); an endpoint of weight w holds w buckets. Jump hash alone can
    only drop the *last* bucket, so removals follow MementoHash: removing bucket b while w
    buckets remain working records ``memento[b] = w``; a key that lands on a removed bucket b
    is rehashed to ``u = rehash(key, b) % memento[b]`` and, while ``u`` was itself removed no
    later than b (``memento[u] >= memento[b]``), replaced by ``memento[u]`` (the bucket that
    logically took its place); then the walk repeats from u. The result is exactly what the
    working buckets would get if the removed one had never existed: a removal moves only the
    removed endpoint's keys, spread evenly over the others. A new endpoint takes the most
    recently removed bucket (undoing that removal) or, with none, bucket n (jump hash's own
    growth): it takes 1/(N+1) of the keys and no other key moves. Removing the last bucket with
    no memento shrinks n, so a pool that only grows and shrinks at the end is plain jump hash.

    The bucket table depends on the order of membership changes, not only on the final set; two
    processes that apply the same changes in the same order agree. ``avoid`` falls back to the
    next working bucket (in bucket order) whose endpoint is not avoided.

    Lookup: O(log n) for jump hash, plus O(1) expected memento steps for keys on a removed
    bucket, lock-free; pure Python, or the ``jump-consistent-hash`` package's C function when it
    is installed (extra ``jump``; tests check both agree). Memory: one tuple slot per bucket and
    one dict entry per removed bucket not yet re-used. A change: O(b log b) for the b buckets
    of the endpoints that changed, plus an O(n) copy in C to publish the table (issue 11).

    >>> lb = JumpHash(["a:1", "b:1", "c:1"])
    >>> lb.lookup("user-42").address == lb.lookup("user-42").address
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        key: KeyFunction | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(endpoints, key=key, clock=clock)
        # the mutable bookkeeping, under the lock
        self._holders: list[EndpointState | None] = []
        self._memento: dict[int, int] = {}
        self._removed: list[int] = []  # removal order; the last is restored first
        self._held: dict[int, list[int]] = {}  # id(state) -> the buckets it holds, ascending
        self._working = 0
        self._published = _Buckets(0, (), {})
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        held = {id(state): state for state in self._holders if state is not None}
        for state in eligible:
            held[id(state)] = state
        self._change(held.values(), eligible)

    def _apply(self, delta: Delta) -> None:
        """Only the endpoints that changed free or take buckets: O(b log b) for the b buckets
        they hold, plus two O(n) copies in C to publish (the tuple and the memento)."""
        if delta.full:
            self._rebuild(self._eligible_list)
        elif delta.size:
            self._change([*delta.removed, *delta.reweighted], [*delta.reweighted, *delta.added])

    def _change(self, shrink: Iterable[EndpointState], grow: Iterable[EndpointState]) -> None:
        """Free the surplus buckets of ``shrink`` (every bucket of one no longer eligible),
        highest bucket first across all of them, then give ``grow`` (join order) the buckets
        their weights lack, the most recently removed first: what comparing the whole table
        with the eligible endpoints would do, for the endpoints that can have changed."""
        surplus: list[int] = []
        for state in shrink:
            buckets = self._held.get(id(state))
            if buckets:
                want = state.weight if state.applied is not None else 0
                if len(buckets) > want:
                    surplus.extend(buckets[want:] if want else buckets)
        for bucket in sorted(surplus, reverse=True):
            if bucket < len(self._holders):  # (all cleared when the last one went)
                self._remove_bucket(bucket)
        for state in sorted(grow, key=lambda s: s.seq):
            have = len(self._held.get(id(state), ()))
            for _ in range(state.weight - have):
                self._add_bucket(state)
        holders = self._holders
        self._published = _Buckets(len(holders), tuple(holders), dict(self._memento))

    def _remove_bucket(self, bucket: int) -> None:
        holders = self._holders
        state = holders[bucket]
        assert state is not None
        buckets = self._held[id(state)]
        buckets.remove(bucket)
        if not buckets:
            del self._held[id(state)]
        self._working -= 1
        if self._working == 0:  # nothing left: start afresh
            holders.clear()
            self._memento.clear()
            self._removed.clear()
            self._held.clear()
        elif bucket == len(holders) - 1 and not self._removed:  # jump hash's own removal
            holders.pop()
        else:
            holders[bucket] = None
            self._memento[bucket] = self._working
            self._removed.append(bucket)

    def _add_bucket(self, state: EndpointState) -> None:
        self._working += 1
        if self._removed:
            bucket = self._removed.pop()
            del self._memento[bucket]
            self._holders[bucket] = state
        else:
            bucket = len(self._holders)
            self._holders.append(state)
        insort(self._held.setdefault(id(state), []), bucket)

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        table = self._published  # one read: a concurrent rebuild cannot tear it
        key = context if self._key is None else self._key(context)
        if type(key) is not bytes and (type(key) is not str or not key.isascii()):
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        count = table.size
        if not count:
            raise self._nothing_available()
        hashed = _murmur128(key) & _MASK64
        if _jump_c is not None:
            bucket = _jump_c(hashed, count)
        else:
            bucket, jump, state_ = -1, 0, hashed
            while jump < count:  # jump_hash, inlined: this loop is the whole cost of a pick
                bucket = jump
                state_ = (state_ * _MULTIPLIER + 1) & _MASK64
                jump = int((bucket + 1) * (_TWO_31 / float((state_ >> 33) + 1)))
        memento = table.memento
        if memento:
            replacer = memento.get(bucket, -1)
            while replacer >= 0:  # landed on a removed bucket: rehash among those left then
                candidate = rehash(hashed, bucket) % replacer
                following = memento.get(candidate, -1)
                while following >= replacer:  # removed no later than `bucket`: its stand-in
                    candidate = following
                    following = memento.get(candidate, -1)
                bucket, replacer = candidate, following
        state = table.holders[bucket]
        assert state is not None
        if avoid and state.endpoint.address in avoid:
            holders = table.holders
            for step in range(1, count):
                other = holders[(bucket + step) % count]
                if other is not None and other.endpoint.address not in avoid:
                    return other
            raise self._nothing_available(avoid)
        return state

    def bucket_of(self, address: str) -> list[int]:
        """The buckets an endpoint holds (empty if it is not eligible)."""
        holders = self._published.holders
        return [i for i, s in enumerate(holders) if s is not None and s.endpoint.address == address]

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            table = self._published
            holders = self._holders
            assert list(table.holders) == holders and table.size == len(holders)
            assert table.memento == self._memento
            eligible = self._eligible()
            assert self._working == sum(state.weight for state in eligible)
            for state in eligible:
                assert sum(1 for held in holders if held is state) == state.weight
                assert self._held[id(state)] == [i for i, h in enumerate(holders) if h is state]
            assert len(self._held) == len(eligible)
            empty = [i for i, held in enumerate(holders) if held is None]
            assert sorted(empty) == sorted(self._removed) == sorted(self._memento)
            for depth, bucket in enumerate(reversed(self._removed)):  # last removed: `working`
                assert self._memento[bucket] == self._working + depth
            assert len(holders) == self._working + len(self._removed)
