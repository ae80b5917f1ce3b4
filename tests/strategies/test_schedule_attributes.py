"""RoundRobin/WeightedRoundRobin keep few enough instance attributes for shared keys (issue 15).

CPython 3.11 shares a class's attribute keys among its instances only up to 29 names; past
them each instance's dict is a dict of its own and every ``self.x`` of the hot paths is
specialised as LOAD_ATTR_WITH_HINT instead of LOAD_ATTR_INSTANCE_VALUE
(``round_robin._ScheduleBalancer.__init__``). WeightedRoundRobin had 32 (main 36920cf): the
specialisation test below fails there. The count is taken after every kind of change, since an
attribute first assigned outside ``__init__`` would add a key later. Pure Python only: compiled
(mypyc), the classes are native and keep their attributes in C fields.
"""

from __future__ import annotations

import dis
import sys
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.round_robin import MAX_SHARED_ATTRIBUTES, SCHEDULE_LIMIT, SMALL_POOL

pytestmark = pytest.mark.skipif(bk.compiled, reason="pure Python: instance dicts")

FACTORIES = {
    "rr": lambda endpoints: bk.RoundRobin(endpoints),
    "wrr": lambda endpoints: bk.WeightedRoundRobin(endpoints),
    "envoy": lambda endpoints: bk.WeightedRoundRobin(endpoints, order="envoy"),
}


def _endpoints(count: int) -> list[bk.Endpoint]:
    return [bk.Endpoint(f"10.1.{i >> 8}.{i & 255}:80", weight=1 + i % 7) for i in range(count)]


def _exercise(lb: Any, count: int) -> None:
    """Every kind of pick and change a schedule balancer goes through."""
    for _ in range(3 * count):
        lb.release(lb.select(), ok=True, elapsed=0.001)
    lb.release(lb.select(avoid={"10.1.0.0:80"}), ok=False)
    lb.add(bk.Endpoint("10.9.9.9:80", weight=3))
    lb.set_weight("10.1.0.1:80", 9)
    lb.mark_down("10.1.0.2:80")
    lease = lb.select()
    lb.remove(lease.address)
    lb.release(lease)
    lb.mark_up("10.1.0.2:80")
    lb.update(_endpoints(count)[1:])
    for _ in range(3 * count):
        lb.release(lb.select(), ok=True, elapsed=0.001)
    lb.stats()
    lb._check_invariants()
    bk.with_health(lb, passive=bk.PassiveHealth(consecutive_failures=2))
    for _ in range(20):
        lb.release(lb.select(), ok=False)
    lb._check_invariants()


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("count", [5, SMALL_POOL + 200])
def test_instance_attributes_stay_within_the_shared_keys(kind: str, count: int) -> None:
    lb = FACTORIES[kind](_endpoints(count))
    _exercise(lb, count)
    assert len(vars(lb)) <= MAX_SHARED_ATTRIBUTES, sorted(vars(lb))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="CPython 3.11's specialisation")
@pytest.mark.parametrize("kind", ["rr", "wrr"])
def test_the_fast_paths_read_attributes_from_shared_keys(kind: str) -> None:
    lb = FACTORIES[kind](_endpoints(5))
    for _ in range(200):  # warm: the adaptive interpreter specialises after a few calls
        lb.release(lb.select(), ok=True, elapsed=0.001)
    select = type(lb).select
    loads = {
        ins.argval: ins.opname
        for ins in dis.get_instructions(select, adaptive=True)  # type: ignore[call-arg]
        if ins.opname.startswith("LOAD_ATTR") and ins.argval in ("_fast", "_clock")
    }
    assert loads == {"_fast": "LOAD_ATTR_INSTANCE_VALUE", "_clock": "LOAD_ATTR_INSTANCE_VALUE"}


def test_online_is_derived_from_the_origin() -> None:
    weights = [SCHEDULE_LIMIT // 2 + 7, 3, SCHEDULE_LIMIT // 2 + 1, 1]  # a cycle past the limit
    endpoints = [bk.Endpoint(f"10.2.0.{i}:80", weight=w) for i, w in enumerate(weights)]
    lb = bk.WeightedRoundRobin(endpoints)  # stepped by SmoothWeighted, not precomputed
    online = lb._online
    assert online is not None
    states, stepper, length = online
    assert [state.endpoint for state in states] == endpoints
    assert stepper is lb._origin.stepper
    assert length == sum(weights)
    lb.remove(endpoints[0].address)  # a cycle that fits: precomputed again
    assert lb._online is None
    assert bk.WeightedRoundRobin(_endpoints(5))._online is None
