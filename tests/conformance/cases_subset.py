"""Finagle's deterministic aperture balancer (issue 13), as the only client of its fleet
(``instances=1``: the slice is the whole ring) and as one client of three."""

from __future__ import annotations

from balancekit.subset import Aperture

from .registry import Case

CASES = [
    # Unweighted aperture ignores endpoint weights (Finagle's DeterministicAperture); at low
    # concurrency P2C's first candidate, uniform over the ring, wins: shares as for Random.
    Case(
        "Aperture",
        lambda eps, clock: Aperture(eps, instance_id=0, instances=1, seed=11, clock=clock),
        weights="ignored",
        tolerance=0.2,
    ),
    Case(
        "Aperture-weighted",
        lambda eps, clock: Aperture(
            eps, instance_id=0, instances=1, weighted=True, seed=12, clock=clock
        ),
        weights="concurrent",
        tolerance=0.05,
    ),
    # One client of three sees only its slice, so shares over the whole pool are not even: the
    # share check is off (tolerance 1.0); every other property (never a removed or down
    # endpoint, in-flight back to zero, leases, cancel) still runs.
    Case(
        "Aperture-one-of-three",
        lambda eps, clock: Aperture(
            eps, instance_id=1, instances=3, min_aperture=1, seed=13, clock=clock
        ),
        weights="ignored",
        tolerance=1.0,
    ),
]
