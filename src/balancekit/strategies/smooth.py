"""NGINX's smooth weighted round robin, from any state: a stepper and a schedule builder.

NGINX (``ngx_http_upstream_get_peer`` in ``src/http/ngx_http_upstream_round_robin.c``, 2012):
each step adds every peer's weight to its ``current_weight``, picks the peer with the largest
``current_weight`` (the first in list order on a tie) and subtracts the total weight from it.
From all-zero weights, {5, 1, 1} give ``a a b a c a a``: in every cycle of ``sum(weights)``
steps peer *i* is picked exactly ``weights[i]`` times, spread as evenly as possible.

NGINX keeps ``current_weight`` per peer for the life of the peer, so when peers come and go at
run time (``ngx_http_upstream_zone_resolve_handler`` in ``ngx_http_upstream_zone_module.c``,
re-resolving ``server ... resolve``) the survivors carry theirs and a new peer starts at 0. From
such a state the sequence is *eventually* periodic: a transient, then a cycle of
``sum(weights) / gcd(weights)`` picks with the exact shares. :class:`SmoothWeighted` steps
from any state; :func:`smooth_schedule` finds the transient and the cycle; :class:`SmoothOnline`
steps over a set of endpoints that changes between steps (large pools, issue 11).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import add
from typing import Final

from mypy_extensions import mypyc_attr

from .._state import EndpointState

__all__ = [
    "LAP_LIMIT",
    "SEQ_BITS",
    "Lap",
    "LapFinder",
    "SmoothOnline",
    "SmoothWeighted",
    "smooth_schedule",
    "smooth_weighted_sequence",
]


# A regular Python class in the compiled build (its methods still compiled): mypyc 1.x emits an
# int-returning __next__ of a native class as a tagged int in tp_iternext, which does not build.
@mypyc_attr(native_class=False)
class SmoothWeighted:
    """NGINX's loop, one step per ``next()``, in O(k + log n) for k distinct weights.

    After *s* steps a peer has ``current = c0 + s * w - W * picks``: among peers of one weight
    the order by ``(current desc, index asc)`` changes only when one of them is picked. So each
    weight class keeps a heap keyed by ``(W * picks - c0, index)`` (constant between its
    picks), and a step compares the k class leaders, then re-keys the winner: the same pick as
    NGINX's O(n) loop, exactly (integer arithmetic). ``currents()`` reads every peer's
    ``current_weight``. Not thread-safe: callers hold a lock.
    """

    __slots__ = ("_classes", "_step", "_total", "_weights")

    def __init__(self, weights: Sequence[int], currents: Sequence[int] | None = None) -> None:
        if not weights or min(weights) < 1:
            raise ValueError("smooth weighted round robin needs one or more positive weights")
        if currents is None:
            currents = [0] * len(weights)
        if len(currents) != len(weights):
            raise ValueError("one current weight per weight")
        self._weights = list(weights)
        self._total = sum(weights)
        self._step = 0
        groups: dict[int, list[tuple[int, int]]] = {}
        for index, (weight, current) in enumerate(zip(weights, currents, strict=True)):
            groups.setdefault(weight, []).append((-current, index))
        self._classes = list(groups.items())
        for _, heap in self._classes:
            heapq.heapify(heap)

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        self._step = step = self._step + 1
        best: list[tuple[int, int]] = []
        best_value = best_index = 0
        for weight, heap in self._classes:
            key, index = heap[0]
            value = step * weight - key
            if not best or value > best_value or (value == best_value and index < best_index):
                best, best_value, best_index = heap, value, index
        key, index = best[0]
        heapq.heapreplace(best, (key + self._total, index))
        return index

    def currents(self) -> list[int]:
        """Every peer's ``current_weight`` now, in index order."""
        result = [0] * len(self._weights)
        for weight, heap in self._classes:
            for key, index in heap:
                result[index] = self._step * weight - key
        return result


def smooth_weighted_sequence(weights: Sequence[int]) -> Iterator[int]:
    """Yield, forever, the indices NGINX's smooth weighted round robin picks for ``weights``
    from all-zero current weights (a fresh start: NGINX's configuration load).

    >>> import itertools
    >>> "".join("abc"[i] for i in itertools.islice(smooth_weighted_sequence([5, 1, 1]), 7))
    'aabacaa'
    """
    return SmoothWeighted(weights)


def smooth_schedule(
    weights: Sequence[int], currents: Sequence[int], limit: int
) -> tuple[list[int], list[int]] | None:
    """The picks from ``currents`` as ``(transient, cycle)``, or ``None`` past ``limit`` picks.

    The sequence from any state is eventually periodic; its period divides
    ``L = sum(weights) / gcd(weights)``, since a window of L picks with peer *i* exactly
    ``weights[i] / gcd`` times brings every current weight back where it was. The windows are
    tracked in O(1) per step (how many peers are off their share), so the first such window
    ends the search: O((transient + L) * (k + log n)). ``None`` if that takes more than
    ``limit`` picks, or if L itself is longer (callers then step online).
    """
    divisor = math.gcd(*weights)
    need = [weight // divisor for weight in weights]
    cycle = sum(need)
    if cycle > limit:
        return None
    stepper = SmoothWeighted(weights, currents)
    history: list[int] = []
    window = [0] * len(weights)
    off = len(weights)  # peers whose count in the last `cycle` picks is not their share
    for _ in range(limit):
        index = next(stepper)
        history.append(index)
        off += (window[index] == need[index]) - (window[index] + 1 == need[index])
        window[index] += 1
        if len(history) > cycle:
            old = history[-cycle - 1]
            off += (window[old] == need[old]) - (window[old] - 1 == need[old])
            window[old] -= 1
        if off == 0 and len(history) >= cycle:
            start = len(history) - cycle
            return history[:start], history[start:]
    return None


#: SmoothOnline packs ``(key, seq, ticket)`` into one int, ``key << 96 | seq << 48 | ticket``:
#: a heap of ints sifts faster than one of tuples (one C comparison per step, no tuple built).
#: ``ticket`` is unique per filing, so a dead entry never equals a live one (an endpoint marked
#: down and up again between two steps is filed under the same key and seq).
SEQ_BITS: Final = 48
_SEQ_MASK: Final = (1 << SEQ_BITS) - 1
_KEY_SHIFT: Final = 2 * SEQ_BITS


#: Longest cycle (``sum(weights) / gcd``) whose picks :class:`LapFinder` records and a
#: :class:`Lap` keeps as a lookup table (a tuple of this many references at most).
LAP_LIMIT = 1 << 18


class Lap:
    """One cycle of :class:`SmoothOnline`'s picks, kept so the next picks are a lookup.

    Between two membership changes NGINX's loop settles into a cycle of
    ``L = sum(weights) / gcd`` picks (:func:`smooth_schedule`). Once :class:`LapFinder` has
    seen one, position ``p`` picks ``rotated[p % L]`` without the lock, and the SmoothOnline
    stays as it was at ``base`` (its state at the start of a cycle). A change first brings it
    to the position reached (:meth:`SmoothOnline.skip`), then applies the change in O(log n)
    as before. Within a weight class the cycle's picks are the class's members in one fixed
    order, ``shares`` times each (checked by :meth:`SmoothOnline.lap`), so the state after any
    number of picks is a rotation of each class, found by counting the class's picks.
    """

    __slots__ = ("base", "classes", "kinds", "rotated", "step")

    def __init__(
        self,
        base: int,
        classes: dict[int, tuple[list[int], list[int], int]],
        kinds: bytes,
        rotated: tuple[EndpointState, ...],
        step: int,
    ) -> None:
        self.base = base  # the position whose pick is the cycle's first
        self.classes = classes  # weight -> (entries in pick order, their seqs, class id)
        self.kinds = kinds  # the class id of each pick of the cycle, from base
        self.rotated = rotated  # position p picks rotated[p % L]
        self.step = step  # SmoothOnline's step at base


class LapFinder:
    """Watches SmoothOnline's picks after a change for a whole cycle, in O(1) per pick.

    As :func:`smooth_schedule` does: a window of the last ``L`` picks that gives every endpoint
    exactly its share ``weight / gcd`` brings every current weight back where it was, so the
    picks repeat from there. Counts are kept per endpoint (``EndpointState.seq``) as picks
    arrive; the history is trimmed to the last ``L`` picks. Gives up (``exhausted``) after
    ``4 * L`` picks without one. Created in O(1): nothing is done per endpoint up front.
    """

    __slots__ = ("_divisor", "_history", "_off", "_picks", "_window", "length")

    def __init__(self, endpoints: int, divisor: int, length: int) -> None:
        self.length = length  # L
        self._divisor = divisor
        self._history: list[EndpointState] = []
        self._window: dict[int, int] = {}  # seq -> picks in the last L
        self._off = endpoints  # endpoints whose count in the window is not their share
        self._picks = 0

    @property
    def exhausted(self) -> bool:
        return self._picks >= 4 * self.length

    def push(self, state: EndpointState) -> list[EndpointState] | None:
        """Count one pick; the last ``L`` picks if they are a whole cycle, else None."""
        history, window, divisor, length = self._history, self._window, self._divisor, self.length
        history.append(state)
        self._picks += 1
        seq = state.seq
        have = window.get(seq, 0)
        want = state.weight // divisor
        off = self._off + (have == want) - (have + 1 == want)
        window[seq] = have + 1
        if len(history) > length:
            old = history[-length - 1]
            have = window[old.seq]
            want = old.weight // divisor
            off += (have == want) - (have - 1 == want)
            window[old.seq] = have - 1
            if len(history) > 2 * length:  # trim: amortised O(1)
                del history[: -length - 1]
        self._off = off
        if off == 0 and len(history) >= length:
            return history[-length:]
        return None


class SmoothOnline:
    """NGINX's loop over a set of endpoints that changes between steps, as NGINX changes it.

    The same keys as :class:`SmoothWeighted` (``current = step * weight - key``, a class heap
    per distinct weight, ties to the earliest in join order, ``EndpointState.seq``), but
    endpoints come and go in O(log n): one joining with ``current_weight`` c at step s is
    filed under key ``s * w - c``; one leaving reports its current weight (to be carried if it
    comes back with the same weight) and its entry is dropped lazily. The total weight the
    picked endpoint is charged is the total at that step, so no key needs re-basing when the
    total changes. A step is O(k + log n) for k distinct weights, exactly NGINX's pick.
    Entries are ints, ``key << 96 | seq << 48 | ticket`` (a negative key too: the low bits
    stay seq and ticket).
    Not thread-safe: callers hold a lock.
    """

    __slots__ = ("_classes", "_entries", "_live", "_states", "_step", "_tickets", "_total")

    def __init__(self) -> None:
        self._step = 0
        self._total = 0
        self._classes: dict[int, list[int]] = {}  # weight -> heap of entries; top always live
        self._live: dict[int, int] = {}  # weight -> live entries
        self._entries: dict[int, int] = {}  # seq -> its live entry
        self._states: dict[int, EndpointState] = {}  # seq -> endpoint
        self._tickets = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, state: EndpointState, current: int = 0) -> None:
        """File ``state`` (weight ``state.weight``) with ``current_weight`` ``current``."""
        weight, seq = state.weight, state.seq
        self._tickets = ticket = (self._tickets + 1) & _SEQ_MASK
        entry = (self._step * weight - current) << _KEY_SHIFT | seq << SEQ_BITS | ticket
        self._entries[seq] = entry
        self._states[seq] = state
        heapq.heappush(self._classes.setdefault(weight, []), entry)
        self._live[weight] = self._live.get(weight, 0) + 1
        self._total += weight

    def remove(self, state: EndpointState, weight: int) -> int:
        """Take ``state`` (filed under ``weight``) out; returns its ``current_weight``."""
        seq = state.seq
        entry = self._entries.pop(seq)
        del self._states[seq]
        self._total -= weight
        live = self._live[weight] - 1
        heap = self._classes[weight]
        if not live:
            del self._live[weight], self._classes[weight]
        else:
            self._live[weight] = live
            entries = self._entries
            if len(heap) > 2 * live + 16:  # dead entries outnumber live ones: compact
                heap[:] = [e for e in heap if entries.get(e >> SEQ_BITS & _SEQ_MASK) == e]
                heapq.heapify(heap)
            while entries.get(heap[0] >> SEQ_BITS & _SEQ_MASK) != heap[0]:
                heapq.heappop(heap)
        return self._step * weight - (entry >> _KEY_SHIFT)

    def __next__(self) -> EndpointState:
        self._step = step = self._step + 1
        classes = self._classes
        best: list[int] | None = None
        if len(classes) == 1:  # equal weights (the common case): the one heap's top
            best = next(iter(classes.values()))
        else:
            # NGINX's pick: the largest current weight ``step * weight - key``, ties to the
            # smallest seq. As one int, ``(step * weight << _KEY_SHIFT) - top`` is the current
            # weight shifted up minus the low bits ``seq << SEQ_BITS | ticket``: the largest is
            # the top with the largest current and, among equal ones, the smallest seq (seqs of
            # live tops differ). Two int operations less per class than the key and seq apart.
            best_value = 0
            for weight, heap in classes.items():
                value = (step * weight << _KEY_SHIFT) - heap[0]
                if best is None or value > best_value:
                    best, best_value = heap, value
        if best is None:
            raise StopIteration
        top = best[0]
        seq = top >> SEQ_BITS & _SEQ_MASK
        entry = top + (self._total << _KEY_SHIFT)
        entries = self._entries
        entries[seq] = entry
        heapq.heapreplace(best, entry)
        top = best[0]
        while entries.get(top >> SEQ_BITS & _SEQ_MASK) != top:  # the top stays live
            heapq.heappop(best)
            top = best[0]
        return self._states[seq]

    def lap(self, cycle: list[EndpointState], base: int) -> Lap | None:
        """A :class:`Lap` of ``cycle`` (the last ``L`` picks, a whole cycle) from this state,
        reached at position ``base``; None if a class does not pick its members in one fixed
        order (then the picks stay online). O(L + n), once per cycle found."""
        length = len(cycle)
        picks: dict[int, list[EndpointState]] = {}
        for state in cycle:
            picks.setdefault(state.weight, []).append(state)
        if len(picks) > 255 or picks.keys() != self._classes.keys():
            return None
        ids = {weight: number for number, weight in enumerate(picks)}
        entries, live = self._entries, self._live
        classes: dict[int, tuple[list[int], list[int], int]] = {}
        for weight, chosen in picks.items():
            count = live[weight]
            first = chosen[:count]
            if (
                len(chosen) % count
                or chosen != first * (len(chosen) // count)
                or len({state.seq for state in first}) != count
                or any(self._states.get(state.seq) is not state for state in first)
            ):
                return None
            order = [entries[state.seq] for state in first]
            if order != sorted(order):
                return None
            classes[weight] = (order, [state.seq for state in first], ids[weight])
        kinds = bytes([ids[state.weight] for state in cycle])
        shift = base % length  # position base picks cycle[0]
        rotated = tuple(cycle[length - shift :] + cycle[: length - shift])
        return Lap(base, classes, kinds, rotated, self._step)

    def skip(self, lap: Lap, picks: int) -> None:
        """Step ``picks`` (< L) picks of ``lap``'s cycle from its start, which this state is
        in, in O(n) C-level work and no heap step: each class's members are rotated past its
        picks and charged the total weight once per pick (NGINX's ``current_weight -= total``)."""
        charge = self._total << _KEY_SHIFT
        entries, classes, kinds = self._entries, self._classes, lap.kinds
        for weight, (order, seqs, number) in lap.classes.items():
            taken = kinds.count(number, 0, picks)
            count = len(order)
            rounds, rest = divmod(taken, count)
            low = rounds * charge
            ahead = order[rest:] if not low else list(map(add, order[rest:], repeat(low)))
            heap = ahead + list(map(add, order[:rest], repeat(low + charge)))  # sorted: a heap
            classes[weight] = heap
            entries.update(zip(seqs[rest:] + seqs[:rest], heap, strict=True))
        self._step = lap.step + picks

    def currents(self) -> dict[str, tuple[int, int, int]]:
        """Every endpoint's ``(weight, current_weight, reweights)`` now, by address."""
        step, entries, states = self._step, self._entries, self._states
        return {
            states[entry >> SEQ_BITS & _SEQ_MASK].endpoint.address: (
                weight,
                step * weight - (entry >> _KEY_SHIFT),
                states[entry >> SEQ_BITS & _SEQ_MASK].reweights,
            )
            for weight, heap in self._classes.items()
            for entry in heap
            if entries.get(entry >> SEQ_BITS & _SEQ_MASK) == entry
        }

    def check(self, eligible: list[EndpointState]) -> None:
        """Assert the live entries are exactly ``eligible``, filed under their weights."""
        assert {s.seq for s in eligible} == set(self._entries) == set(self._states)
        assert all(self._states[s.seq] is s for s in eligible)
        assert self._total == sum(state.weight for state in eligible)
        for weight, heap in self._classes.items():
            live = [e for e in heap if self._entries.get(e >> SEQ_BITS & _SEQ_MASK) == e]
            assert len(live) == self._live[weight] > 0 and heap[0] in live
            assert all(self._states[e >> SEQ_BITS & _SEQ_MASK].weight == weight for e in live)
