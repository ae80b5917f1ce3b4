"""Finagle's aperture ring: ``size`` servers spread evenly over the unit interval [0, 1).

A client owns the slice ``[offset, offset + width)`` of the ring (wrapping past 1.0); the
servers it talks to are those whose arcs the slice touches, and each server's share is the
fraction of its arc inside the slice (:meth:`Ring.weight`), so the servers at the two edges of
the slice get fractional weights. These are the semantics of Finagle's ``Ring.index``,
``Ring.range``, ``Ring.weight`` and ``Ring.indices`` and of
``DeterministicAperture.dApertureWidth`` (finagle-core ``loadbalancer/aperture/Ring.scala`` and
``DeterministicAperture.scala``, before their removal in commit a5004ecc8), and of
``WeightedAperture.adjustWeights`` (``WeightedAperture.scala``) for servers of unequal weight.
Written from those semantics and checked against Finagle's own test values
(tests/subset/test_aperture_golden.py); no code is copied.

Everything here is pure arithmetic: no randomness (callers pass their own uniform draws) and no
state, so a simulator can lay out thousands of clients without building a balancer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .._errors import InvalidOption
from .._options import describe

__all__ = ["Ring", "aperture_width", "weighted_coverage"]

#: The largest ring (servers) or client count accepted: far beyond any fleet, and small enough
#: that ``1 / size`` and ``id / size`` stay exact enough in a float.
MAX_SIZE = 2**31


def _fraction(name: str, value: object, *, closed: bool) -> float:
    """``value`` as a float in [0, 1] (``closed``) or [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOption(f"{name} must be a number in [0, 1], not {describe(value)}")
    value = float(value)
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        bound = "[0, 1]" if closed else "[0, 1)"
        raise InvalidOption(f"{name} must be in {bound}, not {describe(value)}")
    return value


def _intersect(b0: float, e0: float, b1: float, e1: float) -> float:
    """Length of the overlap of [b0, e0) and [b1, e1) (neither wrapping), or 0."""
    return max(0.0, min(e0, e1) - max(b0, b1))


class Ring:
    """``size`` indices laid uniformly on [0, 1): index ``i`` owns ``[i/size, (i+1)/size)``.

    Every method is O(1) except :meth:`indices` (O(result)). Raises :class:`InvalidOption`
    for an offset outside [0, 1), a width outside [0, 1] or an index outside [0, size).
    """

    __slots__ = ("size", "unit")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise InvalidOption(f"size must be an int from 1 to {MAX_SIZE}, not {describe(size)}")
        self.size = size
        self.unit = 1.0 / size

    def index(self, offset: float) -> int:
        """The index whose arc holds ``offset`` (in [0, 1))."""
        offset = _fraction("offset", offset, closed=False)
        return math.floor(offset * self.size) % self.size

    def range(self, offset: float, width: float) -> int:
        """How many indices ``[offset, offset + width)`` touches with a positive weight (a
        width of 0 counts as one index: the one ``offset`` falls in)."""
        width = _fraction("width", width, closed=True)
        size = self.size
        if width == 1.0:
            return size
        begin = self.index(offset)
        end = self.index((offset + width) % 1.0)
        if begin == end:
            return size if width > self.unit else 1
        first = begin if self.weight(begin, offset, width) > 0 else begin + 1
        last = end + 1 if self.weight(end, offset, width) > 0 else end
        diff = last - first
        return diff + size if diff <= 0 else diff

    def weight(self, index: int, offset: float, width: float) -> float:
        """The fraction (0 to 1) of ``index``'s arc inside ``[offset, offset + width)``."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.size:
            raise InvalidOption(
                f"index must be an int from 0 to {self.size - 1}, not {describe(index)}"
            )
        offset = _fraction("offset", offset, closed=False)
        width = _fraction("width", width, closed=True)
        begin = index * self.unit
        end = begin + self.unit
        if offset + width > 1.0:
            # The slice wraps; its complement [(offset + width) - 1, offset) does not.
            return 1.0 - _intersect(begin, end, (offset + width) % 1.0, offset) / self.unit
        return _intersect(begin, end, offset, offset + width) / self.unit

    def indices(self, offset: float, width: float) -> list[int]:
        """The :meth:`range` indices, in ring order from the one ``offset`` falls in."""
        first = self.index(offset)
        return [(first + step) % self.size for step in range(self.range(offset, width))]


def aperture_units(instances: int, servers: int, aperture: int) -> int:
    """How many client units (``1 / instances`` each) a slice spans: ``ceil(aperture x
    instances / servers)`` computed as Finagle's ``dApertureWidth`` does, in floating point
    (so when the quotient is a whole number, rounding may add one unit, e.g. 13 of 20 rather
    than 12; Finagle's WeightedApertureTest pins such a value), at most ``instances``."""
    local_unit, remote_unit = 1.0 / instances, 1.0 / servers
    return min(instances, math.ceil(aperture * remote_unit / local_unit))


def exact_coverage(instance_id: int, instances: int, servers: int, units: int) -> list[float]:
    """Each server's weight (the fraction of its arc inside the slice) for the slice of
    ``units`` client units starting at client ``instance_id``: :meth:`Ring.weight` in exact
    integer arithmetic. Lengths are counted in ``1 / (instances x servers)`` of the ring, where
    every slice end and arc end is a whole number, so the slices of all clients cover every
    server exactly equally (float ``Ring.weight`` drifts by 1e-15 at the edges, enough to add or
    drop an edge server). O(servers)."""
    covered = [0.0] * servers
    if units >= instances:
        return [1.0] * servers
    length = instances * servers
    start = instance_id * servers
    end = start + units * servers
    pieces = [(start, min(end, length))] + ([(0, end - length)] if end > length else [])
    for begin, stop in pieces:
        for index in range(begin // instances, min(servers, -(-stop // instances))):
            low, high = index * instances, (index + 1) * instances
            overlap = min(stop, high) - max(begin, low)
            if overlap > 0:
                covered[index] += overlap / instances
    return covered


def aperture_width(local_unit: float, remote_unit: float, aperture: int) -> float:
    """The slice width for a logical aperture of ``aperture`` servers: the smallest whole
    number of client units (``local_unit = 1 / clients``) covering ``aperture`` server units
    (``remote_unit = 1 / servers``), at most 1. Whole client units make the slices of all
    clients tile the ring evenly, so every server is covered equally often (Finagle's
    ``dApertureWidth``)."""
    units = math.ceil(aperture * remote_unit / local_unit)
    return min(1.0, units * local_unit)


def weighted_coverage(weights: Sequence[float], offset: float, width: float) -> list[float]:
    """Each server's share of ``[offset, offset + width)`` when server ``i`` owns an arc as
    long as its normalised weight (arcs laid end to end from 0 in list order): a server inside
    the slice keeps its normalised weight, the ones at the edges keep the part inside, the rest
    get 0. The shares sum to ``width``. Finagle's ``WeightedAperture.adjustWeights``; O(n).
    """
    count = len(weights)
    if count == 0:
        return []
    total = math.fsum(weights)
    shares = [1.0 / count] * count if total <= 0.0 else [w / total for w in weights]
    offset = _fraction("offset", offset, closed=False)
    width = _fraction("width", width, closed=True)
    start, end = offset, offset + width
    covered = [0.0] * count
    position = 0.0
    index = 0
    # The walk ends after at most two laps (end < 2); three bound it against float drift.
    for _ in range(3 * count):
        if position >= end:
            break
        share = shares[index]
        if position < start:
            if position + share >= start:
                covered[index] += min(width, share + position - start)
        elif position + share > end:
            covered[index] += end - position
        else:
            covered[index] += share
        position += share
        index = (index + 1) % count
    return covered
