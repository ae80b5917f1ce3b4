"""Leases (what ``select`` hands out) and the per-endpoint statistics ``stats()`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ._endpoint import Endpoint

__all__ = ["EndpointStats", "Lease"]


class Lease(NamedTuple):
    """One selection: the chosen endpoint, a token unique in the process, and the start time.

    A lease is immutable. Hand it back to the balancer that issued it with ``release``; the token
    lets the balancer refuse a second release or a lease it never issued, so counts can never be
    corrupted. ``started`` is the balancer's clock reading at selection, from which ``release``
    measures the elapsed time when none is given.
    """

    endpoint: Endpoint
    token: int
    started: float

    @property
    def address(self) -> str:
        """The chosen endpoint's ``host:port``."""
        return self.endpoint.address


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
