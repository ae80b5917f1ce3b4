"""Issue 15: compiled, a lease stays out of the cyclic garbage collector.

One lease is allocated and freed per select + release. Compiled (mypyc), ``Lease`` is declared
``acyclic`` (it refers to an Endpoint, an int and the clock's reading, none of which refers back
to a lease), so it is never linked into a GC generation and never counts towards the
allocations that trigger a collection. Pure Python tracks any instance with slots; there the
test checks nothing but that the lease works.
"""

from __future__ import annotations

import gc

import pytest

import balancekit
from balancekit import Lease, RoundRobin


@pytest.mark.skipif(not balancekit.compiled, reason="pure Python tracks every slotted instance")
def test_a_compiled_lease_is_not_tracked_by_the_collector() -> None:
    balancer = RoundRobin(["a:1", "b:2"])
    lease = balancer.select()
    assert type(lease) is Lease
    assert not gc.is_tracked(lease)
    balancer.release(lease)


def test_a_collection_while_leases_are_out_changes_nothing() -> None:
    balancer = RoundRobin(["a:1", "b:2"])
    leases = [balancer.select() for _ in range(1_000)]
    gc.collect()
    for lease in leases:
        assert lease.address in ("a:1", "b:2")
        balancer.release(lease, ok=True, elapsed=0.001)
    assert sum(s.in_flight for s in balancer.stats().values()) == 0
