"""The rings' overlay trie (``_trie``): a persistent map of small ints, against a dict."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit.strategies.hashing import _trie


@settings(max_examples=300, deadline=None, database=None)
@given(
    depth=st.integers(1, 3),
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, (1 << 21) - 1), st.integers(0, 3)), max_size=30),
        max_size=6,
    ),
    start=st.integers(0, (1 << 21) - 1),
)
def test_trie_matches_a_dict_and_published_roots_never_change(
    depth: int, batches: list[list[tuple[int, int]]], start: int
) -> None:
    bits = 7 * depth
    writer = _trie.Writer(None, depth)
    model: dict[int, int] = {}
    published: list[tuple[object, dict[int, int]]] = []
    for batch in batches:
        for key, value in batch:
            key &= (1 << bits) - 1
            writer.set(key, value or None)  # 0 clears the key
            if value:
                model[key] = value
            else:
                model.pop(key, None)
        published.append((writer.publish(), dict(model)))
    for root, seen in published:  # every root still reads as it did when published
        assert dict(_trie.items(root, depth)) == seen  # type: ignore[arg-type]
        low = start & ((1 << bits) - 1)
        expected = sorted((k, v) for k, v in seen.items() if k >= low)
        assert list(_trie.items(root, depth, low)) == expected  # type: ignore[arg-type]
        for key in [*seen, low]:
            assert _trie.get(root, key, depth) == seen.get(key)  # type: ignore[arg-type]
