"""Maglev: a prime-sized lookup table filled from per-endpoint permutations; O(1) lookup.

Source: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
section 3.4 ("Consistent Hashing") and its Pseudocode 1 (``Populate``).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Collection, Iterable
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr

from ..._core import Clock
from ..._endpoint import Endpoint, EndpointLike, as_endpoints
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from . import _keyed, maglev_envoy
from ._keyed import KeyedBalancer, KeyFunction, key_bytes, utf8
from ._maglev_fill import Fill, maglev_steps, paper_fill, run
from ._maglev_size import MAX_TABLE_SIZE, check_size, is_prime, next_prime
from .maglev_envoy import envoy_key_hash

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF


__all__ = [
    "MAX_TABLE_SIZE",
    "Maglev",
    "is_prime",
    "maglev_permutation",
    "maglev_steps",
    "maglev_table",
    "next_prime",
]

#: The paper's smaller table size (NSDI 2016, section 5.3 uses 65,537 and 655,373).
DEFAULT_TABLE_SIZE = 65_537
#: Work between two pauses of a chunked fill (:func:`maglev_steps`), in probes of the table
#: (~40-70 ns each): a turn with f of M slots free costs ~M / f, a late turn searching slices
#: ~sqrt(128 M / f) (:func:`._maglev_fill.next_pause`), so a fill costs ~6.4 M, not M ln M.
CHUNK = 1024
#: Work on a new table per membership change (~5 ms; the first ~8 changes of a fill, where a
#: turn is counted as one probe but costs ~8, ~35 ms at M = 1,000,003, ~160 ms with a 10^6:1
#: weight); a table filled with less (about 10,000 slots) is built within the change.
STEP = 65_536
#: Work done by a pick that finds a new table pending (one in ``_keyed.PICK_EVERY``; ~1 ms).
PICK_STEP = 16_384

Serving = tuple["array[int]", tuple[EndpointState, ...], frozenset[EndpointState]]


def maglev_permutation(address: str, size: int) -> tuple[int, int]:
    """``(offset, skip)`` of an endpoint: its preference list is ``(offset + j * skip) % size``.

    From MurmurHash3_x64_128 (seed 0) of the address's UTF-8 bytes: the low 64 bits give
    ``offset = low % size``, the high 64 bits ``skip = high % (size - 1) + 1`` — the paper's two
    independent hashes ``h1``, ``h2`` taken from one 128-bit hash. ``size``: a prime from 2 to
    :data:`MAX_TABLE_SIZE`, else :class:`~balancekit.InvalidOption`.
    """
    return _permutation(address, check_size(size))


def _permutation(address: str, size: int) -> tuple[int, int]:
    digest = _murmur128(utf8(address))
    return (digest & _MASK64) % size, (digest >> 64) % (size - 1) + 1


def maglev_table(permutations: list[tuple[int, int]], weights: list[int], size: int) -> array[int]:
    """Fill a table of ``size`` slots with endpoint indices (Pseudocode 1, weighted), at once.

    O(M log M) probes of the table in the paper's order; the late turns, which make most of
    them, search C-speed slices or the few free slots instead (:mod:`._maglev_fill`).
    :class:`~balancekit.InvalidOption` for a size that is not a prime from 2 to
    :data:`MAX_TABLE_SIZE` or an offset, skip or weight out of range, before any work.
    """
    return run(maglev_steps(permutations, weights, size, CHUNK))


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

    Table size, for large pools: ``table_size`` is the prime M you pass (``next_prime(100 *
    N)`` gives one). The paper keeps every endpoint within ~1% of its share at M >= 100 x N
    (section 3.4); with weights, keep M above 100 x total weight / smallest weight, so the
    lightest endpoint still owns ~100 slots. At least 10 x the initial N is required and at
    most :data:`MAX_TABLE_SIZE` (16,777,259) slots are accepted, so the 100 x N rule holds up
    to ~167,000 endpoints. Memory: 2 bytes a slot up to 65,535 endpoints, 4 above (M =
    1,000,003 for N = 10,000: 2 MB; 16.7M slots: 32-64 MB), plus 1 byte a slot while a fill
    runs. The table does not grow with the pool: size it for the largest pool you expect
    (``add`` and ``update`` refuse more endpoints than slots).

    Lookup: one MurmurHash3 and one index, lock-free. Rebuild: O(M log M) probes in the
    paper's order, pure Python; the late turns, which make most of them, read C-speed slices
    of the taken-slot table or scan the few free slots (:mod:`._maglev_fill`), ~6.4 probes'
    worth of work a slot instead of ~ln M (``benchmarks/bench_maglev_fill.py``; M = 1,000,003
    is ~0.5-1 s of CPU). A membership change does not pay for it: the new table fills
    ``STEP`` of work per change and ``PICK_STEP`` per 64th pick while the previous table
    serves, skipping at pick the endpoints that left (an endpoint added since gets keys once
    the fill completes; ``settle()`` completes it now). Only when nothing in the previous
    table may serve is it built at once. At N = 10,000 a fill spans ~100 changes or ~25,000
    picks; for large pools that change often, prefer :class:`IPHash` (incremental) or
    :class:`JumpHash`, or a smaller table (20 x N fills ~5x faster, balance ~5%).
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
        table_size: int | Any = DEFAULT_TABLE_SIZE,
        compat: Literal["envoy"] | Any | None = None,
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
        self._size: int = table_size
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
        permute = _permutation if self._xxh64 is None else maglev_envoy.permutation
        permutations = []
        for state in ordered:
            found = known.get(state)
            if found is None:
                found = known[state] = permute(state.endpoint.address, size)
            permutations.append(found)
        if len(known) > 2 * len(ordered) + 64:  # forget endpoints gone long since
            self._permutations = {state: known[state] for state in ordered}
        if self._xxh64 is None:
            fill = paper_fill(permutations, weights, size, CHUNK)
        else:
            fill = maglev_envoy.envoy_fill(permutations, weights, size, CHUNK)
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

    def lookup(self, context: Any = None) -> Endpoint:
        """The endpoint ``select(context)`` would choose, without a lease or any counting:
        ``_pick`` inlined (issue 11: the call, the text policy's ``isascii`` and the held-out
        test had made lookups ~15 % slower than before the incremental fill)."""
        table, owners, held_out = self._table  # one read: a concurrent change cannot tear it
        if self._building is not None:
            self._tick()
        key = context if self._key is None else self._key(context)
        if type(key) is str:  # one type() for the usual key
            if not key.isascii():  # O(1); mmh3 must never see a lone surrogate (see _keyed)
                key = key_bytes(key, self._key is not None)
        elif type(key) is not bytes:
            key = key_bytes(key, self._key is not None)  # the text policy: see _keyed
        if not owners:
            raise self._nothing_available()
        xxh64 = self._xxh64
        if xxh64 is None:
            slot = (_murmur128(key) & _MASK64) % self._size
        else:
            slot = xxh64(key.encode() if isinstance(key, str) else key) % self._size
        state = owners[table[slot]]
        if held_out and state in held_out:
            return self._next_allowed(table, owners, slot, (), held_out).endpoint
        return state.endpoint

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
