"""Owner ids of the rings (issue 11): the ring stores owners as small ints into a table of
endpoint states (``_points``, ``_view``), and reuses the id of an endpoint that left once a merge
has laid out a base without it. A view a lock-free reader still holds must keep answering with
its own owners across that reuse, and readers racing changes never see a half-made ring.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.hashing import _points

RINGS = {
    "IPHash": bk.IPHash,
    "BoundedLoadHash": bk.BoundedLoadHash,
    "Ketama": bk.Ketama,
    "Ketama-uhashring": lambda pool: bk.Ketama(pool, compat="uhashring"),
}
KEYS = [f"user-{i}" for i in range(400)]


def pool(n: int, net: int = 7) -> list[str]:
    return [f"10.{net}.{i >> 8}.{i & 255}:80" for i in range(n)]


@pytest.mark.parametrize("name", sorted(RINGS))
def test_an_old_view_keeps_its_owners_when_their_ids_are_reused(name: str) -> None:
    lb: Any = RINGS[name](pool(60))  # 9,600 points: above SMALL, changes stay pending
    gone = pool(60)[3]
    view = lb._view
    items = [(point, state.endpoint.address) for point, state in view.items()]
    probes = range(0, 1 << 32, 1 << 20)
    answers = [view.owner_at(hashed) for hashed in probes]
    freed = lb._ring._ids[lb._members[gone]]
    lb.remove(gone)
    with lb._lock:
        lb._view = lb._ring.settle(now=True)  # a base without it: its id is free now
    assert freed in lb._ring._free
    lb.add("10.99.0.1:80")  # takes the free id, in the new base's table
    with lb._lock:
        lb._view = lb._ring.settle(now=True)
    assert lb._ring._ids[lb._members["10.99.0.1:80"]] == freed
    assert view.table[freed].endpoint.address == gone  # the old view's table is its own
    assert [(p, s.endpoint.address) for p, s in view.items()] == items
    assert [view.owner_at(hashed) for hashed in probes] == answers
    lb._check_invariants()
    fresh = RINGS[name](list(lb.endpoints))
    assert [lb.lookup(k).address for k in KEYS] == [fresh.lookup(k).address for k in KEYS]


@pytest.mark.parametrize("name", sorted(RINGS))
def test_lookups_racing_changes_and_id_reuse_return_members(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_points, "COMPACT", 4)  # merges (and id reuse) every few changes
    monkeypatch.setattr(_points, "STEP", 256)
    monkeypatch.setattr(_points, "PER_POINT", 4)
    members = pool(40)
    lb: Any = RINGS[name](members)  # 6,400 points
    ever = set(members)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for key in KEYS[:50]:
                    address = lb.lookup(key).address
                    assert address in ever, address  # a member at some point, never None
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    deadline = time.monotonic() + 20
    try:
        for i in range(120):
            if time.monotonic() > deadline or errors:
                break
            address = f"10.8.{i >> 8}.{i & 255}:80"
            ever.add(address)  # before it can be picked
            lb.add(address)
            members.append(address)
            lb.remove(members.pop(i % 7))
            if i % 5 == 0:
                lb.mark_down(members[3])
                lb.mark_up(members[3])
    finally:
        stop.set()
        for thread in readers:
            thread.join(10)
    assert not errors, errors[0]
    added = [lb._ring._ids[lb._members[a]] for a in members if a.startswith("10.8.")]
    assert min(added) < 40  # an id freed by a merge was given to a new endpoint
    lb._check_invariants()
    fresh = RINGS[name](list(lb.endpoints))
    assert [lb.lookup(k).address for k in KEYS] == [fresh.lookup(k).address for k in KEYS]
