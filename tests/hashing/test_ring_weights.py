"""What a weight change costs on the rings (issue 11): only the points that move.

IPHash and BoundedLoadHash: a weight change adds or drops the tail of that endpoint's point
sequence, nothing else. Ketama (both compat modes): a server's digest count depends on the total
weight (libketama ``floor(w / W * 40 * N)``, uhashring ``40 * N * w // W``), so one weight change
moves the digest count of every server. Digest k is the same at any count, so the other servers'
points stay on the ring as tombstones (live iff k < their count now, ``_tombs``): the change
touches only the changed server's points (main deleted a digest of every other server).
"""

from __future__ import annotations

from typing import Any

import pytest

import balancekit as bk
from balancekit.strategies.hashing import _points, ketama, ring

POOL = [f"10.6.0.{i}:11211" for i in range(50)]


def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Points passed to the ring's insert and delete, in total."""
    touched = [0]
    insert, delete = _points.PointRing.insert, _points.PointRing.delete

    def counting_insert(ring: Any, state: Any, points: list[int], first: Any) -> None:
        touched[0] += len(points)
        insert(ring, state, points, first)

    def counting_delete(ring: Any, state: Any, points: list[int]) -> None:
        touched[0] += len(points)
        delete(ring, state, points)

    monkeypatch.setattr(_points.PointRing, "insert", counting_insert)
    monkeypatch.setattr(_points.PointRing, "delete", counting_delete)
    return touched


@pytest.mark.parametrize("name", ["IPHash", "BoundedLoadHash"])
def test_a_weight_change_touches_only_that_endpoints_tail(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb: Any = getattr(bk, name)(POOL)
    touched = counted(monkeypatch)
    lb.set_weight(POOL[7], 3)
    assert touched[0] == 2 * 160  # points 160..479 of that endpoint, nothing else
    lb.set_weight(POOL[7], 2)
    assert touched[0] == 3 * 160
    fresh = getattr(bk, name)(list(lb.endpoints))
    assert lb.continuum() == fresh.continuum()


@pytest.mark.parametrize("compat", ["libketama", "uhashring"])
def test_ketama_weight_change_touches_only_that_servers_points(
    compat: ketama.Compat, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb = bk.Ketama(POOL, compat=compat)
    before = {address: 0 for address in POOL}
    for _, address in lb.continuum():
        before[address] += 1
    touched = counted(monkeypatch)
    hashed = [0]
    md5 = ketama.md5

    def counting_md5(data: bytes) -> Any:
        hashed[0] += 1
        return md5(data)

    monkeypatch.setattr(ketama, "md5", counting_md5)
    lb.set_weight(POOL[0], 2)
    after = {address: 0 for address in POOL}
    for _, address in lb.continuum():
        after[address] += 1
    assert all(after[a] != before[a] for a in POOL)  # every server's share re-divided...
    grown = after[POOL[0]] - before[POOL[0]]
    assert touched[0] == grown  # ...but only the changed server's new digests reach the ring
    assert hashed[0] == grown // 4  # one MD5 a new digest, none for the other servers
    for weight in (1, 2, 1, 2, 1):  # back and forth: the dead tails revive, nothing moves
        lb.set_weight(POOL[0], weight)
    assert touched[0] == grown
    monkeypatch.undo()
    fresh = bk.Ketama(list(lb.endpoints), compat=compat)
    assert lb.continuum() == fresh.continuum()
    assert [lb.lookup(f"k{i}") for i in range(500)] == [fresh.lookup(f"k{i}") for i in range(500)]


CAPPED = [f"10.7.{i // 250}.{i % 250}:80" for i in range(2_000)]


@pytest.mark.parametrize("name", ["IPHash", "BoundedLoadHash"])
def test_past_the_ring_cap_a_change_touches_only_its_own_points(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (ringscale): with a divisor above 1 (here 2, as 100,000 equal endpoints get
    under the default 8M-point ``max_ring_size``) add, remove, set_weight and a 1 % churn
    touch only the changed endpoints' ``replicas * w // 2`` points and never rebuild
    (main compared the whole eligible set, O(N), on every change: ``_rebuild`` ran)."""
    pool = [bk.Endpoint(address, weight=2) for address in CAPPED]
    options: dict[str, int] = {"replicas": 16}
    if name == "IPHash":
        options["max_ring_size"] = 32_768  # 64,000 points wanted: d = 2
    else:  # no max_ring_size option: the per-endpoint bound, lowered, gives d = 2 instead
        monkeypatch.setattr(ring, "MAX_POINTS_PER_ENDPOINT", 24)
    rebuilt = [0]

    class Counting(getattr(bk, name)):  # type: ignore[misc]  # a subclass: either build
        def _rebuild(self, eligible: Any) -> None:
            rebuilt[0] += 1
            super()._rebuild(eligible)

    lb: Any = Counting(pool, **options)
    assert lb._divisor == 2  # 16 points an endpoint of weight 2, 24 of weight 3
    assert rebuilt[0] == 1  # the first build
    rebuilt[0] = 0
    touched = counted(monkeypatch)
    lb.add(bk.Endpoint("10.8.0.1:80", weight=2))
    assert rebuilt[0] == 0  # main: 1 (the whole eligible set compared)
    lb.remove(CAPPED[3])
    assert touched[0] == 16 + 16
    lb.set_weight(CAPPED[5], 3)  # its tail of 8 points
    assert touched[0] == 32 + 8 and lb._divisor == 2
    lb.set_weight(CAPPED[5], 2)
    assert touched[0] == 32 + 16
    churn = [bk.Endpoint(a, weight=2) for a in CAPPED[30:]] + [
        bk.Endpoint(f"10.9.0.{i}:80", weight=2) for i in range(20)
    ]
    lb.update(churn)  # 20 in, 30 out (29 of CAPPED[:30] and the one added above)
    assert touched[0] == 48 + (20 + 30) * 16
    assert rebuilt[0] == 0 and lb._divisor == 2
    lb._check_invariants()
    fresh: Any = getattr(bk, name)(list(lb.endpoints), **options)
    assert lb.continuum() == fresh.continuum()
