"""The consistent-hashing strategies of issue 3.

``consistent=True`` claims *minimal* disruption (removing or downing one endpoint moves only its
keys): true of the rings, rendezvous and JumpHash (with its memento). Maglev moves a few keys
besides the removed endpoint's, and BoundedLoadHash passes keys on when an endpoint is full;
their disruption is measured in tests/hashing/ and benchmarks/bench_hashing.py.
"""

from __future__ import annotations

import balancekit as bk

from .registry import Case

CASES = [
    Case(
        "Ketama",
        lambda eps, clock: bk.Ketama(eps, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.08,
        consistent=True,
    ),
    Case(
        "KetamaUhashring",
        lambda eps, clock: bk.Ketama(eps, compat="uhashring", clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.08,
        consistent=True,
    ),
    Case(
        "Rendezvous",
        lambda eps, clock: bk.Rendezvous(eps, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.04,
        consistent=True,
    ),
    Case(
        "Maglev",
        lambda eps, clock: bk.Maglev(eps, table_size=1009, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.04,
    ),
    Case(
        "MaglevEnvoy",
        lambda eps, clock: bk.Maglev(eps, table_size=1009, compat="envoy", clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.04,
    ),
    Case(
        "JumpHash",
        lambda eps, clock: bk.JumpHash(eps, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.04,
        consistent=True,
    ),
    Case(
        "BoundedLoadHash",
        lambda eps, clock: bk.BoundedLoadHash(eps, clock=clock),
        keyed=True,
        weights="statistical",
        tolerance=0.08,
    ),
]
