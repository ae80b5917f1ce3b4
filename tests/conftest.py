"""Hypothesis profiles: no per-example deadline on this shared 2-core machine; CI derandomized.

``.ci/run`` sets ``CI=true``, which selects Hypothesis's built-in ``ci`` profile (derandomized,
no deadline, no example database), so a red CI run is reproducible by running it again.
``switch_often``: the thread tests' fixture that makes threads switch as often as CPython allows.
"""

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Switch threads as often as CPython allows, so the workers interleave inside calls."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
