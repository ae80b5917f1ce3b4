"""Subsetting: which endpoints each client process talks to when there are many clients.

With C clients each connected to all S servers a fleet holds C x S connections, and per-client
load information gets thin. A subsetter gives each client a share of the servers:

* :class:`RandomSubset` - gRPC A68: the k servers of lowest XXH64(address, seed); one server
  added or removed changes at most one member of each subset. No coordination needed.
* :class:`DeterministicSubset` - the SRE book's deterministic subsetting (chapter 20): equal
  connection counts per server when the client ids are dense.
* :class:`DeterministicAperture` / :class:`Aperture` - Finagle's deterministic aperture:
  clients and servers on one ring, each client a slice of at least 12 servers, equal load per
  server; :class:`Aperture` is the balancer (P2C inside the slice).

A subsetter is a pure filter of the membership list (:class:`Subsetter`); put it in front of
any balancer with :class:`SubsetSource` (discovery) or ``lb.update(s.subset(endpoints))``.
How to choose: docs/many-clients.md.
"""

from ._base import SubsetSource, Subsetter
from .aperture import MIN_APERTURE, Aperture, DeterministicAperture
from .deterministic import DeterministicSubset
from .random_subset import RandomSubset

__all__ = [
    "MIN_APERTURE",
    "Aperture",
    "DeterministicAperture",
    "DeterministicSubset",
    "RandomSubset",
    "SubsetSource",
    "Subsetter",
]
