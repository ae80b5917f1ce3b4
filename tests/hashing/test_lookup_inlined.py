"""IPHash's and Maglev's ``lookup`` inline their pick (issue 11): the same endpoint as ``select``.

Before, ``lookup`` was ``_pick(context, ()).endpoint``; the inlined copies must answer exactly as
that general path in every state the pick knows: a clean ring and one with changes pending in its
overlay, a Maglev table being filled a chunk at a time and one holding endpoints out (marked down
while the new table is built), keys as ASCII ``str``, other text (a lone surrogate too), ``bytes``,
through a key function, and junk that must raise as ``select`` raises.
"""

from __future__ import annotations

import random

import pytest

import balancekit as bk

KEYS = ["", "a", "user-42", "é", "\ud800", "日本", "10.1.2.3"]


def _answer(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except bk.BalancekitError as error:
        return type(error)


def _compare(lb: bk.BalancerBase, keys: list[object]) -> None:
    for key in keys:
        found = _answer(lambda key=key: lb.lookup(key).address)  # type: ignore[attr-defined]
        lease = _answer(lambda key=key: lb.select(key))
        if isinstance(lease, bk.Lease):
            lb.release(lease)
            assert found == lease.address, key
        else:
            assert found == lease, key


FACTORIES = {
    "IPHash": lambda endpoints, key: bk.IPHash(endpoints, replicas=40, key=key),
    "Maglev": lambda endpoints, key: bk.Maglev(endpoints, table_size=1009, key=key),
    "Maglev-big": lambda endpoints, key: bk.Maglev(endpoints, table_size=65537, key=key),
    "Maglev-envoy": lambda endpoints, key: bk.Maglev(
        endpoints, table_size=1009, compat="envoy", key=key
    ),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("seed", range(6))
def test_lookup_answers_as_select(name: str, seed: int) -> None:
    rng = random.Random(seed)
    key = (lambda context: context.get("k")) if seed % 3 == 2 else None
    endpoints = [bk.Endpoint(f"10.0.0.{i}:80", weight=rng.randint(1, 4)) for i in range(6)]
    lb = FACTORIES[name](endpoints, key)

    def context(value: object) -> object:
        return {"k": value} if key is not None else value

    keys: list[object] = [context(k) for k in KEYS]
    keys += [context(f"k{rng.randrange(10**6)}") for _ in range(40)]
    keys += [context(b"raw-bytes"), context(7), context(None)]
    for _ in range(25):
        _compare(lb, keys)  # the state the last change left: pending, filling, held out
        address = f"10.0.0.{rng.randrange(9)}:80"
        roll = rng.random()
        if address not in lb:
            lb.add(bk.Endpoint(address, weight=rng.randint(1, 4)))
        elif roll < 0.3:
            lb.remove(address)
        elif roll < 0.55:
            lb.mark_down(address)
        elif roll < 0.8:
            lb.mark_up(address)
        else:
            lb.set_weight(address, rng.randint(1, 4))
        lb._check_invariants()
    lb.settle()  # type: ignore[attr-defined]
    _compare(lb, keys)
    for address in [e.address for e in lb.endpoints]:
        lb.remove(address)
    _compare(lb, keys)  # empty: both raise NoEndpointAvailable
