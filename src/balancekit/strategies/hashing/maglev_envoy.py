"""Envoy's Maglev table, slot for slot, so a Python client agrees with an Envoy fleet.

Source: Envoy's Maglev load balancer (``source/extensions/load_balancing_policies/maglev/
maglev_lb.cc``, ``MaglevTable``; documented in the Envoy docs, "Load balancing: Maglev"), checked
against the expected tables of Envoy's own tests (``maglev_lb_test.cc``: ``Basic``, ``Weighted``)
in ``tests/golden/test_maglev_envoy.py``.

What Envoy does, and so what this module does:

- an endpoint's hash key is its address as Envoy prints it (``127.0.0.1:90``, ``[::1]:90``);
- endpoints are sorted by that key (so the table does not depend on the order they arrive in);
- ``offset = xxHash64(key, seed=0) % M`` and ``skip = xxHash64(key, seed=1) % (M - 1) + 1``;
- weights are normalised (``w / sum``); in iteration t = 1, 2, ... an endpoint claims its next
  free preferred slot when ``t * weight >= target`` and then adds the largest normalised weight
  to its ``target`` (which starts at 0): the heaviest claims every iteration, one of a third of
  its weight every third;
- a request's key hashes as Envoy's header and cookie hash policies do, ``xxHash64(value)``, and
  picks ``table[hash % M]``.

xxHash64 comes from the ``xxhash`` package (``pip install balancekit[envoy]``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from heapq import heapreplace
from typing import Any

from ..._errors import InvalidOption
from ._keyed import utf8
from ._maglev_fill import PIECE, POP, Fill, fill_by_turns, run
from ._maglev_size import check_address, check_chunk, check_fill, check_size

__all__ = [
    "envoy_iterations",
    "envoy_key_hash",
    "envoy_maglev_table",
    "envoy_permutation",
    "envoy_steps",
]


def _xxh64() -> Callable[..., int]:
    try:
        import xxhash
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidOption(
            "Maglev(compat='envoy') needs xxHash64 from the xxhash package:"
            " pip install balancekit[envoy]"
        ) from None
    function: Callable[..., int] = xxhash.xxh64_intdigest
    return function


def envoy_key_hash() -> Callable[[bytes], int]:
    """The function Envoy hashes a request key with: ``xxHash64(value, seed=0)`` of its bytes."""
    return _xxh64()


def envoy_permutation(address: str | Any, size: int | Any) -> tuple[int, int]:
    """``(offset, skip)`` of an endpoint in a table of ``size`` slots, as Envoy computes them
    (``size``: a prime from 2 to ``MAX_TABLE_SIZE``, else :class:`~balancekit.InvalidOption`)."""
    return permutation(check_address(address), check_size(size))


def permutation(address: str, size: int) -> tuple[int, int]:
    """:func:`envoy_permutation` without the size check (for :class:`.Maglev`)."""
    xxh64, key = _xxh64(), utf8(address)
    return xxh64(key, seed=0) % size, xxh64(key, seed=1) % (size - 1) + 1


def envoy_maglev_table(  # ``| Any``: as maglev.maglev_table (mypyc's entry checks)
    permutations: Sequence[tuple[int, int]] | Any, weights: Sequence[int] | Any, size: int | Any
) -> array[int]:
    """Fill ``size`` slots with endpoint indices the way Envoy's ``MaglevTable`` does, at once."""
    return run(envoy_steps(permutations, weights, size))


def envoy_steps(  # ``| Any``: as maglev.maglev_table (mypyc's entry checks)
    permutations: Sequence[tuple[int, int]] | Any,
    weights: Sequence[int] | Any,
    size: int | Any,
    chunk: int | Any = 1024,
) -> Fill:
    """Fill ``size`` slots with endpoint indices the way Envoy's ``MaglevTable`` does, yielding
    the work done (in probes) every ~``chunk`` probes; the table is the generator's value.

    ``permutations`` and ``weights`` are in Envoy's order (endpoints sorted by hash key). The
    weight test is done in floating point exactly as Envoy does it (``iteration * weight <
    target``, doubles), so ties fall the same way. A turn finds its slot as Envoy's
    ``while (table[c] != nullptr) next_++`` does, the late ones by slices or by scanning the
    free slots (:class:`._maglev_fill.Claims`: same slot, less work). :class:`~balancekit.
    InvalidOption` for a size that is not a prime table size or an offset, skip or weight out
    of range, before any work (:func:`._maglev_size.check_fill`).
    """
    check_fill(permutations, weights, size)
    return envoy_fill(permutations, weights, size, check_chunk(chunk))


def envoy_fill(
    permutations: Sequence[tuple[int, int]], weights: Sequence[int], size: int, chunk: int
) -> Fill:
    """:func:`envoy_steps` without the checks (for input built by :class:`.Maglev`)."""
    work = [0]
    return fill_by_turns(permutations, envoy_iterations(weights, work), size, chunk, work)


def envoy_iterations(weights: Sequence[int], work: list[int] | None = None) -> Iterator[list[int]]:
    """The endpoints that claim a slot in each of Envoy's iterations 1, 2, ..., in order.

    Envoy: with ``w = weight / total`` and ``top`` the largest ``w``, endpoint i claims in
    iteration t unless ``t * w < target``, and each claim adds ``top`` to its ``target``
    (from 0.0), in doubles. Endless. Skewed weights (max > 8 x mean), where most endpoints
    skip most iterations: a heap of each endpoint's next iteration, found with the same
    floating-point test (``t * w`` grows with t), so O(claims x log N), not O(iterations x N).
    Iterations come in pieces, as :func:`._maglev_fill.paper_rounds`' rounds, with the same
    ``work`` count.
    """
    tally = [0] if work is None else work
    count, total = len(weights), sum(weights)
    normalized: list[float] = []
    for lo in range(0, count, PIECE):  # no next() looks at more than PIECE endpoints
        normalized += [weight * 1.0 / total for weight in weights[lo : lo + PIECE]]
        tally[0] += min(PIECE, count - lo)
        yield []
    top = max(normalized)
    target = [0.0] * count
    if max(weights) * count <= 8 * total:  # most endpoints claim in most iterations
        iteration = 0
        while True:
            iteration += 1
            for lo in range(0, count, PIECE):  # an iteration in pieces, in order
                due = []
                for i in range(lo, min(count, lo + PIECE)):
                    if iteration * normalized[i] < target[i]:
                        continue
                    target[i] += top
                    due.append(i)
                tally[0] += min(PIECE, count - lo)
                yield due
    heap: list[tuple[int, int]] = []  # (next iteration with a claim, endpoint): sorted, a heap
    for lo in range(0, count, PIECE):
        heap += [(1, i) for i in range(lo, min(count, lo + PIECE))]
        tally[0] += min(PIECE, count - lo)
        yield []
    while True:
        now = heap[0][0]
        due = []
        while heap[0][0] == now:
            i = heap[0][1]
            due.append(i)
            weight = normalized[i]
            goal = target[i] = target[i] + top
            later = max(now + 1, int(goal / weight))
            while later * weight < goal:
                later += 1
            while later - 1 > now and not (later - 1) * weight < goal:
                later -= 1
            heapreplace(heap, (later, i))
            tally[0] += POP
            if len(due) >= PIECE // 4:  # in pieces, in order (a pop: ~4 endpoints' work)
                yield due
                due = []
        yield due
