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

from ..._core import Clock, Delta
from ..._endpoint import Endpoint, EndpointLike, as_endpoints
from ..._errors import InvalidOption
from ..._options import describe
from ..._state import EndpointState
from . import _keyed, maglev_envoy
from ._keyed import KeyedBalancer, KeyFunction, key_bytes, utf8
from ._maglev_fill import Fill, maglev_steps, paper_fill, run
from ._maglev_size import MAX_TABLE_SIZE, check_address, check_size, is_prime, next_prime
from .maglev_envoy import envoy_key_hash

#: Final aliases of what picks call: the compiled build reads a module's Final from a C static,
#: where a name imported from another module is a dict lookup on every call (issue 15).
_murmur128: Final = _keyed._murmur128
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_ALL: Final = float("inf")  # the budget of a fill to finish now (settle)


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
#: (~40-70 ns each): a turn with f of M slots free costs ``TURN`` (4) + ~M / f, a late turn
#: searching slices ~sqrt(128 M / f) (:func:`._maglev_fill.next_pause`), so a fill costs
#: ~10 M, not M ln M. A pause holds at most CHUNK / 4 = 256 turns (and the setup pauses too).
CHUNK = 1024
#: Work on a new table per membership change (~3-5 ms of CPU, plus planning the table: a change
#: at N = 10,000 is ~7-9 ms on a loaded machine); a table filled with less (about 10,000 slots)
#: is built within the change. Changes that leave the membership as it was (an ejection,
#: its end, a check verdict) do no fill work: they happen inside the request that reports them.
STEP = 65_536
#: Work done by a pick that finds a new table pending (one pick in :data:`PICK_EVERY`): the
#: fill runs until it has done this much, i.e. one pause (~CHUNK of work, CHUNK / TURN = 256
#: turns at most: ~0.05-0.1 ms of CPU, pure) or a few short ones. Issue 11: was 16,384 with a
#: turn counted as one probe (16,384 turns, 3-6 ms) and finishing a fill started the next one.
PICK_STEP = 512
#: One pick in this many, finding a new table pending, fills PICK_STEP of it (~256 of work a
#: pick on average, as before: a fill of M = 1,000,003 completes in ~40,000 picks alone).
PICK_EVERY = 4

Serving = tuple["array[int]", tuple[EndpointState, ...], frozenset[EndpointState]]
#: A table to fill, prepared at the change that asks for it (so no pick sorts or hashes the
#: pool): owners sorted by address, their permutations and weights, owners as a set, the shape.
Plan = tuple[
    tuple[EndpointState, ...],
    list[tuple[int, int]],
    "array[int]",
    frozenset[EndpointState],
    dict[EndpointState, int],
]


# ``| Any`` on the public functions' parameters: compiled, mypyc checks argument types on entry
# and refused a float size or a set of permutations with TypeError; the documented answer is
# InvalidOption, raised by the checks in the body (as pure Python does).
def maglev_permutation(address: str | Any, size: int | Any) -> tuple[int, int]:
    """``(offset, skip)`` of an endpoint: its preference list is ``(offset + j * skip) % size``.

    From MurmurHash3_x64_128 (seed 0) of the address's UTF-8 bytes: the low 64 bits give
    ``offset = low % size``, the high 64 bits ``skip = high % (size - 1) + 1`` — the paper's two
    independent hashes ``h1``, ``h2`` taken from one 128-bit hash. ``size``: a prime from 2 to
    :data:`MAX_TABLE_SIZE`, else :class:`~balancekit.InvalidOption`.
    """
    return _permutation(check_address(address), check_size(size))


def _permutation(address: str, size: int) -> tuple[int, int]:
    digest = _murmur128(utf8(address))
    return (digest & _MASK64) % size, (digest >> 64) % (size - 1) + 1


def maglev_table(
    permutations: list[tuple[int, int]] | Any, weights: list[int] | Any, size: int | Any
) -> array[int]:
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
    ``STEP`` of work per change (a change is ~7-9 ms at N = 10,000) and one pause of the
    fill (at most ``CHUNK`` = 1,024 probes' worth, 256 turns: ~0.05-0.2 ms) per
    ``PICK_EVERY``-th (4th) pick while the previous table serves, skipping at pick the
    endpoints that left (an endpoint added since gets keys once the fill completes;
    ``settle()`` completes it now). The next fill is planned (sorted, hashed) by the change
    that asks for it, so the pick that completes a fill only swaps it in (not if a newer fill
    is planned and none of its owners may serve while the previous table's may: it is
    dropped). Only when nothing in the previous table may serve is it built at once. A pick
    whose ``avoid`` names every owner of the serving table still eligible goes to the
    eligible endpoints not avoided (by address, the key's slot modulo their count) instead of
    refusing. At N = 10,000 a fill spans ~160
    changes or ~40,000 picks; for large pools that change often, prefer :class:`IPHash`
    (incremental) or :class:`JumpHash`, or a smaller table (20 x N fills ~5x faster,
    balance ~5%).
    With a health tracker (``with_health``), an ejected or check-failing endpoint is not taken
    out of the table: its slots are skipped at pick (its keys walk on to the next slot, as with
    ``avoid``), so an ejection and its end never rebuild the table (nor fill any of it) inside
    the request that triggers them: O(endpoints held out), and only the ejected one's keys move.
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
        self._owner_set: frozenset[EndpointState] = frozenset()  # the table's owners, as a set
        self._shape: dict[EndpointState, int] | None = None  # the membership wanted (up, weights)
        # The fill under way and its plan, and what its owners held out would be now (kept by
        # each change, so the pick that completes the fill swaps it in in O(1)).
        self._building: tuple[Fill, Plan] | None = None
        self._building_held: frozenset[EndpointState] = frozenset()
        # The table to fill once the one under way completes (the membership changed during it).
        self._plan: Plan | None = None
        self._plan_held: frozenset[EndpointState] = frozenset()
        self._permutations: dict[EndpointState, tuple[int, int]] = {}
        self._chosen: set[EndpointState] = set()  # eligible now (kept in place by health changes)
        self._ticks = 0  # picks that found a fill under way
        self._start()

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
        self._chosen = set(eligible)
        self._reshape(bool(eligible))

    def _reshape(self, any_eligible: bool) -> None:
        """Follow the membership (members up, weights) and the eligible set :attr:`_chosen`:
        O(N) (what a change of membership may cost; it happens outside any request)."""
        up = [state for state in self._members.values() if state.up]
        shape = {state: state.weight for state in up}
        chosen = self._chosen
        changed = shape != self._shape
        if changed:
            self._shape = shape
            building = self._building
            # the table wanted next: none if the fill under way is for this membership
            if building and building[1][4] == shape:
                self._plan = None
            else:
                self._plan = self._planned(up, shape)
        # What each table's owners held out are now (C-speed set differences, kept here so that
        # the pick which completes a fill swaps it in without a pass over the pool).
        table, owners, _ = self._table
        held_out = self._owner_set - chosen
        self._table = (table, owners, held_out)
        if self._building is not None:
            self._building_held = self._building[1][3] - chosen
        if self._plan is not None:
            self._plan_held = self._plan[3] - chosen
            if self._building is None:
                self._begin()
        if changed:  # a change of membership fills STEP; a health change inside a request, none
            self._advance(STEP)
        table, owners, held_out = self._table
        if any_eligible and len(held_out) == len(owners):  # nothing the old table may serve
            self._settle()

    def _apply(self, delta: Delta) -> None:
        """A change that leaves the membership the table follows as it was (an ejection or its
        end, a check verdict, a panic flip: every endpoint touched is still exactly as up and as
        heavy as the table has it) costs O(what changed + held out), no fill work and no pass
        over the pool: it happens inside the ``release()`` or ``select()`` that reports it.
        Any other change follows the new membership (:meth:`_reshape`, O(N)). The eligible
        set is kept in place either way: a change leaves no new O(N) set for the collector."""
        shape = self._shape
        if delta.full or shape is None:
            self._rebuild(list(self._eligible_list))
            return
        chosen = self._chosen
        for state in delta.removed:
            chosen.discard(state)
        for state in delta.added:
            chosen.add(state)
        if not self._keeps(delta, shape):
            self._reshape(bool(self._eligible_list))
            return
        table, owners, held_out = self._table
        held_out = _held(held_out, self._owner_set, delta)
        self._table = (table, owners, held_out)
        if self._building is not None:
            self._building_held = _held(self._building_held, self._building[1][3], delta)
        if self._plan is not None:
            self._plan_held = _held(self._plan_held, self._plan[3], delta)
        if self._eligible_list and len(held_out) == len(owners):  # nothing left to serve
            self._settle()

    def _keeps(self, delta: Delta, shape: dict[EndpointState, int]) -> bool:
        """Whether every endpoint ``delta`` touched is as the wanted membership has it."""
        members = self._members
        for touched in (delta.added, delta.removed, delta.reweighted, delta.moved):
            for state in touched:
                wanted = state.up and members.get(state.endpoint.address) is state
                if wanted != (state in shape) or (wanted and shape[state] != state.weight):
                    return False
        return True

    def _planned(self, up: list[EndpointState], shape: dict[EndpointState, int]) -> Plan:
        """The table to fill for ``up`` (endpoints sorted by address take turns), prepared at
        the change: O(N log N) here, so that starting its fill in a pick costs O(1)."""
        ordered = tuple(sorted(up, key=lambda state: state.endpoint.address))
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
        # weights in an array: one O(N) container less for the cyclic collector to traverse
        weights = array("l", [state.weight for state in ordered])
        return ordered, permutations, weights, frozenset(ordered), shape

    def _begin(self) -> None:
        """Start filling the planned table (its setup is paused like the rest of the fill)."""
        plan = self._plan
        assert plan is not None
        _, permutations, weights, _, _ = plan
        if self._xxh64 is None:
            fill = paper_fill(permutations, weights, self._size, CHUNK)
        else:
            fill = maglev_envoy.envoy_fill(permutations, weights, self._size, CHUNK)
        self._building = (fill, plan)
        self._building_held = self._plan_held
        self._plan = None
        self._plan_held = frozenset()

    def _advance(self, budget: float) -> None:
        """Fill about ``budget`` more of the table under way; swap it in when complete. O(1)
        beyond the fill's pauses: what the swap and the next fill's start need is prepared by
        the changes (:meth:`_rebuild`)."""
        while self._building is not None:
            fill, plan = self._building
            spent = 0
            try:
                while spent < budget:
                    spent += next(fill)
                return
            except StopIteration as done:
                table: array[int] = done.value
            held = self._building_held
            self._building = None
            self._building_held = frozenset()
            _, owners, held_out = self._table
            if self._plan is None or len(held) < len(plan[0]) or len(held_out) == len(owners):
                self._table = (table, plan[0], held)
                self._owner_set = plan[3]
            # else the completed table is superseded (a fill is planned) and nothing in it may
            # serve (its owners went down or were ejected during its fill) while the previous
            # table still holds an eligible endpoint: swapped in, it would leave every pick
            # with nothing (NoEndpointAvailable) until the next fill completes. The previous
            # table keeps serving; the planned fill starts.
            if self._plan is not None:  # the membership changed during the fill: fill again
                self._begin()
            if budget != _ALL:  # a pick or change that swaps a table in stops there
                return

    def _settle(self) -> None:
        self._advance(_ALL)

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

    def _tick(self) -> None:
        """A pick found a fill under way: one pick in PICK_EVERY fills PICK_STEP of it, if the
        lock is free (it never waits for it)."""
        self._ticks += 1
        if self._ticks % PICK_EVERY or not self._lock.acquire(blocking=False):
            return
        try:
            self._step()
        finally:
            self._lock.release()

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

        if len(held_out) < len(owners) and (not avoid or any(allowed(state) for state in owners)):
            size = len(table)
            for step in range(1, size):
                state = owners[table[(slot + step) % size]]
                if allowed(state):
                    return state
        return self._outside_table(slot, avoid)

    def _outside_table(self, slot: int, avoid: Collection[str]) -> EndpointState:
        """No owner of the serving table may take the key, yet an eligible endpoint outside it
        may: one added while its new table fills, when ``avoid`` names every owner still
        eligible (a retry that tried them all), or an owner with no slot (N > table_size).
        Refusing would contradict ``can_select``; so the key goes to the eligible endpoints
        not avoided, sorted by address, at ``slot`` modulo their count (deterministic, every
        process alike). O(eligible log eligible), only on this path; it waits for the lock (a
        change holds it for milliseconds), never for a fill. NoEndpointAvailable if every
        eligible endpoint is avoided (or none is left)."""
        with self._lock:  # changes edit the list in place (a sort empties it meanwhile)
            left = [state for state in self._eligible_list if state.endpoint.address not in avoid]
        if not left:
            raise self._nothing_available(avoid)
        left.sort(key=_address)
        return left[slot % len(left)]

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            table, owners, held_out = self._table
            eligible = self._eligible()
            up = [state for state in self._members.values() if state.up]
            assert self._shape == {state: state.weight for state in up}
            assert held_out == frozenset(owners) - frozenset(eligible)
            assert self._chosen == set(eligible)
            assert self._owner_set == frozenset(owners)
            if self._building is None:  # the table is the membership's
                assert self._plan is None
                assert [s.endpoint.address for s in owners] == sorted(
                    s.endpoint.address for s in up
                )
            else:
                plan = self._building[1]
                assert self._building_held == plan[3] - frozenset(eligible)
            if self._plan is not None:
                assert self._plan[4] == self._shape
                assert self._plan_held == self._plan[3] - frozenset(eligible)
            if eligible:
                assert len(held_out) < len(owners), "a pick could find nothing"
            if owners:
                assert len(table) == self._size
                assert max(table) < len(owners)
            else:
                assert len(table) == 0


def _address(state: EndpointState) -> str:
    return state.endpoint.address


def _held(
    held: frozenset[EndpointState], owners: frozenset[EndpointState], delta: Delta
) -> frozenset[EndpointState]:
    """``held`` (the owners held out) after ``delta``'s eligible changes: O(held + delta)."""
    back = [state for state in delta.added if state in held]
    out = [state for state in delta.removed if state in owners]
    return (held - frozenset(back)) | frozenset(out) if back or out else held
