"""The inlined select/release fast paths behave exactly as the general path they shortcut.

RoundRobin, WeightedRoundRobin and LeastConnections override ``select`` (and LeastConnections
``release``) with the common case inlined: no ``avoid``, no health tracker, no ``elapsed``. An
``avoid`` naming no member, and an explicit ``elapsed``, send the same calls down the general
path; both balancers must then pick the same endpoints and count the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

import balancekit as bk

NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FACTORIES: dict[str, Callable[[list[bk.Endpoint], Clock], bk.BalancerBase]] = {
    "RoundRobin": lambda eps, clock: bk.RoundRobin(eps, clock=clock),
    "WeightedRoundRobin": lambda eps, clock: bk.WeightedRoundRobin(eps, clock=clock),
    "LeastConnections": lambda eps, clock: bk.LeastConnections(eps, clock=clock),
    "LeastResponseTime": lambda eps, clock: bk.LeastResponseTime(eps, clock=clock),
}


def drive(name: str, seed: int, general: bool) -> list[object]:
    rng = random.Random(seed)
    clock = Clock()
    endpoints = [bk.Endpoint(f"h{i}:1", weight=rng.randint(1, 4)) for i in range(6)]
    lb = FACTORIES[name](endpoints, clock)
    avoid: frozenset[str] = NOBODY if general else frozenset()
    held: list[bk.Lease] = []
    log: list[object] = []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.001, 0.3])
        roll = rng.random()
        if roll < 0.5:
            try:
                lease = lb.select(avoid=avoid)
            except bk.NoEndpointAvailable:
                log.append("none")
                continue
            held.append(lease)
            log.append((lease.address, lease.started))
        elif roll < 0.9 and held:
            lease = held.pop(rng.randrange(len(held)))
            ok = rng.random() < 0.8
            if general:
                lb.release(lease, ok=ok, elapsed=clock() - lease.started)
            else:
                lb.release(lease, ok=ok)
            with pytest.raises(bk.InvalidLease):
                lb.release(lease)
        elif roll < 0.95:
            address = f"h{rng.randrange(6)}:1"
            if address in lb:
                lb.remove(address)  # its outstanding leases stay valid
            else:
                lb.add(bk.Endpoint(address, weight=rng.randint(1, 4)))
        else:
            log.append(sorted(lb.stats().items()))
        lb._check_invariants()
    for lease in held:
        lb.release(lease)
    log.append(sorted(lb.stats().items()))
    lb._check_invariants()
    return log


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("seed", range(5))
def test_fast_path_matches_general_path(name: str, seed: int) -> None:
    assert drive(name, seed, general=False) == drive(name, seed, general=True)
