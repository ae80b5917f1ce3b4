"""Maglev: a prime-sized lookup table filled from per-endpoint permutations; O(1) lookup.

Source: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
section 3.4 ("Consistent Hashing") and its Pseudocode 1 (``Populate``).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Collection, Generator, Iterable
from typing import Any, Literal

from mypy_extensions import mypyc_attr

from ..._core import Clock
from ..._endpoint import EndpointLike, as_endpoints
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from ._keyed import _MASK64, KeyedBalancer, KeyFunction, _murmur128, key_bytes, utf8
from .maglev_envoy import envoy_key_hash, envoy_permutation, envoy_steps

__all__ = ["Maglev", "is_prime", "maglev_permutation", "maglev_table", "next_prime"]

#: The paper's smaller table size (NSDI 2016, section 5.3 uses 65,537 and 655,373).
DEFAULT_TABLE_SIZE = 65_537
#: Probes of the table between two pauses of a chunked fill (:func:`maglev_steps`). A fill of M
#: slots takes about M ln M probes (the last slots are the hardest to find), ~70 ns each.
CHUNK = 1024
#: Probes of a new table per membership change (~5 ms); a table filled in fewer (about 6,000
#: slots) is built within the change.
STEP = 65_536
#: Probes made by a pick that finds a new table pending (one in ``_keyed.PICK_EVERY``; ~1 ms).
PICK_STEP = 16_384

Fill = Generator[int, None, "array[int]"]
Serving = tuple["array[int]", tuple[EndpointState, ...], frozenset[EndpointState]]

#: Largest table accepted: 16 M slots (64 MB of ``array('I')`` at most).
MAX_TABLE_SIZE = 16_777_259


def is_prime(n: int) -> bool:
    """Trial division (table sizes are at most ~2^24, so at most ~4,100 divisions)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    divisor = 3
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 2
    return True


def next_prime(n: int) -> int:
    """The smallest prime >= ``n`` (e.g. ``next_prime(100 * endpoints)`` for a table size)."""
    candidate = max(2, n)
    while not is_prime(candidate):
        candidate += 1
    return candidate


def maglev_permutation(address: str, size: int) -> tuple[int, int]:
    """``(offset, skip)`` of an endpoint: its preference list is ``(offset + j * skip) % size``.

    From MurmurHash3_x64_128 (seed 0) of the address's UTF-8 bytes: the low 64 bits give
    ``offset = low % size``, the high 64 bits ``skip = high % (size - 1) + 1`` — the paper's two
    independent hashes ``h1``, ``h2`` taken from one 128-bit hash.
    """
    digest = _murmur128(utf8(address))
    return (digest & _MASK64) % size, (digest >> 64) % (size - 1) + 1


def maglev_table(permutations: list[tuple[int, int]], weights: list[int], size: int) -> array[int]:
    """Fill a table of ``size`` slots with endpoint indices (Pseudocode 1, weighted), at once."""
    return run(maglev_steps(permutations, weights, size))


def run(steps: Fill) -> array[int]:
    """Drive a fill (:func:`maglev_steps`, :func:`.maglev_envoy.envoy_steps`) to its end."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        table: array[int] = done.value
        return table


def _next_pause(filled: int, size: int, chunk: int) -> tuple[int, int]:
    """``(probes, filled)``: the next pause of a fill with ``filled`` of ``size`` slots taken,
    about ``chunk`` probes on: a claim with f slots free takes about size / f probes."""
    free = size - filled
    slots = max(1, chunk * free // size)
    return slots * size // free, min(size, filled + slots)


def maglev_steps(permutations: list[tuple[int, int]], weights: list[int], size: int) -> Fill:
    """Fill a table of ``size`` slots with endpoint indices (Pseudocode 1, weighted), yielding
    :data:`CHUNK` every ~CHUNK probes of the table; the table is the generator's value.

    Endpoints take turns in list order; each claims the next free slot of its preference list.
    Weighted: each round an endpoint earns its weight in credit and claims one slot per
    ``max(weights)`` credit, so shares follow weights (equal weights: the paper's algorithm
    exactly). Expected O(size * log size) steps.
    """
    count = len(permutations)
    table = array("I" if count > 0xFFFF else "H", [0]) * size
    if not count:
        return array(table.typecode)
    taken = bytearray(size)  # one byte per slot: ~3-5x cheaper per probe than a list of owners
    positions = [offset for offset, _ in permutations]
    skips = [skip for _, skip in permutations]
    top = max(weights)
    filled = 0
    # Yield every ~CHUNK probes: a claim with f slots free takes about size / f probes, so the
    # slots between two yields shrink as the table fills (checked per slot, not per probe).
    cost, pause = _next_pause(0, size, CHUNK)
    if all(weight == top for weight in weights):  # the paper's algorithm: one claim per turn
        turn = range(count)
        while True:
            for i in turn:
                slot = positions[i]
                if taken[slot]:
                    skip = skips[i]
                    slot += skip
                    if slot >= size:
                        slot -= size
                    while taken[slot]:
                        slot += skip
                        if slot >= size:
                            slot -= size
                taken[slot] = 1
                table[slot] = i
                positions[i] = slot
                filled += 1
                if filled == pause:
                    if filled == size:
                        return table
                    yield cost
                    cost, pause = _next_pause(filled, size, CHUNK)
    credit = [0] * count
    while True:
        for i in range(count):
            credit[i] += weights[i]
            turns, credit[i] = divmod(credit[i], top)
            skip = skips[i]
            slot = positions[i]
            for _ in range(turns):
                while taken[slot]:
                    slot += skip
                    if slot >= size:
                        slot -= size
                taken[slot] = 1
                table[slot] = i
                filled += 1
                if filled == pause:
                    if filled == size:
                        return table
                    yield cost
                    cost, pause = _next_pause(filled, size, CHUNK)
            positions[i] = slot
    # unreachable: the loop returns once every slot is owned


@mypyc_attr(allow_interpreted_subclasses=True)
class Maglev(KeyedBalancer):
    """Google's Maglev hashing: near-perfect balance and O(1) lookup in a prime-sized table.

    Use it for sharding or affinity over large pools where balance matters (caches, stateful
    services): each endpoint owns close to exactly its share of the ``table_size`` slots (the
    paper: within ~1% at table_size > 100 N), where a 160-point ring leaves the busiest at
    1.2-1.3x. The price: removing an endpoint moves its keys and a few others (the paper
    measures a little above the minimum), so it is not *minimally* disruptive like a ring.

    Each endpoint's preference list is a permutation of the slots from its address (see
    :func:`maglev_permutation`); endpoints sorted by address take turns claiming their next
    free preferred slot until the table is full (:func:`maglev_table`). A key goes to
    ``table[hash64(key) % table_size]``. The table is an ``array`` of 2-byte (up to 65,535
    endpoints) or 4-byte indices: 128 KB at the default size, whatever N is.

    ``table_size`` must be prime and at least 10 x the initial number of endpoints. Keep it above
    100 x N for ~1% balance and, with weights, above 100 x total weight / smallest weight, so the
    lightest endpoint still owns 100 slots (:func:`next_prime` helps). Lookup: one MurmurHash3
    and one index, lock-free. Rebuild: O(M log M) probes in pure Python (M = table_size, ~70 ns
    a probe with a ``bytearray`` of taken slots, ``benchmarks/bench_maglev_fill.py``). A
    membership change does not pay for it: the new table fills ``STEP`` probes per change and
    ``PICK_STEP`` per 64th pick while the previous table serves, skipping at pick the endpoints
    that left (an endpoint added since gets keys once the fill completes; ``settle()`` completes
    it now). Only when nothing in the previous table may serve is it built at once. For large
    pools the table-size rule costs: 100 x N slots at N = 10,000 is ~14M probes (~1 s of CPU)
    per membership change; see docs/hashing.md for the table-size rule, or prefer
    :class:`IPHash` (incremental) or :class:`JumpHash` for large pools that change often.
    With a health tracker (``with_health``), an ejected or check-failing endpoint is not taken
    out of the table: its slots are skipped at pick (its keys walk on to the next slot, as with
    ``avoid``), so an ejection and its end never rebuild the table inside the request that
    triggers them, and only the ejected endpoint's keys move.
    ``avoid`` walks on to the next slot whose owner is not avoided.

    ``compat="envoy"`` builds Envoy's table instead, slot for slot (xxHash64 permutations,
    Envoy's weight schedule, keys hashed with xxHash64; see :mod:`.maglev_envoy`), so a Python
    client and an Envoy fleet send the same key to the same endpoint; it needs the ``xxhash``
    package (extra ``envoy``) and, like Envoy, accepts any prime table size.

    >>> lb = Maglev(["a:1", "b:1", "c:1"], table_size=307)
    >>> lb.lookup("user-42").address == lb.lookup("user-42").address
    True
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        table_size: int = DEFAULT_TABLE_SIZE,
        compat: Literal["envoy"] | None = None,
        key: KeyFunction | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if compat not in (None, "envoy"):
            raise InvalidOption(f"compat must be None or 'envoy', not {describe(compat)}")
        if (
            isinstance(table_size, bool)
            or not isinstance(table_size, int)
            or not 7 <= table_size <= MAX_TABLE_SIZE
            or not is_prime(table_size)
        ):
            raise InvalidOption(
                f"table_size must be a prime from 7 to {MAX_TABLE_SIZE}, not {describe(table_size)}"
                f" (e.g. next_prime({describe(table_size)}))"
            )
        endpoints = as_endpoints(endpoints)
        if compat is None and table_size < 10 * len(endpoints):
            raise InvalidOption(
                f"table_size {table_size} is too small for {len(endpoints)} endpoints: use a prime"
                f" >= 100 x the pool size, e.g. {next_prime(100 * len(endpoints))}"
            )
        # Envoy mode: its request-key hash (xxHash64), else None (MurmurHash3, inline below).
        self._xxh64 = envoy_key_hash() if compat == "envoy" else None
        super().__init__(endpoints, key=key, clock=clock)
        self._size = table_size
        # What picks read, in one assignment: the table, its owners, and those of its owners a
        # pick must skip (removed, down, ejected, failing checks since the table was built).
        self._table: Serving = (array("H"), (), frozenset())
        self._shape: dict[EndpointState, int] | None = None  # the membership wanted (up, weights)
        self._building: tuple[Fill, tuple[EndpointState, ...], dict[EndpointState, int]] | None
        self._building = None  # the fill under way, its owners and the membership it is for
        self._permutations: dict[EndpointState, tuple[int, int]] = {}
        self._chosen: frozenset[EndpointState] = frozenset()  # eligible now
        self._ticks = 0  # picks that found a fill under way
        self._start()

    def add(self, endpoint: EndpointLike) -> None:
        """Add an endpoint; refused if the table has no slot left for it (``N > table_size``)."""
        with self._lock:  # check and add in one step: concurrent adds cannot overfill the table
            self._check_room(len(self._members) + 1)
            super().add(endpoint)

    def update(self, endpoints: Iterable[EndpointLike]) -> None:
        """Replace the membership; refused if the table is smaller than the new pool."""
        endpoints = as_endpoints(endpoints)
        with self._lock:
            self._check_room(len(endpoints))
            super().update(endpoints)

    def _check_room(self, count: int) -> None:
        if count > self._size:  # some endpoint would own no slot and never get a key
            raise InvalidOption(
                f"table_size {self._size} is too small for {count} endpoints: build a new Maglev"
                f" with table_size >= 100 x the pool size, e.g. {next_prime(100 * count)}"
            )

    @property
    def table_size(self) -> int:
        """The number of slots (a prime)."""
        return self._size

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        # The table follows the membership an operator set (members that are up, their weights);
        # endpoints a health tracker holds out (ejected, failing checks) are filtered at pick
        # instead, so an ejection or its end never rebuilds the table (issue 11). A new
        # membership gets a new table filled STEP slots per change (and a little per pick)
        # while the previous table serves, its owners that left skipped at pick (issue 11).
        up = [state for state in self._members.values() if state.up]
        shape = {state: state.weight for state in up}
        self._chosen = frozenset(eligible)
        if shape != self._shape:
            self._shape = shape
            if self._building is None:
                self._begin(up)
        self._advance(STEP)
        table, owners, _ = self._table
        held_out = frozenset(state for state in owners if state not in self._chosen)
        self._table = (table, owners, held_out)
        if eligible and len(held_out) == len(owners):  # nothing the old table has may serve
            self._settle()

    def _begin(self, up: list[EndpointState]) -> None:
        """Start filling a table for ``up`` (endpoints sorted by address take turns)."""
        ordered = sorted(up, key=lambda state: state.endpoint.address)
        weights = [state.weight for state in ordered]
        known, size = self._permutations, self._size
        permute = maglev_permutation if self._xxh64 is None else envoy_permutation
        permutations = []
        for state in ordered:
            found = known.get(state)
            if found is None:
                found = known[state] = permute(state.endpoint.address, size)
            permutations.append(found)
        if len(known) > 2 * len(ordered) + 64:  # forget endpoints gone long since
            self._permutations = {state: known[state] for state in ordered}
        if self._xxh64 is None:
            fill = maglev_steps(permutations, weights, size)
        else:
            fill = envoy_steps(permutations, weights, size, CHUNK)
        self._building = (fill, tuple(ordered), {state: state.weight for state in ordered})

    def _advance(self, budget: float) -> None:
        """Fill about ``budget`` more slots of the table under way; swap it in when complete."""
        while self._building is not None:
            fill, owners, shape = self._building
            spent = 0
            try:
                while spent < budget:
                    spent += next(fill)
                return
            except StopIteration as done:
                table: array[int] = done.value
            chosen = self._chosen
            self._table = (table, owners, frozenset(s for s in owners if s not in chosen))
            self._building = None
            if shape != self._shape:  # the membership changed during the fill: fill again
                self._begin([state for state in self._members.values() if state.up])
            budget -= spent
            if budget <= 0:
                return

    def _settle(self) -> None:
        self._advance(float("inf"))

    def _step(self) -> None:
        self._advance(PICK_STEP)

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        table, owners, held_out = self._table  # one read: a concurrent change cannot tear it
        if self._building is not None:
            self._tick()
        key = context if self._key is None else self._key(context)
        if type(key) is not bytes and (type(key) is not str or not key.isascii()):
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        if not owners:
            raise self._nothing_available()
        xxh64 = self._xxh64
        if xxh64 is None:
            slot = (_murmur128(key) & _MASK64) % self._size
        else:
            slot = xxh64(key.encode() if isinstance(key, str) else key) % self._size
        state = owners[table[slot]]
        if (avoid and state.endpoint.address in avoid) or (held_out and state in held_out):
            return self._next_allowed(table, owners, slot, avoid, held_out)
        return state

    def _next_allowed(
        self,
        table: array[int],
        owners: tuple[EndpointState, ...],
        slot: int,
        avoid: Collection[str],
        held_out: frozenset[EndpointState],
    ) -> EndpointState:
        def allowed(state: EndpointState) -> bool:
            return state not in held_out and state.endpoint.address not in avoid

        if len(held_out) >= len(owners) or (avoid and not any(allowed(state) for state in owners)):
            raise self._nothing_available(avoid)
        size = len(table)
        for step in range(1, size):
            state = owners[table[(slot + step) % size]]
            if allowed(state):
                return state
        raise self._nothing_available(avoid)  # an owner with no slot (N > table_size)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            table, owners, held_out = self._table
            eligible = self._eligible()
            up = [state for state in self._members.values() if state.up]
            assert self._shape == {state: state.weight for state in up}
            assert held_out == frozenset(owners) - frozenset(eligible)
            if self._building is None:  # the table is the membership's
                assert [s.endpoint.address for s in owners] == sorted(
                    s.endpoint.address for s in up
                )
            if eligible:
                assert len(held_out) < len(owners), "a pick could find nothing"
            if owners:
                assert len(table) == self._size
                assert max(table) < len(owners)
            else:
                assert len(table) == 0
