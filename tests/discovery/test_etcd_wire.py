"""The etcd gateway messages of balancekit.discovery.Etcd, without a server: properties and
hostile input (the server tests are in tests/integration/test_etcd.py)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import balancekit as bk
from balancekit.discovery import DiscoveryError, Etcd
from balancekit.discovery._etcd_wire import (
    MAX_VALUE_BYTES,
    PrefixState,
    parse_endpoint,
    prefix_end,
)

PREFIX = "svc/"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _kv(key: bytes, value: bytes, revision: int) -> dict[str, Any]:
    return {"key": _b64(key), "value": _b64(value), "mod_revision": str(revision)}


def _range(kvs: dict[bytes, bytes], revision: int) -> dict[str, Any]:
    return {
        "header": {"revision": str(revision)},
        "kvs": [_kv(k, v, revision) for k, v in sorted(kvs.items())],
    }


@given(st.binary(min_size=1, max_size=6), st.binary(max_size=8))
def test_prefix_end_bounds_exactly_the_keys_under_the_prefix(prefix: bytes, key: bytes) -> None:
    end = prefix_end(prefix)
    inside = prefix <= key and (end == b"\0" or key < end)
    assert inside == key.startswith(prefix)


# keys: a few addresses (two spellings of one), one bad address; values: good and bad
KEYS = [b"10.0.0.1:80", b"10.0.0.2:80", b"10.0.0.02:080", b"[::1]:443", b"no-port", b"\xff:1"]
VALUES = [
    b"",
    b'{"weight": 2}',
    b'{"weight": 3, "metadata": {"zone": "a"}}',
    b"{bad",
    b'{"weight": 0}',
    b'{"weight": true}',
    b'{"weight": 1e400}',
    b'{"metadata": []}',
    b"[" * 10_000,
    b'"\\ud800"',
]


class WatchAgreesWithRange(RuleBasedStateMachine):
    """Whatever happens under the prefix, the membership built from watch events equals the one
    a fresh range of the same keys gives; a compaction makes the watcher list again."""

    def __init__(self) -> None:
        super().__init__()
        self.kvs: dict[bytes, bytes] = {}
        self.revision = 1
        self.watched = PrefixState(PREFIX)
        self.watched.apply_range(_range({}, 1))

    def _event(self, event: dict[str, Any]) -> None:
        self.revision += 1
        event["kv"]["mod_revision"] = str(self.revision)
        changed = self.watched.apply_watch({"result": {"events": [event]}})
        assert changed

    @rule(key=st.sampled_from(KEYS), value=st.sampled_from(VALUES))
    def put(self, key: bytes, value: bytes) -> None:
        self.kvs[PREFIX.encode() + key] = value
        self._event({"kv": _kv(PREFIX.encode() + key, value, 0)})

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: bytes) -> None:
        self.kvs.pop(PREFIX.encode() + key, None)
        self._event({"type": "DELETE", "kv": {"key": _b64(PREFIX.encode() + key)}})

    @rule()
    def compacted(self) -> None:
        message = {"result": {"canceled": True, "compact_revision": str(self.revision)}}
        assert self.watched.apply_watch(message)
        assert self.watched.revision is None
        self.watched.apply_range(_range(self.kvs, self.revision))

    @invariant()
    def agrees(self) -> None:
        fresh = PrefixState(PREFIX)
        fresh.apply_range(_range(self.kvs, self.revision))
        assert self.watched.snapshot() == fresh.snapshot()
        assert self.watched.revision == self.revision
        addresses = [e.address for e in fresh.snapshot().endpoints]
        assert addresses == sorted(set(addresses))  # one endpoint per address, sorted


TestWatchAgreesWithRange = WatchAgreesWithRange.TestCase
TestWatchAgreesWithRange.settings = settings(max_examples=60, stateful_step_count=25)


@pytest.mark.parametrize(
    "value",
    [
        b"x" * (MAX_VALUE_BYTES + 1),  # too large: never parsed
        b"[" * 60_000,  # deeply nested
        b"{" * 60_000,
        b'{"weight": ' + b"9" * 5000 + b"}",  # past int()'s digit limit
        b'{"weight": NaN}',
        b'{"weight": Infinity}',
        b'{"weight": 1.5}',
        b'{"weight": -1}',
        b'{"weight": 1000001}',
        b"\xed\xa0\x80",  # an encoded lone surrogate: not UTF-8
        b'{"metadata": {"a": "\\ud800"}, "weight": "1"}',
        b"null",
        b"[]",
    ],
)
def test_a_hostile_value_is_refused_with_a_balancekit_error(value: bytes) -> None:
    with pytest.raises(bk.BalancekitError):
        parse_endpoint("10.0.0.1:80", value)


def test_a_hostile_value_in_a_range_is_skipped_the_others_kept() -> None:
    state = PrefixState(PREFIX)
    state.apply_range(
        _range(
            {
                b"svc/10.0.0.1:80": b"[" * 60_000,
                b"svc/10.0.0.2:80": b'{"weight": 4}',
                b"svc/10.0.0.3:80": b"y" * (4 * MAX_VALUE_BYTES),
            },
            9,
        )
    )
    assert [(e.address, e.weight) for e in state.snapshot().endpoints] == [("10.0.0.2:80", 4)]
    assert state.skipped == 2 and state.revision == 9


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"kvs": []},
        {"header": {"revision": "12a"}},
        {"header": {"revision": "9" * 40}},
        {"header": {"revision": 1.5}},
        {"header": {"revision": "3"}, "kvs": {}},
    ],
)
def test_a_malformed_range_answer_changes_nothing(answer: object) -> None:
    state = PrefixState(PREFIX)
    state.apply_range(_range({b"svc/10.0.0.1:80": b""}, 5))
    before = state.snapshot()
    with pytest.raises(DiscoveryError):
        state.apply_range(answer)
    assert state.snapshot() == before and state.revision == 5


@pytest.mark.parametrize(
    "message",
    [
        None,
        {"error": {"grpc_code": 14, "message": "unavailable"}},
        {"result": None},
        {"result": {"canceled": True, "cancel_reason": "permission denied"}},
        {"result": {"events": {}}},
        {"result": {"events": [7]}},
    ],
)
def test_a_malformed_or_failed_watch_message_raises(message: object) -> None:
    state = PrefixState(PREFIX)
    state.apply_range(_range({}, 5))
    with pytest.raises(DiscoveryError):
        state.apply_watch(message)


def test_odd_keys_in_events_are_skipped() -> None:
    state = PrefixState(PREFIX)
    state.apply_range(_range({b"svc/10.0.0.1:80": b""}, 5))
    events = [
        {"kv": {"key": "not base64!", "mod_revision": "6"}},
        {"kv": {"key": _b64(b"other/10.0.0.2:80"), "mod_revision": "7"}},
        {"type": "DELETE", "kv": {"key": 5}},
        {"kv": {"key": _b64(b"svc/10.0.0.3:80"), "value": 5, "mod_revision": "8"}},
    ]
    assert state.apply_watch({"result": {"events": events}})
    assert [e.address for e in state.snapshot().endpoints] == ["10.0.0.1:80"]
    assert state.revision == 8 and state.skipped == 3


@pytest.mark.parametrize(
    ("prefix", "options"),
    [
        ("", {}),
        ("\ud800", {}),
        ("x" * 5000, {}),
        (b"svc/", {}),
        ("svc/", {"url": "127.0.0.1:2379"}),
        ("svc/", {"url": "http://"}),
        ("svc/", {"url": 5}),
        ("svc/", {"url": "http://h:99999"}),
        ("svc/", {"url": "http://h:-1"}),
        ("svc/", {"url": "http://h:0"}),
        ("svc/", {"url": "http://\ud800"}),
        ("svc/", {"url": "https://" + "a" * 100_000}),
        ("svc/", {"wait": math.nan}),
        ("svc/", {"wait": math.inf}),
        ("svc/", {"wait": 0}),
        ("svc/", {"timeout": -1}),
        ("svc/", {"timeout": 10**400}),
        ("svc/", {"headers": {"a": 1}}),
        ("svc/", {"headers": [("a", "b")]}),
    ],
)
def test_options_are_validated(prefix: Any, options: dict[str, Any]) -> None:
    with pytest.raises(bk.InvalidOption):
        Etcd(prefix, **options)


def test_the_requests_name_the_prefix_range_and_the_next_revision() -> None:
    state = PrefixState("svc/\N{SNOWMAN}")
    assert state.range_request() == {
        "key": _b64("svc/\N{SNOWMAN}".encode()),
        "range_end": _b64("svc/\N{SNOWMAN}".encode()[:-1] + b"\x84"),
    }
    state.apply_range({"header": {"revision": "41"}})
    watch = state.watch_request()["create_request"]
    assert watch["start_revision"] == "42" and json.dumps(watch)


@pytest.mark.parametrize(
    "result",
    [
        {"header": {"cluster_id": "2", "revision": "50"}, "created": True},  # another cluster
        {"header": {"cluster_id": "1", "revision": "3"}, "created": True},  # behind our 41
        {"header": {"cluster_id": "2", "revision": "60"}, "events": []},
    ],
)
def test_a_watch_answered_by_another_store_makes_the_source_list_again(
    result: dict[str, Any],
) -> None:
    state = PrefixState(PREFIX)
    state.apply_range({"header": {"cluster_id": "1", "revision": "41"}})
    assert state.apply_watch({"result": result})
    assert state.revision is None


def test_a_watch_from_the_listed_store_keeps_watching() -> None:
    state = PrefixState(PREFIX)
    state.apply_range({"header": {"cluster_id": "1", "revision": "41"}})
    created = {"result": {"header": {"cluster_id": "1", "revision": "41"}, "created": True}}
    assert not state.apply_watch(created)
    assert state.revision == 41


@given(st.lists(st.binary(max_size=12).filter(lambda b: b"\n" not in b), max_size=8), st.data())
def test_watch_lines_come_out_whole_however_the_stream_is_cut(
    lines: list[bytes], data: st.DataObject
) -> None:
    from balancekit.discovery.etcd import _Lines

    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    splitter = _Lines()
    out = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert out == [line for line in lines if line.strip()]


def test_a_watch_line_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from balancekit.discovery import etcd

    monkeypatch.setattr(etcd, "MAX_MESSAGE_BYTES", 1000)
    splitter = etcd._Lines()
    assert splitter.feed(b"x" * 600) == []
    with pytest.raises(DiscoveryError):
        splitter.feed(b"x" * 600)
