"""Rendezvous (highest random weight) hashing, weighted by the logarithmic method.

Sources: Thaler & Ravishankar, "Using name-based mappings to increase hit rates", IEEE/ACM ToN
1998 (HRW); Schindelhauer & Schomaker, "Weighted distributed hash tables", SPAA 2005 (the
logarithmic weighting, ``-w / ln(u)``), as in Jason Resch's "New Hashing Algorithms for Data
Storage" (weighted rendezvous hashing).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Collection, Iterable
from itertools import repeat
from operator import sub, truediv
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ..._core import Clock, Delta
from ..._endpoint import EndpointLike
from ..._state import EndpointState
from . import _keyed
from ._keyed import KeyedBalancer, KeyFunction, hash64, key_bytes, utf8

_log: Final = math.log

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128


__all__ = ["Rendezvous", "rendezvous_score"]

_LOG_2_128: Final = 128 * math.log(2)  # ln(2^128)
_MASK32: Final = 0xFFFFFFFF
#: How far below the largest bid so far a bid may be and still win (``_record_winner``).
_SLACK: Final = 1 << 88


def rendezvous_score(key: bytes | str, address: str) -> int:
    """The bid of ``address`` for ``key``: MurmurHash3_x64_128 of the address's UTF-8 bytes, seeded
    with the low 32 bits of ``hash64(key)``, as an unsigned 128-bit integer.

    Seeding by the key (not by the endpoint) keeps every bid distinct for distinct addresses, and
    lets one C-level ``map`` compute all bids of a lookup.
    """
    return int(_murmur128(utf8(address), hash64(key) & _MASK32))


def _weighted(weight: float, bid: int) -> float:
    """``-weight / ln(bid / 2^128)`` with the limits: a bid of 0 loses, one of ~2^128 wins."""
    if not bid:
        return 0.0
    log_u = _log(float(bid)) - _LOG_2_128
    return math.inf if log_u >= 0 else weight / log_u


#: A weighted pool heaviest first: (encoded addresses, -weights, states), each weight's
#: endpoints in address order.
_Ordered = tuple[list[bytes], list[float], tuple[EndpointState, ...]]


def _heaviest_first(
    groups: dict[int, tuple[list[str], list[bytes], list[EndpointState]]],
) -> _Ordered:
    names: list[bytes] = []
    weights: list[float] = []
    states: list[EndpointState] = []
    for weight in sorted(groups, reverse=True):
        _, group_names, group_states = groups[weight]
        names += group_names
        weights += [-float(weight)] * len(group_names)
        states += group_states
    return names, weights, tuple(states)


def _record_winner(ordered: _Ordered, seed: int) -> EndpointState | None:
    """The weighted winner, scoring only the bids that could win; None where the full path
    must tell (equal best scores, a bid at a limit of the logarithm).

    ``math.log`` and the two float operations of a score cost twice the hashing (issue 15),
    so this scores only *candidates*: walking the bids heaviest weight first, a bid is one
    unless it is more than ``2^88`` below the largest bid before it (bids are below 2^128:
    that is more than 2^-40 of it, relative; one subtraction per new largest bid, where the
    relative margin took a shift too). A bid that is not loses to that earlier one, strictly:
    the earlier endpoint weighs at least as much and its bid is more than 2^-40 larger, so its
    logarithm is more than 2^-40 larger (a double's ulp there is at most 2^-46) and its score
    larger (a quotient's rounding is 2^-53). The candidates' scores are the very doubles the
    full path computes (the same operations on the same ints), so the best of them, if
    unique, is the endpoint the full path's ``index(max(...))`` finds. Each candidate is
    scored as the walk meets it (a list of candidates and ``bids.index`` to find each again
    cost ~1,500 instructions a pick at N = 10). Candidates in a random order: about ln(N) + 1.
    """
    names, weights, states = ordered
    bids = list(map(_murmur128, names, repeat(seed, len(names))))
    best = -1.0
    winner = -1
    tied = False
    top = low = -1
    index = 0
    try:
        for bid in bids:
            if bid >= low:  # a candidate: scored at once (no second walk, no index search)
                score = weights[index] / (_log(bid) - _LOG_2_128)
                if score > best:
                    best = score
                    winner = index
                    tied = False
                elif score == best:
                    tied = True
                if bid > top:
                    top = bid
                    low = bid - _SLACK
            index += 1
    except (ValueError, ZeroDivisionError):  # a bid of 0, or one that rounds to 2^128
        return None
    return None if tied else states[winner]


@mypyc_attr(allow_interpreted_subclasses=True)
class Rendezvous(KeyedBalancer):
    """Highest random weight: every endpoint bids for the key, the highest bid wins.

    Use it for small pools (up to a few dozen endpoints) that need exact minimal disruption and
    weights with no table at all: removing an endpoint moves only its keys, adding one takes only
    the keys it wins, and a weight change moves only keys to or from that endpoint.

    The bid of endpoint e for key k is :func:`rendezvous_score` (a 128-bit hash); ``u = bid /
    2^128`` is uniform in (0, 1), and the score ``-weight / ln(u)``, computed as ``weight /
    (ln(2^128) - ln(bid))`` (the logarithmic method: endpoint i wins with probability
    ``w_i / W``); ``ln(bid)`` is taken of the bid rounded to a double. With equal weights the
    largest bid wins, the same order without the logarithm. Ties (equal 128-bit bids) go to the
    smaller address. ``avoid`` takes the best endpoint not avoided.

    Lookup: O(N), one MurmurHash3 per endpoint computed in C (``map``), about 0.1 us per
    endpoint, lock-free; with weights, scores only for the bids that can win (about
    ln(N) + 1: see ``_record_winner``), the same winners as scoring every endpoint; a change
    O(log N) per endpoint changed plus O(N) copies in C.
    Memory: the encoded addresses.

    >>> lb = Rendezvous(["a:1", "b:1", "c:1"])
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
        # What a lock-free lookup reads, swapped in at once: (encoded addresses, -weights or
        # None when all equal, states) in address order, and the weighted pool heaviest first.
        self._bidders: tuple[
            list[bytes], list[float] | None, tuple[EndpointState, ...], _Ordered | None
        ]
        self._bidders = ([], None, (), None)
        # The same, kept in place under the lock and copied to publish: sorted by address.
        self._addresses: list[str] = []
        self._names: list[bytes] = []
        self._weights: list[float] = []
        self._states: list[EndpointState] = []
        # weight -> (addresses, names, states) of its endpoints, sorted by address
        self._groups: dict[int, tuple[list[str], list[bytes], list[EndpointState]]] = {}
        self._start()

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        ordered = sorted(eligible, key=lambda state: state.endpoint.address)
        self._addresses = [state.endpoint.address for state in ordered]
        self._names = [utf8(address) for address in self._addresses]
        self._weights = [-float(state.weight) for state in ordered]
        self._states = ordered
        self._groups = {}
        for address, name, state in zip(self._addresses, self._names, ordered, strict=True):
            self._join(state.weight, address, name, state)
        self._publish()

    def _join(self, weight: int, address: str, name: bytes, state: EndpointState) -> None:
        group = self._groups.get(weight)
        if group is None:
            group = self._groups[weight] = ([], [], [])
        index = bisect_left(group[0], address)
        group[0].insert(index, address)
        group[1].insert(index, name)
        group[2].insert(index, state)

    def _leave(self, weight: int, address: str) -> None:
        group = self._groups[weight]
        index = bisect_left(group[0], address)
        del group[0][index], group[1][index], group[2][index]
        if not group[0]:
            del self._groups[weight]

    def _apply(self, delta: Delta) -> None:
        """O(log n) to place each changed endpoint by address (and in its weight's group),
        then O(n) copies in C to publish (the lists a lock-free lookup reads are never changed
        in place)."""
        if delta.full:
            self._rebuild(self._eligible_list)
            return
        if not delta.size:
            return
        addresses = self._addresses
        for state in delta.removed:
            address = state.endpoint.address
            index = bisect_left(addresses, address)
            self._leave(-int(self._weights[index]), address)
            del addresses[index], self._names[index], self._weights[index], self._states[index]
        for state in delta.reweighted:
            address = state.endpoint.address
            index = bisect_left(addresses, address)
            self._leave(-int(self._weights[index]), address)
            self._join(state.weight, address, self._names[index], state)
            self._weights[index] = -float(state.weight)
        for state in delta.added:
            address = state.endpoint.address
            index = bisect_left(addresses, address)
            name = utf8(address)
            addresses.insert(index, address)
            self._names.insert(index, name)
            self._weights.insert(index, -float(state.weight))
            self._states.insert(index, state)
            self._join(state.weight, address, name, state)
        self._publish()

    def _publish(self) -> None:
        groups = self._groups
        equal = len(groups) <= 1
        names = list(self._names)
        self._bidders = (
            names,
            None if equal else list(self._weights),
            tuple(self._states),
            None if equal else _heaviest_first(groups),
        )

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        names, weights, states, ordered = self._bidders  # one read: a rebuild cannot tear it
        key = context if self._key is None else self._key(context)  # _hash_of, inlined
        if type(key) is not bytes and (type(key) is not str or not key.isascii()):
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        seed = _murmur128(key) & _MASK32  # the low 32 bits of hash64(key)
        count = len(names)
        if not count:
            raise self._nothing_available()
        bids: list[Any]
        if weights is None:
            bids = list(map(_murmur128, names, repeat(seed, count)))
        else:
            if ordered is not None and not avoid:
                found = _record_winner(ordered, seed)
                if found is not None:
                    return found
            try:  # -w / ln(u) = -w / (ln(bid) - ln(2^128)), all in C, one list; log(int)
                # rounds the int to a double first, exactly as float(bid): same bits
                logs = map(_log, map(_murmur128, names, repeat(seed, count)))
                bids = list(map(truediv, weights, map(sub, logs, repeat(_LOG_2_128))))
            except (ValueError, ZeroDivisionError):  # u rounds to 0 or 1 (p < 2^-53)
                raw = map(_murmur128, names, repeat(seed, count))
                bids = [_weighted(w, bid) for w, bid in zip(weights, raw, strict=True)]
        if avoid:
            return self._best_not_avoided(bids, states, avoid)
        return states[bids.index(max(bids))]

    def _best_not_avoided(
        self, bids: list[Any], states: tuple[EndpointState, ...], avoid: Collection[str]
    ) -> EndpointState:
        best: EndpointState | None = None
        best_bid: Any = None
        for bid, state in zip(bids, states, strict=True):
            if state.endpoint.address not in avoid and (best_bid is None or bid > best_bid):
                best, best_bid = state, bid
        if best is None:
            raise self._nothing_available(avoid)
        return best

    def _check_invariants(self) -> None:
        super()._check_invariants()
        names, weights, states, ordered = self._bidders
        eligible = self._eligible()
        groups = self._groups
        assert {w: g[2] for w, g in groups.items()} == {
            w: [s for s in states if s.weight == w] for w in {s.weight for s in states}
        }
        for addresses, group_names, group_states in groups.values():
            assert addresses == [s.endpoint.address for s in group_states]
            assert group_names == [utf8(a) for a in addresses]
        assert (ordered is None) == (weights is None) == (len(groups) <= 1)
        if ordered is not None:
            assert ordered == _heaviest_first(groups)
            assert ordered[1] == sorted(ordered[1])  # heaviest (most negative) first
        assert len(names) == len(states) == len(eligible)
        assert [s.endpoint.address for s in states] == sorted(s.endpoint.address for s in eligible)
        assert names == [utf8(s.endpoint.address) for s in states]
        assert weights is None or weights == [-float(s.weight) for s in states]
