"""Review (review5, integ5 afd2746): the public permutation functions were typed ``str | Any``
for the address so that hostile input ends in InvalidOption in the compiled build too, but the
address itself is not checked: a non-str address raises AttributeError pure Python
(``.encode``) and TypeError compiled (``utf8``'s entry check), never InvalidOption, unlike a
hostile size (tests/hashing/test_maglev_input.py)."""

from __future__ import annotations

from typing import Any

import pytest

from balancekit import InvalidOption
from balancekit.strategies.hashing.maglev import maglev_permutation
from balancekit.strategies.hashing.maglev_envoy import envoy_permutation


@pytest.mark.parametrize("address", [b"10.0.0.1:80", None, 7, ["10.0.0.1:80"]])
@pytest.mark.parametrize("permutation", [maglev_permutation, envoy_permutation])
def test_a_non_str_address_is_refused_with_invalid_option(permutation: Any, address: Any) -> None:
    with pytest.raises(InvalidOption):
        permutation(address, 7)


@pytest.mark.parametrize("chunk", [None, "8", 1.5, 0, -1, True])
def test_a_fill_chunk_that_is_not_a_positive_int_is_refused(chunk: Any) -> None:
    from balancekit.strategies.hashing.maglev import maglev_steps
    from balancekit.strategies.hashing.maglev_envoy import envoy_steps

    for steps in (maglev_steps, envoy_steps):
        with pytest.raises(InvalidOption, match="chunk"):
            steps([(0, 1)], [1], 7, chunk)
