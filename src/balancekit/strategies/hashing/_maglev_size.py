"""Maglev's table sizes (primes) and the checks every public fill entry makes on its input.

A Maglev table's size M must be prime: a preference list ``(offset + j * skip) % M`` visits every
slot only when ``skip`` and M are coprime (Eisenbud et al., "Maglev: A Fast and Reliable Software
Network Load Balancer", NSDI 2016, section 3.4; Envoy's ``MaglevTable`` requires a prime too).
With a composite M a list can cycle through taken slots for ever, and the late searches of
:mod:`._maglev_fill` divide by ``skip`` modulo M. So the public fills, permutations, ``is_prime``
and ``next_prime`` check their input here, in time linear in its size, before any loop runs.

Primality: deterministic Miller-Rabin (bases 2..37 decide every n < 2^64: Jaeschke 1993,
Sorenson and Webster 2015; bases 2, 3, 5, 7 every n < 3,215,031,751: Pomerance, Selfridge and
Wagstaff 1980), a dozen modular powers at most instead of ~sqrt(n) trial divisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._endpoint import MAX_WEIGHT
from ..._errors import InvalidOption
from ..._options import describe

__all__ = ["MAX_TABLE_SIZE", "check_fill", "check_size", "is_prime", "next_prime"]

#: Largest table accepted: 16 M slots (64 MB of ``array('I')`` at most).
MAX_TABLE_SIZE = 16_777_259
#: ``is_prime`` answers for 0 <= n < 2^64; ``next_prime`` for n up to the largest prime below it.
LIMIT = 1 << 64
LARGEST_64_BIT_PRIME = LIMIT - 59

_SMALL_BASES = (2, 3, 5, 7)
_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _whole(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidOption(f"{what} must be an int, not {describe(n)}")
    return n


def is_prime(n: int) -> bool:
    """Whether ``n`` is prime, exactly, for any int below 2^64 (deterministic Miller-Rabin);
    :class:`InvalidOption` for a non-int or a larger n."""
    n = _whole(n, "is_prime's argument")
    if n >= LIMIT:
        raise InvalidOption(f"is_prime answers for ints below 2**64, not {describe(n)}")
    if n < 2:
        return False
    for p in _BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:  # at most 63 halvings
        d //= 2
        s += 1
    for a in _SMALL_BASES if n < 3_215_031_751 else _BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    """The smallest prime >= ``n`` (e.g. ``next_prime(100 * endpoints)`` for a table size), for
    any int up to the largest prime below 2^64 (prime gaps there are < 1,600)."""
    n = _whole(n, "next_prime's argument")
    if n > LARGEST_64_BIT_PRIME:
        raise InvalidOption(f"next_prime answers for ints up to 2**64 - 59, not {describe(n)}")
    candidate = max(2, n)
    while not is_prime(candidate):
        candidate += 1
    return candidate


def check_size(size: object) -> int:
    """``size`` if it is a prime from 2 to :data:`MAX_TABLE_SIZE`, else :class:`InvalidOption`."""
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= MAX_TABLE_SIZE:
        raise InvalidOption(
            f"a Maglev table size must be a prime from 2 to {MAX_TABLE_SIZE}, not {describe(size)}"
        )
    if not is_prime(size):
        raise InvalidOption(
            f"a Maglev table size must be prime, not {size} (e.g. {next_prime(size)}): with a"
            " composite size a preference list may never reach a free slot"
        )
    return size


def check_address(address: object) -> str:
    """``address`` if it is a str (what an endpoint's preference list is hashed from), else
    :class:`InvalidOption`."""
    if not isinstance(address, str):
        raise InvalidOption(f"a Maglev permutation is of an address (str), not {describe(address)}")
    return address


def check_chunk(chunk: object) -> int:
    """``chunk`` (probes between two yields of a fill) if it is an int >= 1, else
    :class:`InvalidOption`."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InvalidOption(f"a fill's chunk is a number of probes >= 1, not {describe(chunk)}")
    return chunk


def check_fill(permutations: object, weights: object, size: object) -> None:
    """:class:`InvalidOption` unless ``size`` is a prime table size, ``permutations`` a sequence
    of ``(offset, skip)`` with ``0 <= offset < size`` and ``1 <= skip < size``, and ``weights``
    as many ints from 1 to ``MAX_WEIGHT``. O(len(permutations))."""
    check_size(size)
    assert isinstance(size, int)
    if not isinstance(permutations, Sequence) or not isinstance(weights, Sequence):
        raise InvalidOption(
            f"permutations and weights must be sequences, not {describe(permutations)}"
            f" and {describe(weights)}"
        )
    if len(permutations) != len(weights):
        raise InvalidOption(
            f"{len(permutations)} permutations but {len(weights)} weights: one weight each"
        )
    for pair in permutations:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidOption(f"a permutation is an (offset, skip) tuple, not {describe(pair)}")
        offset, skip = pair
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or isinstance(skip, bool)
            or not isinstance(skip, int)
            or not 0 <= offset < size
            or not 1 <= skip < size
        ):
            raise InvalidOption(
                f"permutation {describe(pair)}: offset must be an int from 0 to {size - 1},"
                f" skip an int from 1 to {size - 1}"
            )
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            raise InvalidOption(f"weights are ints from 1 to {MAX_WEIGHT}, not {describe(weight)}")
