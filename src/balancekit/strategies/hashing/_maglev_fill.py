"""Maglev's table fill: Pseudocode 1, with the late turns' search for a free slot made cheap.

Source: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
section 3.4 and Pseudocode 1 (``Populate``): endpoints take turns, and each claims the next slot
of its preference list ``(offset + j * skip) % M`` that nobody has taken yet. The table is the
paper's, slot for slot; only how a turn finds its slot changes.

With f of the M slots free, a turn probes about M / f slots of its list, so a fill makes about
M ln M probes and the last 1% of the slots (f < M / 100) make about two thirds of them
(M x H(f)). A turn therefore searches in one of three ways (:class:`Claims`):

- while M / f <= :data:`SLICE_AT`: one slot at a time in a ``bytearray`` of taken slots;
- beyond: in strided slices of that bytearray. A list of step s splits into t interleaved
  progressions of step r = t s mod M, where (t, r) is a convergent of s / M (extended Euclid):
  |r| is small, so each progression's next slots are one slice ``taken[a:b:r]`` (C speed) and
  ``bytes.find`` gives its first free one; about 2 sqrt(M / f) slices replace M / f probes;
- when f^2 <= :data:`SCAN` x M (the last ~sqrt(M) / 2 slots): the free slots themselves are
  scanned, each placed in the endpoint's list (slot x is at ``(x - here) / s mod M`` positions
  on, dividing by s's inverse modulo the prime M); the nearest is the one the paper's loop
  reaches first.
"""

from __future__ import annotations

from array import array
from collections.abc import Generator, Iterable, Iterator, Sequence
from heapq import heappush, heapreplace
from itertools import repeat
from math import isqrt

from ._maglev_size import check_chunk, check_fill

__all__ = [
    "Claims",
    "Fill",
    "maglev_steps",
    "next_pause",
    "paper_fill",
    "paper_rounds",
    "run",
]

Fill = Generator[int, None, "array[int]"]

#: Expected probes per turn (M / f) beyond which a turn searches in slices, not slot by slot
#: (measured: a slice search costs about as much as 100-150 probes at M / f ~ 128).
SLICE_AT = 128
#: Free slots f are scanned when f * f <= SCAN * M, i.e. f <= sqrt(M) / 2 (measured crossover).
SCAN = 0.25
#: What a turn costs beyond its probes, in probes: the claim loop's own work per turn (fetch
#: the endpoint, mark the slot, set its next slot). Measured at M = 1,000,003 (pure): ~150-200 ns
#: a turn early in a fill (one probe each) against ~45-70 ns a probe later, so ~3-4 probes. A
#: pause every ``chunk`` of work is then ~``chunk`` probes' worth of CPU wherever the fill is;
#: counting a turn as one probe made an early chunk (and a pick's step) ~4x longer than stated.
TURN = 4
#: What scanning one progression of a slice search costs, in probes (~25-30 bytecodes, a probe
#: ~6): a list whose step has no small multiple mod M (t progressions > want / (2 SLICE)) is
#: searched slot by slot instead, which costs ~want / 2 probes and can pause mid-search.
SLICE = 5
#: What a late turn's search costs besides its probes, slices or scan, in probes: the calls,
#: the extended Euclid of ``Claims._pair`` (~100-200 bytecodes).
SEEK = 32
#: Endpoints a round generator looks at per ``next()`` (heap entries: a quarter); an endpoint
#: looked at is counted as a probe of work (~6-10 bytecodes each).
PIECE = 256
#: A heap entry popped and pushed back by a skewed pool's rounds, in probes (~60 bytecodes).
POP = 10


class Claims:
    """The state a fill's turns share: taken slots, each endpoint's next preferred slot, and the
    slow search of a turn whose next preferred slot is taken late in the fill (:meth:`seek`)."""

    __slots__ = (
        "_free",
        "_inverse",
        "backs",
        "next",
        "size",
        "skips",
        "slow_after",
        "spent",
        "taken",
    )

    def __init__(self, permutations: Sequence[tuple[int, int]], size: int) -> None:
        self.size = size
        self.taken = bytearray(size)  # one byte per slot: ~3-5x cheaper per probe than a list
        self.next: list[int] = []  # the slot each endpoint tries next
        self.skips: list[int] = []
        self.backs: list[int] = []  # slot + skip - size, if >= 0
        self.extend(permutations)
        #: Slots filled beyond which a turn whose next slot is taken calls :meth:`seek`.
        self.slow_after = size - size // SLICE_AT
        self._inverse: dict[int, int] = {}
        self._free: list[int] | None = None
        #: Work done late in the fill (turns, probes, slices, scans), counted as it is done.
        self.spent = 0

    def extend(self, permutations: Sequence[tuple[int, int]]) -> None:
        """Take on the next endpoints' ``(offset, skip)`` (a fill adds them a chunk at a time)."""
        size = self.size
        self.next += [offset for offset, _ in permutations]
        self.skips += [skip for _, skip in permutations]
        self.backs += [size - skip for _, skip in permutations]

    def seek(self, i: int, slot: int, free: int, budget: int) -> int:
        """The first free slot after ``slot`` (taken) in endpoint ``i``'s list, ``free`` slots
        free; or -1 if ``budget`` (>= 1) of work found none yet: the search resumes from
        ``next[i]`` (a taken slot of the list, all before it taken too). Adds its work to
        :attr:`spent`."""
        skip = self.skips[i]
        self.spent += SEEK
        if free * free <= SCAN * self.size:
            return self._scan(slot, skip)
        return self._slices(i, slot, skip, free, budget)

    def claim(self, turns: Sequence[int], table: array[int], filled: int, budget: int) -> int:
        """Each endpoint in ``turns``, in order, claims its next free slot (``filled`` taken);
        how many did. Late in the fill the work is counted (:attr:`spent`) and the claims stop
        once it reaches ``budget``, a search possibly half done (:meth:`seek`); early, every
        turn claims (a turn costs ``TURN`` + ~M / f <= 128 probes there)."""
        taken, following, skips, backs, size = (
            self.taken,
            self.next,
            self.skips,
            self.backs,
            self.size,
        )
        if filled < self.slow_after:
            for i in turns:
                slot = following[i]
                if taken[slot]:  # slot by slot: slot + skip, mod size
                    skip, back = skips[i], backs[i]
                    slot = slot - back if slot >= back else slot + skip
                    while taken[slot]:
                        slot = slot - back if slot >= back else slot + skip
                taken[slot] = 1
                table[slot] = i
                following[i] = (slot + skips[i]) % size
            return len(turns)
        free = size - filled
        done = 0
        for i in turns:
            slot = following[i]
            if taken[slot]:
                slot = self.seek(i, slot, free, budget - self.spent)
                if slot < 0:
                    return done
            taken[slot] = 1
            table[slot] = i
            following[i] = (slot + skips[i]) % size
            free -= 1
            done += 1
            self.spent += TURN
            if self.spent >= budget:
                break
        return done

    def _probe(self, i: int, slot: int, budget: int) -> int:
        """Slot by slot from ``slot`` (taken), at most ``budget`` probes (see :meth:`seek`)."""
        taken, skip, size = self.taken, self.skips[i], self.size
        back = size - skip
        probes = 0
        while taken[slot]:
            if probes >= budget:
                self.next[i] = slot
                self.spent += probes
                return -1
            slot = slot - back if slot >= back else slot + skip
            probes += 1
        self.spent += probes
        return slot

    def _scan(self, slot: int, skip: int) -> int:
        taken, size = self.taken, self.size
        free = self._free
        if free is None:
            free, x = [], taken.find(0)
            while x >= 0:
                free.append(x)
                x = taken.find(0, x + 1)
        else:
            free = [x for x in free if not taken[x]]
        self._free = free
        self.spent += 2 * len(free)  # two comprehensions over the free slots
        inverse = self._inverse.get(skip)
        if inverse is None:
            inverse = self._inverse[skip] = pow(skip, -1, size)
        steps = min([(x - slot) * inverse % size for x in free])
        return (slot + steps * skip) % size

    @staticmethod
    def _pair(skip: int, want: int, size: int) -> tuple[int, int]:
        """The smallest t (and r = t skip mod M, signed) whose t progressions of step r cover
        ``want`` positions of the list, each in one slice that wraps around at most once:
        extended Euclid on (M, skip), whose remainders are the (t, |r|) of its convergents."""
        r = skip if 2 * skip <= size else skip - size
        if want * (r if r > 0 else -r) <= size:
            return 1, r
        a, b, ya, yb = size, skip, 0, 1  # invariant: a = ya * skip, b = yb * skip (mod M)
        while True:  # ends by b = 1 (M is prime), which fits as want <= M
            q = a // b
            a, b = b, a - q * b
            ya, yb = yb, ya - q * yb
            t = yb if yb > 0 else -yb
            if -(-want // t) * b <= size:
                return (t, b) if yb > 0 else (t, -b)

    def _slices(self, i: int, slot: int, skip: int, free: int, budget: int) -> int:
        taken, size = self.taken, self.size
        want = min(size, 2 * size // free + 1)
        here = slot + skip - size if slot + skip >= size else slot + skip  # position 1
        while True:
            t, r = self._pair(skip, want, size)
            if 2 * SLICE * t > want:  # no small multiple of the step: probe, ~want / 2 slots
                last = here - skip if here >= skip else here - skip + size  # taken
                return self._probe(i, last, max(SEEK, budget - self.spent))
            self.spent += SLICE
            rows = -(-want // t)
            best = covered = t * rows
            start, a = here, 0
            while a < t and a < best:  # progression a: positions a, a + t, a + 2t, ...
                end = start + rows * r
                if 0 <= end <= size:
                    found = taken[start:end:r].find(0)
                else:  # wraps around the table once
                    head = taken[start::r]
                    found = head.find(0)
                    if found < 0:
                        h = len(head)
                        wrap = start + h * r + (size if r < 0 else -size)
                        found = taken[wrap : end + (size if r < 0 else -size) : r].find(0)
                        if found >= 0:
                            found += h
                if found >= 0 and a + found * t < best:
                    best = a + found * t
                a += 1
                start += skip
                if start >= size:
                    start -= size
            self.spent += SLICE * a
            if best < covered:
                return (here + best * skip) % size
            here = (here + covered * skip) % size
            want = min(size, 2 * want)


def next_pause(filled: int, size: int, chunk: int) -> tuple[int, int]:
    """``(cost, filled)``: the next pause of a fill with ``filled`` of ``size`` slots taken, about
    ``chunk`` probes on. A turn with f slots free costs :data:`TURN` plus about size / f probes,
    or, searching in slices beyond :data:`SLICE_AT`, about sqrt(SLICE_AT x size / f). A pause
    holds at most ``chunk // TURN`` turns, and one turn when a turn alone costs ``chunk``."""
    free = size - filled
    per = size // free
    if per > SLICE_AT:
        per = isqrt(SLICE_AT * per)
    per += TURN
    slots = max(1, chunk // per)
    return slots * per, min(size, filled + slots)


def _let_go(claims: Claims, chunk: int) -> Generator[int, None, None]:
    """Free a finished fill's per-endpoint lists a piece at a time: each endpoint's next slot
    and ``size - skip`` are ints of their own (~10 ns each to free, ~0.2 ms at N = 10,000)."""
    per = max(1, chunk // TURN)
    for held in (claims.next, claims.backs, claims.skips):
        while held:
            del held[-per:]
            yield max(1, TURN * per // 8)


def run(steps: Fill) -> array[int]:
    """Drive a fill (:func:`maglev_steps`, :func:`.maglev_envoy.envoy_steps`) to its end."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        table: array[int] = done.value
        return table


def paper_rounds(weights: Sequence[int], work: list[int] | None = None) -> Iterator[Sequence[int]]:
    """The turns of each round, in order: each round endpoint i earns ``weights[i]`` credit and
    takes one turn per ``max(weights)`` of credit (so in round r it takes
    ``(r + 1) w // top - r w // top`` turns). Endless; O(turns) per round, however skewed.

    Equal weights: every endpoint once a round (the paper). Small ``top``: the rounds repeat
    every ``top`` rounds, so they are listed once. Skewed weights (max > 8 x mean), where most
    endpoints take no turn in most rounds: a heap of each endpoint's next round with a turn.
    A round comes in pieces (their concatenation is the round): no ``next()`` looks at more
    than :data:`PIECE` endpoints (:data:`PIECE` / 4 heap entries), so a fill's pause never
    holds a pass over the pool; ``work[0]`` (if given) counts, in probes, what each piece cost
    beyond its turns, for the fill to count (:func:`fill_by_turns`).
    """
    tally = [0] if work is None else work
    count, top = len(weights), max(weights)  # max, count, sum: C speed
    if weights.count(top) == count:
        yield from repeat(range(count))
    if top <= 64:  # round r's turns depend on r % top only: listed once, piece by piece
        cycle: list[list[int]] = []
        for r in range(top):
            for lo in range(0, count, PIECE):
                piece = [
                    i
                    for i in range(lo, min(count, lo + PIECE))
                    for _ in range((r + 1) * weights[i] // top - r * weights[i] // top)
                ]
                cycle.append(piece)
                tally[0] += min(PIECE, count - lo)
                yield piece
        while True:
            yield from cycle
    if top * count <= 8 * sum(weights):  # most endpoints take a turn most rounds
        credit = [0] * count
        while True:
            for lo in range(0, count, PIECE):
                due: list[int] = []
                for i in range(lo, min(count, lo + PIECE)):
                    times, credit[i] = divmod(credit[i] + weights[i], top)
                    due += [i] * times
                tally[0] += min(PIECE, count - lo)
                yield due
    done = [0] * count  # turns taken so far
    # (round of the next turn, endpoint): the turn after k turns comes in the round r with
    # (r + 1) w >= (k + 1) top, i.e. r = ceil((k + 1) top / w) - 1
    heap: list[tuple[int, int]] = []
    for lo in range(0, count, PIECE):
        for i in range(lo, min(count, lo + PIECE)):
            heappush(heap, ((top + weights[i] - 1) // weights[i] - 1, i))
        tally[0] += 2 * min(PIECE, count - lo)
        yield ()
    while True:
        now = heap[0][0]
        due = []
        while heap[0][0] == now:
            i = heap[0][1]
            w = weights[i]
            times = (now + 1) * w // top - done[i]
            due += [i] * times
            done[i] += times
            heapreplace(heap, (((done[i] + 1) * top + w - 1) // w - 1, i))
            tally[0] += POP
            if len(due) >= PIECE // 4:  # a round of many light turns: in pieces
                yield due
                due = []
        yield due


def maglev_steps(
    permutations: Sequence[tuple[int, int]], weights: Sequence[int], size: int, chunk: int = 1024
) -> Fill:
    """Fill a table of ``size`` slots with endpoint indices (Pseudocode 1, weighted), yielding
    the work done (in probes) every ~``chunk`` probes; the table is the generator's value.

    Endpoints take turns in list order; each claims the next free slot of its preference list.
    Weighted: each round an endpoint earns its weight in credit and claims one slot per
    ``max(weights)`` credit, so shares follow weights (equal weights: the paper's algorithm
    exactly). O(M log M) probes, most of them made C-speed late in the fill (:class:`Claims`).
    ``size`` must be prime (every skip then reaches every slot, and the late searches divide by
    the skip modulo ``size``): :class:`~balancekit.InvalidOption` otherwise, or for an offset,
    skip or weight out of range, before any work (:func:`._maglev_size.check_fill`).
    """
    check_fill(permutations, weights, size)
    return paper_fill(permutations, weights, size, check_chunk(chunk))


def paper_fill(
    permutations: Sequence[tuple[int, int]], weights: Sequence[int], size: int, chunk: int
) -> Fill:
    """:func:`maglev_steps` without the checks (for input built by :class:`.Maglev`)."""
    work = [0]
    return fill_by_turns(permutations, paper_rounds(weights, work), size, chunk, work)


def fill_by_turns(
    permutations: Sequence[tuple[int, int]],
    rounds: Iterable[Sequence[int]],
    size: int,
    chunk: int,
    work: list[int] | None = None,
) -> Fill:
    """Fill a ``size``-slot table from ``rounds`` (each a list of the endpoints whose turn it
    is, in order: the paper's or Envoy's schedule, possibly in pieces), pausing every
    ``chunk``-ish units of work; the one claim loop both layouts share. ``work[0]``: what the
    rounds generator did beyond the turns it handed out (endpoints looked at, heap entries),
    added by it and counted here."""
    count = len(permutations)
    typecode = "I" if count > 0xFFFF else "H"
    if not count:
        return array(typecode)
    # The setup and the teardown pause too (a fill may start and end inside a pick): the
    # endpoints' lists are taken on, and let go, ``chunk // TURN`` endpoints at a time. The
    # table is zeroed in one C step, a pause of its own (~0.05-0.5 ms for 1M 2-byte slots,
    # mostly first touches of its pages): zeroed in pieces, each ``extend`` may copy all of it.
    table = array(typecode, [0]) * size
    claims = Claims((), size)
    yield chunk
    per = max(1, chunk // TURN)
    for start in range(0, count, per):
        claims.extend(permutations[start : start + per])
        yield TURN * per
    filled = 0
    cost, pause = next_pause(0, size, chunk)
    fetched = 0  # work of the round pieces fetched since the last pause
    for turns in rounds:
        if work is not None:
            fetched += work[0]
            work[0] = 0
            if fetched >= chunk:  # pieces that held few turns for their work (skewed weights)
                yield fetched
                fetched = 0
        start, end = 0, len(turns)
        while start < end:  # the round's turns up to the next pause, then the pause
            stop = min(end, start + pause - filled)
            done = claims.claim(turns[start:stop], table, filled, chunk)
            filled += done
            start += done
            spent = claims.spent  # late in the fill: the work counted, not estimated
            if filled == pause or spent >= chunk:
                if filled == size:
                    yield from _let_go(claims, chunk)
                    return table
                claims.spent = 0
                yield (spent if spent else cost) + fetched
                fetched = 0
                cost, pause = next_pause(filled, size, chunk)
    raise AssertionError("unreachable: the rounds go on until the table is full")
