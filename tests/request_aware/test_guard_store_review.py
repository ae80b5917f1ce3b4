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
