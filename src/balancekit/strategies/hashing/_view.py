"""The readable state of a consistent-hash ring: one immutable view, read without a lock.

See :mod:`._points` for the layout (a flat sorted base with main's bucket index and a
sentinel, plus an overlay of recent changes) and for the writer that publishes views. Karger
et al., "Consistent hashing and random trees" (STOC 1997).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from ..._state import EndpointState

__all__ = ["First", "RingView", "index_of"]

First = Callable[[EndpointState, EndpointState], bool]


def index_of(points: array[int], size: int, width: int) -> tuple[int, array[int]]:
    """``(shift, starts)``: ``starts[b]`` is the first position whose point is >= ``b << shift``."""
    bits = max(1, size.bit_length())
    shift = width - min(bits, width - 1)
    counts = [0] * ((1 << (width - shift)) + 1)
    for point in points[:size]:
        counts[(point >> shift) + 1] += 1
    return shift, array("I", accumulate(counts[:-1]))


class RingView:
    """One published state of the ring (never changed once readers can see it)."""

    __slots__ = (
        "added",
        "added_index",
        "added_owners",
        "dirty",
        "first",
        "mask",
        "owners",
        "past_equal",
        "points",
        "removed",
        "shift",
        "size",
        "starts",
    )

    def __init__(
        self,
        width: int,
        past_equal: bool,
        first: First | None,
        points: array[int],
        owners: list[Any],  # EndpointState, and the sentinel's (None on an empty ring)
        added: list[int],
        added_owners: list[EndpointState],
        removed: frozenset[int],
        index: tuple[int, array[int]] | None = None,
    ) -> None:
        self.size = len(points) - 1  # without the sentinel
        self.points = points
        self.owners = owners
        self.shift, self.starts = index if index is not None else index_of(points, self.size, width)
        self.mask = (1 << width) - 1
        self.past_equal = past_equal
        self.first = first
        self.added = added
        self.added_owners = added_owners
        # The added points indexed like the base (a sorted array with its sentinel, and buckets):
        # a bisect of a few thousand boxed ints cost ~1 us a lookup.
        self.added_index: tuple[array[int], int, array[int]] | None = None
        if added:
            flat = array("Q", added)
            flat.append(points[-1])  # the same sentinel
            self.added_index = (flat, *index_of(flat, len(added), width))
        self.removed = removed
        self.dirty = bool(added or removed) or not self.size  # read the slow way (resolve)

    def base_at(self, hashed: int, past_equal: bool) -> int:
        """The first base position at (``past_equal``: after) ``hashed``; ``size`` past the top."""
        points = self.points
        index = self.starts[hashed >> self.shift]
        if past_equal:
            while points[index] <= hashed:
                index += 1
        else:
            while points[index] < hashed:
                index += 1
        return index if index < self.size else self.size

    def owner_at(self, hashed: int) -> EndpointState | None:
        """The owner of the first point at (or, ``past_equal``, after) ``hashed``, wrapping."""
        return self.resolve(hashed, self.base_at(hashed, self.past_equal))

    def resolve(self, hashed: int, index: int) -> EndpointState | None:
        """The owner for ``hashed`` given ``index``, its base position: the nearer of the next
        live base point and the next added one (on an equal point, ``first`` decides)."""
        size, removed, added = self.size, self.removed, self.added
        base: EndpointState | None = None
        if size > len(removed):
            index = 0 if index >= size else index
            while index in removed:
                index = index + 1 if index + 1 < size else 0
            base = self.owners[index]
        if not added:
            return base
        flat, shift, starts = self.added_index  # type: ignore[misc]
        at = starts[hashed >> shift]
        if self.past_equal:
            while flat[at] <= hashed:
                at += 1
        else:
            while flat[at] < hashed:
                at += 1
        at = 0 if at == len(added) else at
        extra: EndpointState = self.added_owners[at]
        if base is None:
            return extra
        skip = 1 if self.past_equal else 0
        near_base = (self.points[index] - hashed - skip) & self.mask
        near_extra = (added[at] - hashed - skip) & self.mask
        first = self.first
        if near_extra < near_base or (
            near_extra == near_base and first is not None and first(extra, base)
        ):
            return extra
        return base

    def find(self, hashed: int, accept: Callable[[EndpointState], bool]) -> EndpointState | None:
        """The first owner clockwise from ``hashed`` (as a lookup starts) that ``accept`` takes,
        looking at every point once; None if none is taken. (A loop, not a generator:
        abandoning a generator suspended in its loop cost ~10 us per call on CPython 3.11.)"""
        found = self._scan(hashed, self.past_equal, accept)
        return found[1] if found is not None else None

    def _scan(
        self, hashed: int, past_equal: bool, accept: Callable[[Any], bool]
    ) -> tuple[int, Any] | None:
        size, points, owners, removed = self.size, self.points, self.owners, self.removed
        start = self.base_at(hashed, past_equal)
        if not self.dirty:
            for step in range(size):
                index = start + step
                if index >= size:
                    index -= size
                if accept(owners[index]):
                    return points[index], owners[index]
            return None
        # Merge the live base and the added points clockwise from ``hashed`` by distance.
        added, added_owners, first, mask = self.added, self.added_owners, self.first, self.mask
        skip = 1 if past_equal else 0
        at = (bisect_right if past_equal else bisect_left)(added, hashed)
        base_left, added_left = size, len(added)
        index = 0 if start >= size else start
        while base_left or added_left:
            while base_left and index in removed:
                base_left -= 1
                index = index + 1 if index + 1 < size else 0
            if not base_left and not added_left:
                return None
            if at >= len(added):
                at = 0
            take_added = bool(added_left) and (
                not base_left
                or (
                    (added[at] - hashed - skip) & mask < (points[index] - hashed - skip) & mask
                    or (
                        added[at] == points[index]
                        and first is not None
                        and first(added_owners[at], owners[index])
                    )
                )
            )
            if take_added:
                added_left -= 1
                if accept(added_owners[at]):
                    return added[at], added_owners[at]
                at += 1
            else:
                base_left -= 1
                if accept(owners[index]):
                    return points[index], owners[index]
                index = index + 1 if index + 1 < size else 0
        return None

    def items(self) -> list[tuple[int, EndpointState]]:
        """Every ``(point, owner)`` in ring order (equal points in ``first`` order)."""
        if not self.dirty:
            return list(zip(self.points[: self.size], self.owners[: self.size], strict=True))
        # The live base and the added points merged from 0 (equal points: ``first`` decides).
        points, owners, size, removed = self.points, self.owners, self.size, self.removed
        added, added_owners, first = self.added, self.added_owners, self.first
        out: list[tuple[int, EndpointState]] = []
        index, at = 0, 0
        while index < size or at < len(added):
            if index < size and index in removed:
                index += 1
            elif at < len(added) and (
                index >= size
                or added[at] < points[index]
                or (
                    added[at] == points[index]
                    and first is not None
                    and first(added_owners[at], owners[index])
                )
            ):
                out.append((added[at], added_owners[at]))
                at += 1
            else:
                out.append((points[index], owners[index]))
                index += 1
        return out

    @property
    def count(self) -> int:
        return self.size - len(self.removed) + len(self.added)

    def check(self) -> None:
        """Assert the layout: base sorted with its sentinel and index, the overlay in order."""
        points, owners, size = self.points, self.owners, self.size
        assert len(points) == len(owners) == size + 1
        assert points[size] == min(self.mask + 1, (1 << 64) - 1)
        assert owners[size] is (owners[0] if size else None)
        assert all(points[i] <= points[i + 1] for i in range(size))
        assert all(state is not None for state in owners[:size])
        for bucket, start in enumerate(self.starts):
            assert start == bisect_left(points, bucket << self.shift, 0, size)
        assert len(self.starts) >= size
        assert all(0 <= index < size for index in self.removed)
        added = self.added
        assert len(added) == len(self.added_owners)
        assert all(added[i] <= added[i + 1] for i in range(len(added) - 1))
        assert self.dirty == (bool(added or self.removed) or not size)
