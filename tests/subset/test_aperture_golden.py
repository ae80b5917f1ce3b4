"""Golden tests for the aperture ring, from Finagle's own tests.

Values are Finagle's published test values, each test naming its source:

* ``RING_TEST``: finagle-core/src/test/scala/com/twitter/finagle/loadbalancer/aperture/
  RingTest.scala at twitter/finagle e41975a5c0033cd9e34d8e77815a83a63a4423e3 (the last commit
  before a5004ecc8 removed Ring.scala).
* ``WEIGHTED_TEST``: finagle-core/src/test/scala/com/twitter/finagle/loadbalancer/aperture/
  WeightedApertureTest.scala at twitter/finagle 4feb34cb949918c572a6152327212e062527bd62; the
  node weights are those its comments list for its deterministic Rng(123) draws.

Finagle's ``FromInstanceId(id, n)`` is ``DeterministicAperture(id, n)`` here; its
``adjustWeights(weights, coord)`` is ``DeterministicAperture(id, n, weighted=True)``'s coverage.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit.subset import Aperture, DeterministicAperture
from balancekit.subset._ring import Ring, aperture_width, exact_coverage, weighted_coverage

RING_TEST = "RingTest.scala @ e41975a5c0033cd9e34d8e77815a83a63a4423e3"
WEIGHTED_TEST = "WeightedApertureTest.scala @ 4feb34cb949918c572a6152327212e062527bd62"


def approx(a: float, b: float, eps: float = 1e-4) -> bool:  # RingTest.assertApproxEqual
    return abs(a - b) < eps


# -- RingTest.scala ---------------------------------------------------------------------------


@given(st.integers(1, 20), st.integers(0, 65))
def test_ring_range_has_a_valid_size(remote_size: int, client_id: int) -> None:
    """RING_TEST "Ring.range has a valid size": 65 clients, min aperture 12, 1..20 servers."""
    local_unit = 1.0 / 65
    offset = (client_id * local_unit) % 1.0
    ring = Ring(remote_size)
    width = aperture_width(local_unit, 1.0 / remote_size, 12)
    span = ring.range(offset, width)
    assert len(ring.indices(offset, width)) == span
    assert min(remote_size, 12) <= span <= remote_size


def test_ring_range_tricky_values() -> None:
    """RING_TEST "Ring.range has a valid size with tricky values" (Finagle's CSL-9607)."""
    offset, width, ring = 0.09230769230769231, 0.9230769230769231, Ring(13)
    span = ring.range(offset, width)
    assert len(ring.indices(offset, width)) == span
    assert 12 <= span <= 13


def test_range_boundary_cases() -> None:
    """RING_TEST "range boundary cases"."""
    one = Ring(1)
    for width in (0.0, 0.5, 1.0):
        assert one.range(0.3, width) == 1
    size = 4321
    ring = Ring(size)
    assert ring.range(0.7, 0.0) == 1
    assert ring.range(0.7, 5e-324) == 1
    assert ring.range(0.7, 0.000001) == 1
    assert ring.range(0.7, 0.999999) == size
    assert ring.range(0.7, 1.0 - 2**-53) == size
    assert ring.range(0.7, 1.0) == size


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_full_width_covers_the_ring(size: int, ident: int) -> None:
    """RING_TEST "range boundary cases": ``range(id / size, 1.0) == size``."""
    assert Ring(size).range((ident / size) % 1.0, 1.0) == size


@pytest.mark.parametrize(
    ("offset", "width", "expected"),
    [
        (0.1, 0.3, {1, 2, 3}),  # aligned with ring units
        (0.1, 0.35, {1, 2, 3, 4}),  # misaligned at end
        (0.35, 0.15, {3, 4}),  # misaligned at start
        (0.25, 0.2, {2, 3, 4}),  # misaligned at both
        (0.75, 0.5, {7, 8, 9, 0, 1, 2}),  # "pick2: wraps around and respects weights"
    ],
)
def test_range_projects_pick2(offset: float, width: float, expected: set[int]) -> None:
    """RING_TEST "range projects pick2": the indices a pick can return, and their count."""
    ring = Ring(10)
    assert set(ring.indices(offset, width)) == expected
    assert ring.range(offset, width) == len(expected)


def test_weight() -> None:
    """RING_TEST "weight" and "Handles full-width windows when offset + width results in an
    overlap" (the externally reported nvartolomei case)."""
    ring = Ring(10)
    assert ring.range(1 / 4, 1 / 4) == 3
    assert ring.indices(1 / 4, 1 / 4) == [2, 3, 4]
    assert ring.range(3 / 4, 1 / 2) == 6
    assert ring.indices(3 / 4, 1 / 2) == [7, 8, 9, 0, 1, 2]
    for i in range(10):
        assert ring.range(i / 10, 1 / 10) == 1
        assert ring.indices(i / 10, 1 / 10) == [i % 10]
    assert approx(ring.weight(5, 0.5, 0.1), 1.0)
    assert approx(ring.weight(5, 0.5, 1.0), 1.0)
    assert approx(ring.weight(0, 0.75, 0.5), 1.0)
    assert approx(ring.weight(0, 0.0, 1.0), 1.0)
    assert approx(ring.weight(9, 0.0, 1.0), 1.0)
    assert approx(ring.weight(9, 0.5, 1.0), 1.0)
    assert approx(ring.weight(0, 0.0, 0.1), 1.0)
    assert approx(ring.weight(1, 0.1, 0.1), 1.0)
    assert approx(Ring(4).weight(0, 1 / 8, 1.0), 1.0)


@given(st.integers(10, 89))
def test_weight_zero_when_not_overlapping(hundredths: int) -> None:
    """RING_TEST "Weight should be 0 if offset > unitWidth and we don't overlap the ring
    boundary"."""
    assert approx(Ring(10).weight(0, hundredths * 0.01, 0.1), 0.0)


@given(st.integers(0, 99))
def test_partial_weights(thousandths: int) -> None:
    """RING_TEST "Partial weights without overlapping the ring boundary"."""
    offset = thousandths * 0.001
    assert approx(Ring(10).weight(0, offset, 0.1), (0.1 - offset) / 0.1)


@given(st.integers(0, 99), st.integers(0, 9))
def test_weight_zero_for_zero_width(hundredths: int, index: int) -> None:
    """RING_TEST "Weight should be 0 if width is 0" (offsets in [0, 1): ours are validated)."""
    assert approx(Ring(10).weight(index, hundredths * 0.01, 0.0), 0.0)


@pytest.mark.parametrize(("index", "width"), [(10, 0.5), (0, 1.5), (0, -0.5)])
def test_weight_refuses_bad_arguments(index: int, width: float) -> None:
    """RING_TEST "weight throws exceptions when appropriate" (ours: InvalidOption)."""
    with pytest.raises(bk.InvalidOption):
        Ring(10).weight(index, 0.0, width)


def test_pick2_respects_edge_weights() -> None:
    """RING_TEST "pick2: wraps around and respects weights": offset 3/4, width 1/2 over 10
    servers picks {7, 8, 9, 0, 1, 2}, the edge servers 7 and 2 about half as often as the rest.
    Here through the Aperture balancer: client 3 of 4 starts at 3/4, and a logical aperture of
    5 of 10 servers makes a slice of two client units, 1/2."""
    pool = [f"s{i}:80" for i in range(10)]  # sorts as s0..s9: ring index i is s{i}
    lb = Aperture(pool, instance_id=3, instances=4, min_aperture=5, seed=12345)
    counts: Counter[str] = Counter()
    for _ in range(60_000):
        lease = lb.select()
        counts[lease.endpoint.address] += 1
        lb.release(lease)
    assert set(counts) == {f"s{i}:80" for i in (7, 8, 9, 0, 1, 2)}
    inner = [counts[f"s{i}:80"] for i in (8, 9, 0, 1)]
    edges = [counts["s7:80"], counts["s2:80"]]
    # RingTest's assertBalanced: within each group, any two differ by < 10 %
    for group in (inner, edges):
        assert (max(group) - min(group)) / max(group) < 0.1
    assert abs(sum(edges) / 2 / (sum(inner) / 4) - 0.5) < 0.05


# -- DeterministicAperture.dApertureWidth -------------------------------------------------------


def test_aperture_width_covers_the_aperture_in_client_units() -> None:
    """dApertureWidth: ceil(aperture x clients / servers) client units, at most the ring."""
    assert aperture_width(1 / 4, 1 / 10, 12) == 1.0  # more than the ring
    assert aperture_width(1 / 65, 1 / 13, 12) == 0.9230769230769231  # RING_TEST tricky values
    assert aperture_width(1 / 5, 1 / 15, 12) == 0.8  # WEIGHTED_TEST (1, 5): sum 0.8
    assert math.isclose(aperture_width(1 / 20, 1 / 20, 12), 0.65)  # float: 13 units of 20


# -- WeightedApertureTest.scala -------------------------------------------------------------------

WEIGHTS_10 = [  # WEIGHTED_TEST "adjustWeightsWithCoord can wrap around", its comment
    0.08754127852514175, 0.07160485112997249, 0.007191702249367171, 0.07962609718390336,
    0.05787169373422368, 0.09081256181340881, 0.014891457880475457, 0.0975219897302887,
    0.006559603048899776, 0.0069517882499888,
]  # fmt: skip
WEIGHTS_15 = [  # WEIGHTED_TEST "adjustWeights creates reasonable subsets (no wraparound)"
    0.06818127601781632, 0.02676535334991952, 0.024259669941850928, 0.060227644665411986,
    0.021662557088166313, 0.04581934074401264, 0.008902600511190118, 0.012225295738506748,
    0.03381119880745816, 0.09320068787692642, 0.06778865989313106, 1.8821268751749722e-4,
    0.04998637327300792, 0.09808325343250059, 0.08018058428232361,
]  # fmt: skip
WEIGHTS_20 = [  # WEIGHTED_TEST "virtual and real indices are correct"
    0.09081256181340881, 0.014891457880475457, 0.0975219897302887, 0.006559603048899776,
    0.0069517882499888, 0.009075229373741134, 0.042446672815094705, 0.08743910443467884,
    0.057510386410179914, 0.03964968696216305, 0.025831524999190184, 0.015279215278932223,
    0.026042993046009957, 0.0461681947326973, 0.04391007905378173, 0.02114054333698702,
    0.06142121425583968, 0.003345791160297063, 0.06888961212637748, 0.06841127998963015,
]  # fmt: skip


def _adjust(weights: list[float], instance_id: int, instances: int) -> list[float]:
    """Finagle's ``adjustWeights(weights, FromInstanceId(id, n))`` (min aperture 12)."""
    aperture = DeterministicAperture(instance_id, instances, weighted=True)
    return weighted_coverage(weights, aperture.offset, aperture.width(len(weights)))


def test_normalize() -> None:
    """WEIGHTED_TEST "normalize correctly normalizes": [0.5, 1, 1.5, 2] -> [.1, .2, .3, .4]
    (seen through a full-width coverage, which is the normalised weights)."""
    assert all(
        approx(a, b)
        for a, b in zip(
            weighted_coverage([0.5, 1.0, 1.5, 2.0], 0.0, 1.0), [0.1, 0.2, 0.3, 0.4], strict=True
        )
    )
    assert approx(sum(weighted_coverage([0.5, 0.0001, 0.0, 1.0], 0.0, 1.0)), 1.0)


def test_adjust_weights_wraps_around() -> None:
    """WEIGHTED_TEST "adjustWeightsWithCoord can wrap around": 10 nodes, FromInstanceId(1, 4):
    all 10 indices, weights summing to 1.0."""
    adjusted = _adjust(WEIGHTS_10, 1, 4)
    assert [i for i, w in enumerate(adjusted) if w > 0] == list(range(10))
    assert approx(sum(adjusted), 1.0)


def test_adjust_weights_reasonable_subsets() -> None:
    """WEIGHTED_TEST "adjustWeights creates reasonable subsets (no wraparound)": 15 nodes;
    FromInstanceId(1, 5) -> indices 3..14, sum 0.8; FromInstanceId(0, 5) -> 0..13, sum 0.8."""
    first = _adjust(WEIGHTS_15, 1, 5)
    assert [i for i, w in enumerate(first) if w > 0] == list(range(3, 15))
    assert approx(sum(first), 0.8)
    second = _adjust(WEIGHTS_15, 0, 5)
    assert [i for i, w in enumerate(second) if w > 0] == list(range(14))
    assert approx(sum(second), 0.8)


def test_virtual_and_real_indices() -> None:
    """WEIGHTED_TEST "virtual and real indices are correct": 20 nodes, FromInstanceId(4, 20):
    the aperture holds nodes 2..18, so its first member is node 2 and its 17th node 18. Through
    the subsetter: endpoints whose address order is the node order and whose integer weights
    keep Finagle's proportions to 1 part in 10**6."""
    pool = [
        bk.Endpoint(f"n{i:02d}:80", weight=max(1, round(w * 10_000_000)))
        for i, w in enumerate(WEIGHTS_20)
    ]
    chosen = DeterministicAperture(4, 20, weighted=True).subset(pool)
    assert [e.address for e in chosen] == [f"n{i:02d}:80" for i in range(2, 19)]
    assert [i for i, w in enumerate(_adjust(WEIGHTS_20, 4, 20)) if w > 0] == list(range(2, 19))


def test_discards_weights_outside_the_aperture() -> None:
    """WEIGHTED_TEST "discards weights outside the aperture when building pdist": 20 equal
    nodes, FromInstanceId(0, 20): fewer than 15 nodes keep a weight (index 14 is out)."""
    pool = [f"n{i:02d}:80" for i in range(20)]
    chosen = DeterministicAperture(0, 20, weighted=True).subset(pool)
    assert len(chosen) <= 14
    assert len(_adjust([0.1] * 20, 0, 20)) == 20


@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_exact_coverage_is_rings_weight_without_float_drift(
    instances: int, servers: int, data: st.DataObject
) -> None:
    """The subsetter's exact integer coverage equals Finagle's float ``Ring.weight`` on every
    index of ``Ring.indices`` for the same slice, up to float rounding (1e-9), and always
    covers exactly ``units x servers / instances`` servers' worth. (The float ring can miss a
    whole edge server: 57 clients x 57 servers, client 39, ``Ring.range`` counts one too few;
    see test_float_ring_can_drop_an_edge_server.)"""
    client = data.draw(st.integers(0, instances - 1))
    aperture = DeterministicAperture(client, instances)
    units = aperture.units(servers)
    exact = exact_coverage(client, instances, servers, units)
    ring, offset, width = Ring(servers), aperture.offset, aperture.width(servers)
    floating = [0.0] * servers
    for index in ring.indices(offset, width):
        floating[index] = ring.weight(index, offset, width)
        assert abs(exact[index] - floating[index]) < 1e-9
    assert math.isclose(sum(exact), min(servers, units * servers / instances), rel_tol=1e-12)


def test_float_ring_can_drop_an_edge_server() -> None:
    """Why the subsetter does not use the float ring: for client 39 of 57 over 57 servers the
    slice is 12 whole servers, 39..50, but 39/57 in floats is just below server 39's arc, so
    the float ring answers 38..49: server 38 at a weight of ~1e-15, server 50 not at all."""
    ring, aperture = Ring(57), DeterministicAperture(39, 57)
    assert ring.indices(aperture.offset, aperture.width(57)) == list(range(38, 50))
    chosen = aperture.coverage([f"s{i:02d}:80" for i in range(57)])
    assert [e.address for e, _ in chosen] == [f"s{i:02d}:80" for i in range(39, 51)]
    assert all(weight == 1.0 for _, weight in chosen)


# -- ProcessCoordinateTest.scala (twitter/finagle 4feb34cb949918c572a6152327212e062527bd62) -----


@given(st.integers(1, 2**31 - 1).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_coordinate_range(id_and_count: tuple[int, int]) -> None:
    """ProcessCoordinateTest "setCoordinate range": for any id < count the offset is in
    [0, 1); ``setCoordinate(0, 0)`` is refused ("setCoordinate")."""
    instance_id, count = id_and_count
    assert 0.0 <= DeterministicAperture(instance_id, count).offset < 1.0
    with pytest.raises(bk.InvalidOption):
        DeterministicAperture(0, 0)
