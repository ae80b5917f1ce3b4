"""gRPC C-core's static stride scheduler weights (``StaticStrideScheduler::Make``), for
:class:`~balancekit.strategies.load_report.LoadReportWeightedRoundRobin` (gRFC A58).

Source: gRPC C-core ``src/core/load_balancing/weighted_round_robin/static_stride_scheduler.cc``.
The scaling is split in two so a membership change scales nothing: :func:`stride_scale` (the
scale, floor and mean: C-level passes) and the per-weight step, either for every weight at once
(:func:`_scaled_all`, the periodic update) or for one when a pick first reads it
(:func:`_scaled_at`); all give what :func:`stride_weights` gives from scratch.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Final

from ._orca import MAX_WEIGHT, MIN_WEIGHT

__all__ = [
    "STRIDE_MAX_RATIO",
    "STRIDE_MAX_WEIGHT",
    "STRIDE_MIN_RATIO",
    "stride_scale",
    "stride_weights",
]

#: The largest scaled weight of the stride scheduler (a uint16, as gRPC's ``kMaxWeight``).
STRIDE_MAX_WEIGHT: Final = 65535
#: No endpoint weighs more than this many times the mean (gRPC's ``kMaxRatio``) ...
STRIDE_MAX_RATIO: Final = 10.0
#: ... nor less than this fraction of the mean (gRPC's ``kMinRatio``).
STRIDE_MIN_RATIO: Final = 0.01

#: The round-robin scheduler's scale parameters: a placeholder (round robin never reads them).
_NO_SCALE: Final[tuple[tuple[float, ...], float, int, int]] = ((), 1.0, 1, 1)


def _lround(value: float) -> int:
    """C's ``lround``: halves away from zero (Python's ``round`` rounds them to even)."""
    return math.floor(value + 0.5)


def stride_scale(weights: Sequence[float], positive: int) -> tuple[float, int, int]:
    """``StaticStrideScheduler::Make``'s scale, floor and mean for clamped ``weights`` (every
    one 0 or in ``[MIN_WEIGHT, MAX_WEIGHT]``) of which ``positive`` (>= 2) are above 0: the
    ``scale`` that maps the largest (capped at :data:`STRIDE_MAX_RATIO` x the mean) to
    :data:`STRIDE_MAX_WEIGHT`, the ``lowest`` scaled weight, and the ``scaled_mean`` that
    weights of 0 take. Sum, max and count are C-level passes (adding the 0s changes no sum)."""
    mean = sum(weights) / positive
    largest = min(max(weights), STRIDE_MAX_RATIO * mean)
    scale = STRIDE_MAX_WEIGHT / largest
    scaled_mean = _lround(scale * mean)
    lowest = max(1, _lround(scaled_mean * STRIDE_MIN_RATIO))  # <= scaled_mean <= the maximum
    return scale, lowest, scaled_mean


def stride_weights(weights: list[float]) -> array[int] | None:
    """Scale A58 weights for the static stride scheduler, or ``None`` for plain round robin.

    As gRPC C-core's ``StaticStrideScheduler::Make``: fewer than two positive weights means
    round robin; weights of 0 (no valid report) take the mean of the positive ones; the largest
    is capped at :data:`STRIDE_MAX_RATIO` x the mean and scaled to :data:`STRIDE_MAX_WEIGHT`;
    none falls below :data:`STRIDE_MIN_RATIO` x the mean (nor below 1). After a membership
    change the scheduler scales each weight when a pick first reads it (:func:`_scaled_at`),
    to the same values.
    """
    # Clamped as LoadReport.weight clamps (finite, float32's range), so any input is safe here.
    weights = [
        (MAX_WEIGHT if weight > MAX_WEIGHT else weight) if weight >= MIN_WEIGHT else 0.0
        for weight in weights
    ]
    positive = len(weights) - weights.count(0.0)
    if positive < 2:
        return None
    return _scaled_all(weights, *stride_scale(weights, positive))


def _scaled_all(
    weights: Sequence[float], scale: float, lowest: int, scaled_mean: int
) -> array[int]:
    """Every weight scaled (one comprehension, the clamps written as comparisons: ~3x faster
    than min/max/_lround calls at n = 10,000): what :func:`_scaled_at` gives for each."""
    floor = math.floor
    return array(
        "H",
        [
            (
                scaled
                if lowest <= (scaled := floor(weight * scale + 0.5)) <= STRIDE_MAX_WEIGHT
                else (lowest if scaled < lowest else STRIDE_MAX_WEIGHT)
            )
            if weight > 0
            else scaled_mean
            for weight in weights
        ],
    )


def _scaled_at(
    scale: tuple[tuple[float, ...], float, int, int], weights: array[int], index: int
) -> int:
    """The scheduler's weight ``index``, scaled at its first read (0 in ``weights``: not yet),
    as :func:`stride_weights` scales it: a change scales no weight, the picks after it each
    one they read, once (concurrent picks may both write it: the same value)."""
    raw, factor, lowest, scaled_mean = scale
    weight = raw[index]
    if weight > 0:
        scaled = math.floor(weight * factor + 0.5)
        if scaled < lowest:
            scaled = lowest
        elif scaled > STRIDE_MAX_WEIGHT:
            scaled = STRIDE_MAX_WEIGHT
    else:
        scaled = scaled_mean
    weights[index] = scaled
    return scaled
