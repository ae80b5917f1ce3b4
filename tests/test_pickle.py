"""Endpoints and leases pickle and copy, in both builds (CI runs this file compiled too).

Job dispatchers send work, with its endpoints, to worker processes; the workers may hand a lease
back to the process that issued it. A pickle is rebuilt through the constructor's checks, so one
edited to a negative weight or a bad address is refused with ``InvalidEndpoint``, never turned
into an Endpoint no constructor could build. On main neither pickled (a ``mappingproxy`` in the
metadata slot): every test here failed but test_an_edited_endpoint_pickle_is_refused (its pickles
call the constructor, which checked them there too).
"""

from __future__ import annotations

import copy
import copyreg
import ipaddress
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit._endpoint import MAX_WEIGHT

hostnames = st.from_regex(r"\A[a-z_][a-z0-9_-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}\Z")
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda ip: f"[{ip.exploded.upper()}]")
zoned = st.tuples(st.ip_addresses(v=6), st.from_regex(r"\A[A-Za-z0-9._~-]{1,15}\Z")).map(
    lambda pair: f"[{pair[0]}%{pair[1]}]"
)
addresses = st.builds(
    lambda host, port: f"{host}:{port}",
    st.one_of(hostnames, ipv4, ipv6, zoned),
    st.integers(0, 65535),
)
metadata = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=3)),
    max_size=4,
)
endpoints = st.builds(bk.Endpoint, addresses, weight=st.integers(1, MAX_WEIGHT), metadata=metadata)


def same(a: bk.Endpoint, b: bk.Endpoint) -> bool:
    """Equal in every field, metadata included (equality leaves it out), and as immutable."""
    return (
        type(b) is bk.Endpoint
        and (a.address, a.weight, dict(a.metadata)) == (b.address, b.weight, dict(b.metadata))
        and type(b.metadata) is type(a.metadata)
        and hash(a) == hash(b)
    )


@given(endpoints, st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_an_endpoint_round_trips_through_pickle(endpoint: bk.Endpoint, protocol: int) -> None:
    assert same(endpoint, pickle.loads(pickle.dumps(endpoint, protocol)))


@given(endpoints)
def test_an_endpoint_copies(endpoint: bk.Endpoint) -> None:
    assert same(endpoint, copy.copy(endpoint))
    deep = copy.deepcopy(endpoint)
    assert same(endpoint, deep)
    for key, value in endpoint.metadata.items():  # a deep copy shares no mutable value
        if isinstance(value, list):
            assert deep.metadata[key] is not value


@given(
    endpoints,
    st.integers(0, 2**62),
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
)
def test_a_lease_round_trips_through_pickle(
    endpoint: bk.Endpoint, token: int, started: float
) -> None:
    # (a clock's reading: finite, of its own type; an infinite or NaN one is refused,
    # tests/test_review6_findings.py)
    lease = bk.Lease(endpoint, token, started)
    for twin in (pickle.loads(pickle.dumps(lease)), copy.copy(lease), copy.deepcopy(lease)):
        assert type(twin) is bk.Lease and twin == lease and same(endpoint, twin.endpoint)


def test_an_ipv6_endpoint_keeps_its_canonical_address() -> None:
    endpoint = bk.Endpoint("[2001:DB8:0::1%eth0]:0443", weight=7, metadata={"zone": "b"})
    twin = pickle.loads(pickle.dumps(endpoint))
    assert twin.address == "[2001:db8::1%eth0]:443" and twin.host == "2001:db8::1%eth0"
    assert ipaddress.ip_address(twin.host.partition("%")[0]) == ipaddress.ip_address("2001:db8::1")


@pytest.mark.parametrize(
    "make", [bk.RoundRobin, bk.LeastConnections, bk.PowerOfTwoChoices, bk.PeakEWMA, bk.Maglev]
)
def test_a_pickled_lease_sent_back_is_released_once(make: Any) -> None:
    lb = make([bk.Endpoint("a:1", metadata={"zone": "x"}), "b:1"])
    lease = lb.select("key") if make is bk.Maglev else lb.select()
    lb.release(pickle.loads(pickle.dumps(lease)))  # back from a worker: the same lease
    assert sum(stats.in_flight for stats in lb.stats().values()) == 0
    with pytest.raises(bk.InvalidLease):
        lb.release(lease)


class _Forged:
    """Pickles as a call of ``target`` with ``args``: an edited pickle, written the easy way."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.target, self.args)


@pytest.mark.parametrize(
    ("address", "weight", "metadata"),
    [
        ("a:1", -1, {}),
        ("a:1", 0, {}),
        ("a:1", 2.5, {}),
        ("a:1", True, {}),
        ("a:1", MAX_WEIGHT + 1, {}),
        ("a:99999", 1, {}),
        ("a b:1", 1, {}),
        ("::1:80", 1, {}),
        ("[::1%a b]:80", 1, {}),
        ("x" * 300 + ":1", 1, {}),
        (b"a:1", 1, {}),
        ("a:1", 1, "not a mapping"),
    ],
)
def test_an_edited_endpoint_pickle_is_refused(address: Any, weight: Any, metadata: Any) -> None:
    data = pickle.dumps(_Forged(bk.Endpoint, address, weight, metadata))
    with pytest.raises(bk.InvalidEndpoint):
        pickle.loads(data)


def test_a_pickle_edited_byte_by_byte_is_refused() -> None:
    data = pickle.dumps(bk.Endpoint("a:1", weight=7))
    assert data.count(b"K\x07") == 1  # BININT1 7: the weight
    with pytest.raises(bk.InvalidEndpoint, match="weight"):
        pickle.loads(data.replace(b"K\x07", b"J\xff\xff\xff\xff"))  # BININT -1
    assert data.count(b"a:1") == 1
    with pytest.raises(bk.InvalidEndpoint):
        pickle.loads(data.replace(b"a:1", b"a;1"))


@pytest.mark.parametrize(
    "state", [["a:1", -1, {}], ("a:1", 1, 5), ["bad", 1, {}], "a:1", ["a:1", 1, {}, "extra"]]
)
def test_a_hand_made_state_is_refused(state: Any) -> None:
    """The dataclass's ``__setstate__`` stored any state unchecked: a pickle that builds an empty
    Endpoint and then sets its state (``copyreg``'s reconstructor) got a corrupt one."""
    blank = _Forged(copyreg._reconstructor, bk.Endpoint, object, None)  # type: ignore[attr-defined]
    data = pickle.dumps(blank, 2)[:-1]  # without STOP: add BUILD with the state
    data += pickle.dumps(state, 2)[2:-1] + pickle.BUILD + pickle.STOP
    with pytest.raises(bk.InvalidEndpoint):
        pickle.loads(data)


def test_a_hand_made_state_that_is_valid_is_canonical() -> None:
    blank = _Forged(copyreg._reconstructor, bk.Endpoint, object, None)  # type: ignore[attr-defined]
    data = pickle.dumps(blank, 2)[:-1] + pickle.dumps(["A.:01", 2], 2)[2:-1]
    endpoint = pickle.loads(data + pickle.BUILD + pickle.STOP)
    assert same(bk.Endpoint("a:1", weight=2), endpoint)


@pytest.mark.parametrize(
    ("endpoint", "token"),
    [("a:1", 1), (None, 1), (bk.Endpoint("a:1"), "1"), (bk.Endpoint("a:1"), None)],
)
def test_an_edited_lease_pickle_is_refused_alike_in_both_builds(endpoint: Any, token: Any) -> None:
    # (compiled, the Lease constructor raised TypeError for a non-Endpoint; pure took anything)
    reduce = bk.Lease(bk.Endpoint("a:1"), 1, 0.0).__reduce__()[0]
    data = pickle.dumps(_Forged(reduce, endpoint, token, 0.0))
    with pytest.raises(bk.InvalidLease):
        pickle.loads(data)
