"""WeightedRoundRobin stepping NGINX's loop online while passive health ejects, under threads.

Review7 (issue 15, session 7) found that compiled (mypyc) ``select`` raised ``TypeError:
SmoothOnline object expected; got None``: ``_pick_online`` tested ``self._smooth is not None``
without the lock, then read it again under the lock into a local mypy had narrowed to
``SmoothOnline``, and an ejection's rebuild that left online mode set it to None in between.
Pure Python took its ``if smooth is None`` branch. The race needs thread switches between the
test and the read, so the test makes them likely (a 1 us switch interval) and repeats: on the
code before the fix 5 of its 6 rounds failed (main's compiled build, d8e4911).
"""

from __future__ import annotations

import random
import threading

import pytest

import balancekit as bk
from balancekit.strategies.round_robin import SMALL_POOL


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize("round_", range(6))
def test_online_picks_never_fail_while_ejections_leave_online_mode(round_: int) -> None:
    size = SMALL_POOL + 6  # past SMALL_POOL, with a cycle too long to precompute: online
    endpoints = [bk.Endpoint(f"h{i}:1", weight=1 + (i * 37) % 97) for i in range(size)]
    lb = bk.WeightedRoundRobin(endpoints)
    bk.with_health(lb, passive=bk.PassiveHealth(consecutive_failures=3, max_ejection_share=0.9))
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            try:
                lb.release(lb.select(), ok=rng.random() > 0.3, elapsed=0.001)
            except bk.NoEndpointAvailable:
                pass
            except BaseException as error:  # (any other error is the finding)
                errors.append(error)
                return

    threads = [threading.Thread(target=worker, args=(round_ * 10 + k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    lb._check_invariants()
