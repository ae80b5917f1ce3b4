"""Deterministic subsetting from Google's SRE book (Site Reliability Engineering, chapter 20,
"Load Balancing in the Datacenter", section "A Subset Selection Algorithm: Deterministic
Subsetting").

Clients with consecutive ids are grouped into *rounds* of ``n // k`` clients. Every client of a
round shuffles the (sorted) backend list with the same generator, seeded by the round number,
and takes its own slice of ``k`` backends: client ``c`` of round ``r`` gets slice ``c mod (n //
k)`` of the shuffle of round ``r``. Within a round the slices are disjoint and together cover
``k x (n // k)`` backends, so when ``n`` is a multiple of ``k`` and the client count a multiple
of ``n // k``, every backend has exactly ``clients x k / n`` clients; different rounds shuffle
differently, so a backend that fails is spread over many clients' subsets rather than falling on
one. (With ``n mod k`` left over, those backends get no client in that round; the book accepts
this.)

Pseudocode from the book::

    def Subset(backends, client_id, subset_size):
        subset_count = len(backends) / subset_size
        round = client_id / subset_count
        random.seed(round)
        random.shuffle(backends)
        subset_id = client_id % subset_count
        start = subset_id * subset_size
        return backends[start:start + subset_size]

``random.Random(round).shuffle`` is Python's Mersenne Twister and Fisher-Yates, so this is the
book's own function, bit for bit, and the same in every process.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from .._endpoint import Endpoint, EndpointLike
from .._options import integer
from ._base import members
from .random_subset import MAX_K

__all__ = ["DeterministicSubset"]


class DeterministicSubset:
    """This client's slice of its round's shuffle of the backends (SRE book, chapter 20).

    ``k``: backends per client. ``client_id``: this process's id, 0 to ``clients - 1``, distinct
    per client and dense (a StatefulSet ordinal; docs/many-clients.md). ``seed``: mixed into
    every round's seed so that two services using the same client ids do not shuffle alike; the
    default 0 is the book's ``random.seed(round)``. Backends are sorted by address before the
    shuffle, so every client shuffles the same list. ``n <= k`` keeps every backend.
    O(n log n) for n backends.

    >>> from balancekit.subset import DeterministicSubset
    >>> pool = [f"10.0.0.{i}:80" for i in range(1, 7)]
    >>> a = DeterministicSubset(3, client_id=0).subset(pool)
    >>> b = DeterministicSubset(3, client_id=1).subset(pool)
    >>> sorted(e.address for e in a + b) == sorted(pool)  # one round: disjoint, covering
    True
    """

    __slots__ = ("client_id", "k", "seed")

    def __init__(self, k: int, *, client_id: int, seed: int = 0) -> None:
        self.k = integer("k", k, 1, MAX_K)
        self.client_id = integer("client_id", client_id, 0, 2**63 - 1)
        self.seed = integer("seed", seed, 0, 2**64 - 1)

    def subset(self, endpoints: Iterable[EndpointLike]) -> tuple[Endpoint, ...]:
        """This client's ``k`` backends (all of them when there are at most ``k``)."""
        backends = members(endpoints)
        if len(backends) <= self.k:
            return tuple(backends)
        subset_count = len(backends) // self.k
        round_ = self.client_id // subset_count
        random.Random(round_ + (self.seed << 64)).shuffle(backends)
        start = (self.client_id % subset_count) * self.k
        return tuple(backends[start : start + self.k])

    def __repr__(self) -> str:
        seed = f", seed={self.seed}" if self.seed else ""
        return f"DeterministicSubset({self.k}, client_id={self.client_id}{seed})"
