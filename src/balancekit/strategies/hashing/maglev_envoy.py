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
from collections.abc import Callable, Generator, Sequence

from ..._errors import InvalidOption
from ._keyed import utf8

__all__ = ["envoy_key_hash", "envoy_maglev_table", "envoy_permutation", "envoy_steps"]


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


def envoy_permutation(address: str, size: int) -> tuple[int, int]:
    """``(offset, skip)`` of an endpoint in a table of ``size`` slots, as Envoy computes them."""
    xxh64, key = _xxh64(), utf8(address)
    return xxh64(key, seed=0) % size, xxh64(key, seed=1) % (size - 1) + 1


def envoy_maglev_table(
    permutations: Sequence[tuple[int, int]], weights: Sequence[int], size: int
) -> array[int]:
    """Fill ``size`` slots with endpoint indices the way Envoy's ``MaglevTable`` does, at once."""
    steps = envoy_steps(permutations, weights, size)
    try:
        while True:
            next(steps)
    except StopIteration as done:
        table: array[int] = done.value
        return table


def envoy_steps(
    permutations: Sequence[tuple[int, int]], weights: Sequence[int], size: int, chunk: int = 1024
) -> Generator[int, None, array[int]]:
    """Fill ``size`` slots with endpoint indices the way Envoy's ``MaglevTable`` does, yielding
    the slots filled every ``chunk`` slots; the table is the generator's value.

    ``permutations`` and ``weights`` are in Envoy's order (endpoints sorted by hash key). The
    weight test is done in floating point exactly as Envoy does it (``iteration * weight <
    target``, doubles), so ties fall the same way.
    """
    count = len(permutations)
    table = array("I" if count > 0xFFFF else "H", [0]) * size
    if not count:
        return array(table.typecode)
    total = sum(weights)
    normalized = [weight * 1.0 / total for weight in weights]
    top = max(normalized)
    target = [0.0] * count
    taken = [0] * count  # Envoy's next_: preferences tried so far
    free = [True] * size
    filled = 0
    cost, pause = chunk, min(size, chunk)
    iteration = 0
    while filled < size:
        iteration += 1
        for i in range(count):
            if filled == size:
                break
            if iteration * normalized[i] < target[i]:
                continue
            target[i] += top
            offset, skip = permutations[i]
            slot = (offset + skip * taken[i]) % size
            while not free[slot]:
                taken[i] += 1
                slot = (offset + skip * taken[i]) % size
            free[slot] = False
            table[slot] = i
            taken[i] += 1
            filled += 1
            if filled == pause and filled < size:  # every ~chunk probes, as maglev_steps
                yield cost
                left = size - filled
                slots = max(1, chunk * left // size)
                cost, pause = slots * size // left, filled + slots
    return table
