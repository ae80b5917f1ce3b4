"""Finagle's deterministic aperture: clients and servers on one unit ring, each client talking
to the servers under its own slice.

Servers (sorted by address) are spread evenly over [0, 1); client ``i`` of ``N`` starts its
slice at ``i / N`` and makes it the smallest whole number of client units that covers the
*logical aperture*, ``min(min_aperture, servers)`` server units (``min_aperture`` is 12, the
value Finagle settled on so that a slice is unlikely to hold no healthy server). Because every
slice is a whole number of client units, the slices of all ``N`` clients cover the ring the same
number of times everywhere: every server carries the same share of the fleet's load, and each
client connects to about ``aperture`` servers instead of all of them. The servers at a slice's
edges are only partly inside it; their fractional weight (:meth:`Ring.weight
<balancekit.subset._ring.Ring.weight>`) scales their share of picks.

With ``weighted=True`` server ``j``'s arc is as long as its normalised weight instead of
``1 / servers`` (Finagle's ``WeightedAperture``), so heavier servers sit under more clients'
slices.

:class:`DeterministicAperture` is the pure subsetter (the slice and its weights, for any
balancer or a simulator); :class:`Aperture` is the balancer Finagle runs: power of two choices
inside the slice, each candidate drawn in proportion to its fractional weight, the one with the
lower in-flight count per unit of weight winning (Finagle's ``WeightedP2CPick``).

Sources: finagle-core ``loadbalancer/aperture/DeterministicAperture.scala``, ``Ring.scala``
(removed in commit a5004ecc8, read there), ``WeightedAperture.scala``, ``WeightedP2CPick.scala``,
``ProcessCoordinate.scala``; the Finagle blog post "Deterministic Aperture: A distributed, load
balancing algorithm" (2019).
"""

from __future__ import annotations

import bisect
import itertools
import random as _random
import time
from collections.abc import Collection, Iterable
from typing import Any

from .._core import BalancerBase, Clock
from .._endpoint import Endpoint, EndpointLike
from .._options import integer
from .._state import EndpointState
from ..strategies.random import resolve_rng
from ._base import members
from ._ring import MAX_SIZE, aperture_units, exact_coverage, weighted_coverage

__all__ = ["MIN_APERTURE", "Aperture", "DeterministicAperture"]

#: Finagle's minimum deterministic aperture (``MinDeterministicAperture``).
MIN_APERTURE = 12
#: Weighted draws tried before an exact draw among the usable servers of the slice.
_DRAWS = 8
#: Finagle's ``WeightedP2CPick.approxEqual``: weights this close are compared by load alone.
_SAME_WEIGHT = 1e-4


class DeterministicAperture:
    """The servers under client ``instance_id`` of ``instances``' slice, with their weights.

    ``instance_id``: 0 to ``instances - 1``, distinct per client process (a StatefulSet ordinal;
    docs/many-clients.md). ``min_aperture``: the logical aperture, capped at the server count
    (default :data:`MIN_APERTURE`, 12). ``weighted``: lay servers on the ring by their endpoint
    weights (Finagle's weighted aperture) rather than evenly. Servers are sorted by address so
    every client builds the same ring. O(n log n) for n servers.

    >>> from balancekit.subset import DeterministicAperture
    >>> pool = [f"srv-{i:02d}:80" for i in range(24)]
    >>> slice_ = DeterministicAperture(3, 10).coverage(pool)  # [0.3, 0.8): 12 server units
    >>> [(e.address, round(w, 3)) for e, w in slice_[:2]], slice_[-1][0].address, len(slice_)
    ([('srv-07:80', 0.8), ('srv-08:80', 1.0)], 'srv-19:80', 13)
    """

    __slots__ = ("instance_id", "instances", "min_aperture", "weighted")

    def __init__(
        self,
        instance_id: int,
        instances: int,
        *,
        min_aperture: int = MIN_APERTURE,
        weighted: bool = False,
    ) -> None:
        self.instances = integer("instances", instances, 1, MAX_SIZE)
        self.instance_id = integer("instance_id", instance_id, 0, self.instances - 1)
        self.min_aperture = integer("min_aperture", min_aperture, 1, MAX_SIZE)
        if not isinstance(weighted, bool):
            from .._errors import InvalidOption
            from .._options import describe

            raise InvalidOption(f"weighted must be True or False, not {describe(weighted)}")
        self.weighted = weighted

    @property
    def offset(self) -> float:
        """Where this client's slice starts on the ring (Finagle's ``Coord.offset``)."""
        return (self.instance_id * (1.0 / self.instances)) % 1.0

    def units(self, servers: int) -> int:
        """How many client units (``1 / instances`` of the ring each) the slice spans for
        ``servers`` servers: ``ceil(min(min_aperture, servers) x instances / servers)`` as
        Finagle's ``dApertureWidth`` computes it (see :func:`~balancekit.subset._ring.
        aperture_units`)."""
        servers = integer("servers", servers, 1, MAX_SIZE)
        return aperture_units(self.instances, servers, min(self.min_aperture, servers))

    def width(self, servers: int) -> float:
        """The slice width for ``servers`` servers, a fraction of the ring (``dApertureWidth``)."""
        return min(1.0, self.units(servers) * (1.0 / self.instances))

    def coverage(self, endpoints: Iterable[EndpointLike]) -> tuple[tuple[Endpoint, float], ...]:
        """The servers under the slice, by address, each with its weight: the fraction of its
        arc inside the slice (1.0 for a whole server; computed exactly, so every server's total
        over all clients is the same), or with ``weighted=True`` its share of the ring inside
        the slice. Servers with no part inside are left out. O(n log n)."""
        servers = members(endpoints)
        if not servers:
            return ()
        if self.weighted:
            weights = [float(e.weight) for e in servers]
            shares = weighted_coverage(weights, self.offset, self.width(len(servers)))
        else:
            units = self.units(len(servers))
            shares = exact_coverage(self.instance_id, self.instances, len(servers), units)
        return tuple((e, share) for e, share in zip(servers, shares, strict=True) if share > 0.0)

    def subset(self, endpoints: Iterable[EndpointLike]) -> tuple[Endpoint, ...]:
        """The servers under the slice, by address (their weights: :meth:`coverage`)."""
        return tuple(endpoint for endpoint, _ in self.coverage(endpoints))

    def __repr__(self) -> str:
        extra = "" if self.min_aperture == MIN_APERTURE else f", min_aperture={self.min_aperture}"
        extra += ", weighted=True" if self.weighted else ""
        return f"DeterministicAperture({self.instance_id}, {self.instances}{extra})"


class Aperture(BalancerBase):
    """Finagle's deterministic aperture balancer: P2C among the servers of this client's slice.

    Give it the *whole* membership (from discovery, unfiltered); it computes its slice itself
    (:class:`DeterministicAperture`) on every membership change. Each pick draws two distinct
    servers of the slice in proportion to their fractional weights and sends the request to the
    one with fewer requests in flight per unit of weight (weights within 1e-4 compare by load
    alone, as Finagle does). Servers marked down, ejected or avoided are skipped; when the whole
    slice is unusable it falls back to P2C over every usable server outside it, so a request
    fails only when no server at all is usable. The ring is laid over every member, up or
    down, so a server going down never moves other clients' slices.

    Options: ``instance_id``, ``instances``, ``min_aperture``, ``weighted`` as for
    :class:`DeterministicAperture`; ``rng=`` / ``seed=`` make the draws reproducible.
    Select and release O(log k) for a slice of k servers, under the balancer's lock; a
    membership change O(n log n).

    >>> import balancekit as bk
    >>> pool = [f"srv-{i:02d}:80" for i in range(40)]
    >>> lb = bk.subset.Aperture(pool, instance_id=0, instances=8, seed=1)
    >>> len(lb.slice), lb.select().address in {e.address for e, _ in lb.slice}
    (15, True)

    Sources: finagle-core ``aperture/DeterministicAperture.scala`` and ``WeightedP2CPick.scala``.
    """

    _observes_release = True

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        instance_id: int,
        instances: int,
        min_aperture: int = MIN_APERTURE,
        weighted: bool = False,
        rng: _random.Random | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._aperture = DeterministicAperture(
            instance_id, instances, min_aperture=min_aperture, weighted=weighted
        )
        self._rng = resolve_rng(rng, seed)
        self._random = self._rng.random
        super().__init__(endpoints, clock=clock)
        self._index: tuple[list[EndpointState], list[float], list[float]] = ([], [], [])
        self._start()

    @property
    def slice(self) -> tuple[tuple[Endpoint, float], ...]:
        """This client's servers and their weights, as last computed."""
        states, weights, _ = self._index
        return tuple((s.endpoint, w) for s, w in zip(states, weights, strict=True))

    def _rebuild(self, eligible: list[EndpointState]) -> None:
        by_address = {state.endpoint.address: state for state in self._members.values()}
        coverage = self._aperture.coverage([state.endpoint for state in by_address.values()])
        states = [by_address[endpoint.address] for endpoint, _ in coverage]
        weights = [weight for _, weight in coverage]
        self._index = (states, weights, list(itertools.accumulate(weights)))

    def _usable(self, state: EndpointState, avoid: Collection[str]) -> bool:
        address = state.endpoint.address
        return self._eligible_by_address.get(address) is state and not (avoid and address in avoid)

    def _draw(self, avoid: Collection[str], other: int) -> int | None:
        """A usable slice index other than ``other``, drawn by weight; ``None`` if none."""
        states, weights, cumulative = self._index
        total, last, random = cumulative[-1], len(states) - 1, self._random
        for _ in range(_DRAWS):  # rejection sampling keeps the exact conditional distribution
            index = min(bisect.bisect_right(cumulative, random() * total), last)
            if index != other and self._usable(states[index], avoid):
                return index
        rest = [i for i in range(len(states)) if i != other and self._usable(states[i], avoid)]
        if not rest:
            return None
        return self._rng.choices(rest, weights=[weights[i] for i in rest])[0]

    def _choose(self, avoid: Collection[str]) -> EndpointState:
        states, weights, _ = self._index
        if states:
            first = self._draw(avoid, -1)
            if first is not None:
                second = self._draw(avoid, first)
                if second is None:
                    return states[first]
                a, b = states[first], states[second]
                wa, wb = weights[first], weights[second]
                if abs(wa - wb) < _SAME_WEIGHT:
                    return b if b.load < a.load else a
                return b if b.load * wa < a.load * wb else a
        rest = [s for s in self._eligible_by_address.values() if self._usable(s, avoid)]
        if not rest:
            raise self._nothing_available(avoid)
        if len(rest) == 1:
            return rest[0]
        a, b = self._rng.sample(rest, 2)
        return b if b.load < a.load else a

    def _pick(self, context: Any, avoid: Collection[str]) -> EndpointState:
        with self._lock:
            state = self._choose(avoid)
            state.load += 1
            return state

    def _claim(self, state: EndpointState) -> None:
        state.load += 1

    def _on_release(self, state: EndpointState, ok: bool, elapsed: float) -> None:
        with self._lock:
            state.load -= 1

    def _on_cancel(self, state: EndpointState) -> None:
        with self._lock:
            state.load -= 1

    def _check_invariants(self) -> None:
        super()._check_invariants()
        with self._lock:
            states, weights, cumulative = self._index
            assert len(states) == len(weights) == len(cumulative)
            assert all(w > 0 for w in weights)
            assert len({id(s) for s in states}) == len(states)
            for state in states:
                assert self._members.get(state.endpoint.address) is state
            for state in self._members.values():
                assert state.load == state.in_flight() >= 0
