"""Leases (what ``select`` hands out) and the per-endpoint statistics ``stats()`` reports."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, SupportsIndex, final, overload

from mypy_extensions import mypyc_attr

from ._endpoint import Endpoint
from ._errors import InvalidLease
from ._options import describe

__all__ = ["EndpointStats", "Lease"]


# Compiled (mypyc), a lease is allocated and freed once per select + release: ``acyclic`` leaves
# it out of the cyclic garbage collector (no GC header to link and unlink, and a lease no longer
# counts towards the allocations that trigger a collection), and ``free_list_len=1`` keeps one
# freed lease's memory for the next select. A lease refers to an Endpoint, an int and the clock's
# reading, none of which refers back to a lease, so it is never part of a cycle. Pure Python
# ignores the decorator.
@final
@mypyc_attr(acyclic=True, free_list_len=1)
class Lease:
    """One selection: the chosen endpoint, a token unique in the process, and the start time.

    A lease is immutable. Hand it back to the balancer that issued it with ``release``; the token
    lets the balancer refuse a second release or a lease it never issued, so counts can never be
    corrupted. ``started`` is the balancer's clock reading at selection (the clock's own number,
    whatever its type), from which ``release`` measures the elapsed time when none is given.

    It behaves as the ``(endpoint, token, started)`` triple it was before issue 15 (a
    ``NamedTuple`` then): it unpacks, indexes (``lease[0]``), has a length of 3, compares equal to
    a lease of equal fields and hashes like one. It is no longer a ``tuple`` subclass: a class
    with three slots is built as cheaply in pure Python, reads its fields faster (CPython
    specialises slot reads, not a tuple subclass's subscripts or field getters), and compiled
    (mypyc) it is a native class that select builds without any call into the interpreter
    (docs/benchmarks.md, "Issue 15: a native Lease").
    """

    # The fields are read-only properties over private slots: a lease is immutable as the tuple
    # was. The hot paths (``release``) read the slots themselves: a slot read is specialised by
    # CPython 3.11, a property is not; compiled, both are native reads.
    __slots__ = ("_endpoint", "_started", "_token")

    _endpoint: Endpoint
    _token: int | Any  # Any: compiled, the int object is kept as given (no unboxing, reboxing)
    # Any: the clock's own reading (an int clock gives an int); compiled, a ``float`` attribute
    # would convert it (and refuse a Fraction with TypeError).
    _started: float | Any

    def __init__(self, endpoint: Endpoint, token: int | Any, started: float | Any) -> None:
        self._endpoint = endpoint
        self._token = token
        self._started = started

    @property
    def endpoint(self) -> Endpoint:
        """The chosen endpoint."""
        return self._endpoint

    @property
    def token(self) -> int | Any:
        """The lease's number, unique in the process (``release`` looks the lease up by it)."""
        return self._token

    @property
    def started(self) -> float | Any:
        """The balancer's clock reading at selection."""
        return self._started

    @property
    def address(self) -> str:
        """The chosen endpoint's ``host:port``."""
        return self._endpoint.address

    def _triple(self) -> tuple[Endpoint, int, Any]:
        return (self._endpoint, self._token, self._started)

    def __iter__(self) -> Iterator[Any]:
        # (the triple built here, not by _triple(): pure Python, one call less per unpacking)
        return iter((self._endpoint, self._token, self._started))

    def __len__(self) -> int:
        return 3

    def __reversed__(self) -> Iterator[Any]:
        # (compiled, a native class with __len__ and __getitem__ is no sequence to reversed())
        return iter((self._started, self._token, self._endpoint))

    # The overloads type ``lease[0]`` as the NamedTuple did (mypy --strict user code returning
    # it is not "returning Any"); ``SupportsIndex | slice | Any`` at run time, as the tuple took:
    # compiled, a parameter typed ``int`` refused a slice or an ``__index__`` object.
    @overload
    def __getitem__(self, index: Literal[0, -3]) -> Endpoint: ...
    @overload
    def __getitem__(self, index: Literal[1, -2]) -> int: ...
    @overload
    def __getitem__(self, index: Literal[2, -1]) -> float: ...
    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Any, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice | Any) -> Any:
        return (self._endpoint, self._token, self._started)[index]

    def __reduce__(self) -> tuple[Callable[[Any, Any, Any], Lease], tuple[Endpoint, Any, Any]]:
        # ``copy.copy`` (and pickle) rebuild it from its fields: compiled, the default reduction
        # called ``Lease()`` with no arguments (TypeError); pure, it copied the slots. Through
        # _unpickled_lease, so an edited pickle is refused alike in both builds.
        return (_unpickled_lease, self._triple())

    def __eq__(self, other: object) -> bool:
        if type(other) is not Lease:
            return NotImplemented
        return self._triple() == other._triple()

    def __hash__(self) -> int:
        return hash(self._triple())

    def __repr__(self) -> str:
        return (
            f"Lease(endpoint={self._endpoint!r}, token={self._token!r}, started={self._started!r})"
        )


def _unpickled_lease(endpoint: Any, token: Any, started: Any) -> Lease:
    """A :class:`Lease` rebuilt from a pickle (or ``copy``): what ``select`` could have issued.

    The endpoint was rebuilt through :class:`Endpoint`'s own checks (its ``__reduce__``); here
    it must be an Endpoint and the token an int, else :class:`InvalidLease` in both builds (the
    compiled constructor raised TypeError for a non-Endpoint, the pure one took anything). A
    lease pickled and sent back to the process that issued it is released there as the
    original (the token identifies it). Tokens are a sequence per process, so in another
    process the same token may be outstanding on the same address: never give a lease back to
    a balancer of another process. ``started`` must be a finite real number (a clock reading;
    review6: an edited ``-inf`` taught a latency-aware strategy an infinite estimate).
    """
    if not isinstance(endpoint, Endpoint) or type(token) is not int:
        raise InvalidLease(
            "a pickled Lease holds an Endpoint and an int token, not"
            f" {describe(endpoint)} and {describe(token)}"
        )
    if not _finite_reading(started):
        raise InvalidLease(f"a pickled Lease started at a finite reading, not {describe(started)}")
    return Lease(endpoint, token, started)


def _finite_reading(started: object) -> bool:
    """Whether ``started`` is a clock's reading: a finite real number (a bool is not one)."""
    if isinstance(started, bool) or not isinstance(started, numbers.Real):
        return False
    try:
        return math.isfinite(float(started))  # (a huge int: OverflowError)
    except (OverflowError, ValueError, TypeError):
        return False


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """A snapshot of one endpoint's live state, as ``Balancer.stats()`` reports it.

    ``selected`` counts every lease issued for the endpoint, ``succeeded`` and ``failed`` the
    releases by outcome, ``cancelled`` those given back without one (``cancel``: the caller
    gave up), ``in_flight`` the leases not yet released. ``latency`` is the strategy's
    current response-time estimate in seconds, where the strategy keeps one (else ``None``).
    ``ejected`` is set while passive health keeps the endpoint out of rotation, ``checked_down``
    while an active health check does (``balancekit.health``).
    """

    address: str
    weight: int
    up: bool
    in_flight: int
    selected: int
    succeeded: int
    failed: int
    latency: float | None = None
    ejected: bool = False
    checked_down: bool = False
    cancelled: int = 0

    @property
    def available(self) -> bool:
        """Up and not held out by health (ejected or checked down): what a pick returns outside
        panic mode."""
        return self.up and not self.ejected and not self.checked_down
