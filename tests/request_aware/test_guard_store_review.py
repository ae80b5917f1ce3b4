"""Regression tests from the adversarial review of RedisStore: options no Redis call can use
are refused when the store is built, not answered by the failure policy on every request."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit.guard import RedisStore

_SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)


@given(st.text(max_size=5), _SURROGATES, st.text(max_size=5))
def test_a_prefix_that_is_no_utf8_is_refused(before: str, bad: str, after: str) -> None:
    """A lone surrogate in ``prefix`` made every rate-limit call fail (``limits`` encodes keys
    strictly): the store was then 'unavailable' forever and fail_open admitted everything."""
    with pytest.raises(bk.InvalidOption, match="prefix"):
        RedisStore(prefix=before + bad + after)


@given(_SURROGATES)
def test_a_url_that_is_no_utf8_is_refused(bad: str) -> None:
    with pytest.raises(bk.InvalidOption, match="url"):
        RedisStore(f"redis://{bad}:6379/0")


def test_after_a_failure_one_caller_probes_redis_the_others_answer_by_policy() -> None:
    """The docs promise that a dead Redis costs one timeout per ``retry_interval``; once the
    interval was over, every concurrent caller asked Redis (and waited its timeout) until one
    of them failed again. Eight threads against a hung Redis (an operation that blocks until
    released, then fails): one probe, seven policy answers."""
    import threading
    import time

    now = [0.0]
    store = RedisStore(retry_interval=1.0, clock=lambda: now[0])

    def fails() -> None:
        raise ConnectionError("refused")

    assert store.call(fails) == (False, None) and not store.available
    now[0] = 2.0  # the interval is over: the next caller may probe
    hung, entered, answered = threading.Event(), [], []

    def hanging() -> None:
        entered.append(1)
        hung.wait(10)
        raise TimeoutError("timed out")

    threads = [
        threading.Thread(target=lambda: answered.append(store.call(hanging))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(entered) + len(answered) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    probes = len(entered)
    hung.set()
    for thread in threads:
        thread.join(10)
    assert probes == 1
    assert answered == [(False, None)] * 8
