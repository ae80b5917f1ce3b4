"""The ``Balancer`` protocol and the ``HealthHook`` the base class calls, apart from the base.

They live here, not in :mod:`balancekit._core`, because that module is compiled in the optional
mypyc build (issue 15), where ``@runtime_checkable`` protocols cannot be defined; ``_core``
re-exports both, so ``from balancekit._core import Balancer`` keeps working. :func:`acquired`,
the body of ``acquire``, is here for the same reason: a generator compiled by mypyc is not
closed when it is dropped unfinished, and an abandoned ``acquire`` must give its lease back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable

from ._endpoint import Endpoint, EndpointLike
from ._lease import EndpointStats, Lease
from ._state import EndpointState

__all__ = ["Balancer", "HealthHook", "acquired"]


@runtime_checkable
class Balancer(Protocol):
    """What every balancer offers; callers never need to know which strategy is behind it."""

    def select(self, context: Any = None, *, avoid: Collection[str] = ()) -> Lease:
        """Choose an endpoint; ``avoid`` names addresses to skip (e.g. ones a retry tried)."""
        ...

    def release(self, lease: Lease, *, ok: bool = True, elapsed: float | None = None) -> None:
        """Report how the request on ``lease`` ended; ``elapsed`` defaults to the clock's."""
        ...

    def cancel(self, lease: Lease) -> None:
        """Give ``lease`` back with no outcome (the caller gave up): nothing is learned."""
        ...

    def acquire(
        self, context: Any = None, *, avoid: Collection[str] = ()
    ) -> AbstractContextManager[Endpoint]:
        """Select, run the ``with`` block, release (``ok=False`` if it raised; cancel if it was
        cancelled or interrupted)."""
        ...

    def add(self, endpoint: EndpointLike) -> None: ...
    def remove(self, address: EndpointLike) -> None: ...
    def set_weight(self, address: EndpointLike, weight: int) -> None: ...
    def update(self, endpoints: Iterable[EndpointLike]) -> None: ...
    def mark_down(self, address: EndpointLike) -> None: ...
    def mark_up(self, address: EndpointLike) -> None: ...

    @property
    def endpoints(self) -> tuple[Endpoint, ...]: ...

    def stats(self) -> dict[str, EndpointStats]: ...


class HealthHook(Protocol):
    """What the base calls on an attached health tracker (``balancekit.health.with_health``).

    ``due`` is the clock reading at which the tracker next has work (an ejection ends, a slow
    start ramp steps): ``select`` compares it with the clock and calls ``advance`` only then, so
    a pick never scans the endpoints. ``observe`` sees every release outcome; ``eligible`` filters
    the endpoints that are up (pure: it depends only on their flags; the from-scratch view the
    tests compare with). A change is applied as a delta (:mod:`balancekit._delta`): under the
    lock, ``before_sync`` sees the touched endpoints first, ``healthy`` classifies one,
    ``panic_now`` decides panic from the maintained counts, and ``after_sync`` steps slow-start
    ramps and sets weights, returning the endpoints whose weight it may have changed (or None
    for only the touched ones). ``deliver`` hands the change's events to their callback once
    the change is whole.
    """

    due: float
    panic: bool

    def advance(self) -> None: ...
    def observe(self, state: EndpointState, ok: bool) -> None: ...
    def eligible(self, up: list[EndpointState]) -> list[EndpointState]: ...
    def healthy(self, state: EndpointState) -> bool: ...
    def before_sync(self, touched: list[EndpointState]) -> None: ...
    def panic_now(self, healthy: int, up: int) -> bool: ...
    def after_sync(
        self,
        added: list[EndpointState],
        removed: list[EndpointState],
        touched: list[EndpointState],
        full: bool,
    ) -> Iterable[EndpointState] | None: ...
    def deliver(self) -> None: ...


@contextmanager
def acquired(balancer: Balancer, context: Any, avoid: Collection[str]) -> Iterator[Endpoint]:
    """``balancer.acquire(context, avoid=avoid)``: select on entry, release or cancel on exit."""
    lease = balancer.select(context, avoid=avoid)
    try:
        yield lease.endpoint
    except Exception:
        balancer.release(lease, ok=False)
        raise
    except BaseException:  # a cancellation, an interrupt, GeneratorExit: no outcome
        balancer.cancel(lease)
        raise
    balancer.release(lease, ok=True)
