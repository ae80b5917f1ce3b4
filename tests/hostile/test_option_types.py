"""Junk of the wrong type in an option or an argument ends in the documented error, in both builds.

The compiled build (mypyc) checks a parameter's declared type on entry: ``table_size: int``
given 2.5 raised a bare ``TypeError``, ``weight: int`` given ``True`` was taken as the int 1,
and ``blackout_period: float`` given an int was refused — where the pure-Python modules raise
:class:`InvalidOption` / :class:`InvalidEndpoint` saying what is wrong, or accept the int. CI
runs this file against both builds (``.ci/run``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import balancekit as bk

EPS = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
NOT_AN_INT = [True, False, 2.5, "1", None, math.nan, 10**400]
NOT_A_NUMBER = [True, "1", None, 10**400, -(10**400), math.inf, math.nan]
NOT_A_NAME = [True, 1, 2.5, None, b"nginx", ("envoy",)]

CASES: list[tuple[str, Callable[[Any], object], list[Any], type[bk.BalancekitError]]] = [
    ("Maglev(table_size)", lambda v: bk.Maglev(EPS, table_size=v), NOT_AN_INT, bk.InvalidOption),
    (
        "Maglev(compat)",
        lambda v: bk.Maglev(EPS, compat=v),
        NOT_A_NAME[:3] + NOT_A_NAME[4:],
        bk.InvalidOption,
    ),
    ("IPHash(replicas)", lambda v: bk.IPHash(EPS, replicas=v), NOT_AN_INT, bk.InvalidOption),
    (
        "IPHash(max_ring_size)",
        lambda v: bk.IPHash(EPS, max_ring_size=v),
        NOT_AN_INT,
        bk.InvalidOption,
    ),
    (
        "BoundedLoadHash(epsilon)",
        lambda v: bk.BoundedLoadHash(EPS, epsilon=v),
        NOT_A_NUMBER,
        bk.InvalidOption,
    ),
    (
        "BoundedLoadHash(replicas)",
        lambda v: bk.BoundedLoadHash(EPS, replicas=v),
        NOT_AN_INT,
        bk.InvalidOption,
    ),
    ("Ketama(compat)", lambda v: bk.Ketama(EPS, compat=v), NOT_A_NAME, bk.InvalidOption),
    (
        "WeightedRoundRobin(order)",
        lambda v: bk.WeightedRoundRobin(EPS, order=v),
        NOT_A_NAME,
        bk.InvalidOption,
    ),
    ("Random(seed)", lambda v: bk.Random(EPS, seed=v), [True, 2.5, "1"], bk.InvalidOption),
    (
        "WeightedRandom(seed)",
        lambda v: bk.WeightedRandom(EPS, seed=v),
        [True, 2.5, "1"],
        bk.InvalidOption,
    ),
    (
        "PowerOfTwoChoices(seed)",
        lambda v: bk.PowerOfTwoChoices(EPS, seed=v),
        [True, 2.5, "1"],
        bk.InvalidOption,
    ),
    ("PeakEWMA(seed)", lambda v: bk.PeakEWMA(EPS, seed=v), [True, 2.5, "1"], bk.InvalidOption),
    ("Random(rng)", lambda v: bk.Random(EPS, rng=v), [True, 2.5, "1", 7], bk.InvalidOption),
    (
        "PowerOfTwoChoices(rng)",
        lambda v: bk.PowerOfTwoChoices(EPS, rng=v),
        [True, 2.5, "1", 7],
        bk.InvalidOption,
    ),
    (
        "Endpoint(weight)",
        lambda v: bk.Endpoint("10.0.0.9:80", weight=v),
        NOT_AN_INT,
        bk.InvalidEndpoint,
    ),
    (
        "RoundRobin.set_weight",
        lambda v: bk.RoundRobin(EPS).set_weight(EPS[0], v),
        NOT_AN_INT,
        bk.InvalidEndpoint,
    ),
    (
        "LeastConnections.set_weight",
        lambda v: bk.LeastConnections(EPS).set_weight(EPS[0], v),
        NOT_AN_INT,
        bk.InvalidEndpoint,
    ),
    (
        "IPHash.set_weight",
        lambda v: bk.IPHash(EPS).set_weight(EPS[0], v),
        NOT_AN_INT,
        bk.InvalidEndpoint,
    ),
] + [
    (
        f"LoadReportWeightedRoundRobin({option})",
        lambda v, option=option: bk.LoadReportWeightedRoundRobin(EPS, **{option: v}),
        NOT_A_NUMBER,
        bk.InvalidOption,
    )
    for option in (
        "blackout_period",
        "weight_expiration_period",
        "weight_update_period",
        "error_utilization_penalty",
    )
]

PARAMS = [
    pytest.param(make, junk, error, id=f"{name}-{junk!r}"[:60])
    for name, make, junks, error in CASES
    for junk in junks
]


@pytest.mark.parametrize(("make", "junk", "error"), PARAMS)
def test_junk_of_the_wrong_type_is_the_documented_error(
    make: Callable[[Any], object], junk: Any, error: type[bk.BalancekitError]
) -> None:
    with pytest.raises(error):
        make(junk)


@pytest.mark.parametrize(
    "make",
    [
        lambda: bk.LoadReportWeightedRoundRobin(EPS, blackout_period=3, weight_update_period=2),
        lambda: bk.BoundedLoadHash(EPS, epsilon=1),
        lambda: bk.Maglev(EPS, table_size=307),
        lambda: bk.Endpoint("10.0.0.9:80", weight=3),
    ],
    ids=["int periods", "int epsilon", "table_size", "weight"],
)
def test_an_int_where_a_number_is_documented_is_taken(make: Callable[[], object]) -> None:
    make()
