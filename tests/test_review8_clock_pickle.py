"""review8: objects holding a checked clock still pickle and copy (clock8 wraps every clock but
the standard library's in ``balancekit._clock.CheckedClock``).

Passes in both builds today (``_clock`` is not compiled). A guard for compiling it (review8
measured a user clock's reading at ~700-1400 instructions interpreted, see the report): a
mypyc native class has no ``__reduce__`` by default, and pickling or deep-copying a
StickySessions with ``clock=time.monotonic_ns`` then raised ``TypeError: __init__() missing
required argument 'clock'`` (review8's build with ``_clock`` in setup.py's COMPILED).
"""

from __future__ import annotations

import copy
import pickle
import time

import pytest

from balancekit import sticky
from balancekit._clock import check_clock

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))]
)
def test_sticky_sessions_with_a_checked_clock_clone(clone: object) -> None:
    sessions = sticky.StickySessions(KEY, clock=time.monotonic_ns)
    twin = clone(sessions)  # type: ignore[operator]
    token = twin.issue("10.0.0.1:80")
    assert sessions.decode(token).address == "10.0.0.1:80"


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))]
)
def test_a_checked_clock_clone_reads_its_clock(clone: object) -> None:
    clock = check_clock(time.monotonic_ns)
    twin = clone(clock)  # type: ignore[operator]
    assert twin() >= clock() - 1e9
