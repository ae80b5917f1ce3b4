"""A persistent radix trie of small ints: the rings' overlay, changed without copying it whole.

The overlay of a ring (``_points``) maps a bucket of the base (``point >> shift``) to what changed
there. Every membership change publishes a new immutable view for lock-free readers, so the map
must be copied on write; a dict would cost O(overlay) per change. This trie copies only the path
to each changed bucket: ``depth`` lists of :data:`FANOUT` slots, so a change of ``m`` points costs
O(m * depth * FANOUT) reference copies (depth = bucket bits / 7, at most 5), whatever the overlay
holds, and a read is ``depth`` list indexings. It is the array-mapped trie of Bagwell ("Ideal Hash
Trees", EPFL 2001) without the bitmap compression (the keys here are dense small ints), with
Clojure's transients: a node copied in the current, unpublished batch is changed in place.

Hand-written because the one library for it (``immutables``, a HAMT) would be a new runtime
dependency of every ring for ~60 lines; its maps also hash the key, where a bucket number is
already its own position.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import compress
from typing import Any

__all__ = ["BITS", "FANOUT", "Writer", "depth_for", "get", "items"]

BITS = 7
FANOUT = 1 << BITS
_MASK = FANOUT - 1

Node = list[Any]  # FANOUT slots: a child Node, a leaf value, or None


def depth_for(key_bits: int) -> int:
    """How many levels hold keys of ``key_bits`` bits."""
    return max(1, -(-key_bits // BITS))


def get(root: Node | None, key: int, depth: int) -> Any:
    """The value at ``key`` (None if absent)."""
    node = root
    shift = BITS * (depth - 1)
    while node is not None:
        if not shift:
            return node[key & _MASK]
        node = node[(key >> shift) & _MASK]
        shift -= BITS
    return None


def items(root: Node | None, depth: int, start: int = 0) -> Iterator[tuple[int, Any]]:
    """``(key, value)`` for every value, in key order, from ``start`` on (straight down the
    path to ``start``, then across: no slot before it is looked at)."""
    if root is None:
        return
    stack: list[tuple[Node, int, int, Iterator[int], bool]] = []
    shift = BITS * (depth - 1)
    node, prefix, on_path = root, 0, True  # on_path: this node's keys begin with start's
    first = (start >> shift) & _MASK
    slots: Iterator[int] = compress(range(first, FANOUT), node[first:])  # the slots in use, in C
    while True:
        for slot in slots:
            key = prefix | (slot << shift)
            if shift:
                stack.append((node, prefix, shift, slots, on_path))
                on_path = on_path and slot == (start >> shift) & _MASK
                node, prefix, shift = node[slot], key, shift - BITS
                first = (start >> shift) & _MASK if on_path else 0
                slots = compress(range(first, FANOUT), node[first:])
                break
            yield key, node[slot]
        else:
            if not stack:
                return
            node, prefix, shift, slots, on_path = stack.pop()


class Writer:
    """Changes a trie by path copying; :meth:`publish` ends a batch and returns the new root.

    Nodes copied since the last publish are changed in place (nobody else can see them yet); the
    dict keeps them alive, so an ``id`` is never reused by another node within a batch.
    """

    __slots__ = ("depth", "fresh", "root")

    def __init__(self, root: Node | None, depth: int) -> None:
        self.root = root
        self.depth = depth
        self.fresh: dict[int, Node] = {}

    def _own(self, node: Node | None) -> Node:
        if node is not None and id(node) in self.fresh:
            return node
        copy: Node = [None] * FANOUT if node is None else node.copy()
        self.fresh[id(copy)] = copy
        return copy

    def get(self, key: int) -> Any:
        return get(self.root, key, self.depth)

    def set(self, key: int, value: Any) -> None:
        node = self.root = self._own(self.root)
        shift = BITS * (self.depth - 1)
        while shift:
            slot = (key >> shift) & _MASK
            child = node[slot] = self._own(node[slot])
            node, shift = child, shift - BITS
        node[key & _MASK] = value

    def publish(self) -> Node | None:
        """The root to hand to readers; nothing reachable from it changes afterwards."""
        self.fresh = {}
        return self.root
