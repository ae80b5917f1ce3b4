"""Smooth WRR against NGINX's loop with a tiny precomputation limit (issue 10, breaker).

tests/stateful/test_smooth_wrr_changes.py checks every pick against the model with weights
1-6, which always precompute. Here SCHEDULE_LIMIT is made tiny, so the same churn runs through
the online stepper, transients longer than the limit, and the switches between them and the
precomputed cycle (the paths of cycles longer than SCHEDULE_LIMIT).
"""

from __future__ import annotations

from hypothesis import settings

from balancekit.strategies import round_robin
from tests.stateful.test_smooth_wrr_changes import SmoothChurn


class TinyLimits(SmoothChurn):
    def __init__(self) -> None:
        self._saved = round_robin.SCHEDULE_LIMIT
        round_robin.SCHEDULE_LIMIT = 12
        super().__init__()

    def teardown(self) -> None:
        round_robin.SCHEDULE_LIMIT = self._saved


TinyLimits.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestTinyLimits = TinyLimits.TestCase
