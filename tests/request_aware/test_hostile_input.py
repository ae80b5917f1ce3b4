"""Junk at every public constructor and option of the request edge ends in a BalancekitError.

Issue 10, item 20: AttributeError, TypeError, OverflowError, RecursionError and MemoryError
escaped from inside (``Request(client_addr=123)`` then ``keys.client_ip()``, non-iterables for
headers, query, cookies, Route hosts and methods, ``Endpoint(metadata=None)``, ``10**400`` for
numeric options). Each test throws arbitrary values (``st.from_type(object)``, huge ints, NaN
and inf, lone surrogates, deeply nested lists, bytes) at one entry point and accepts only a
return or a :class:`~balancekit.BalancekitError`.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit import BalancekitError, Request, keys
from balancekit._endpoint import canonical_address, split_address
from balancekit._options import integer, number, seconds
from balancekit.guard import (
    AnomalyDetector,
    BanList,
    Chain,
    ConcurrencyLimit,
    RateLimit,
    Verdict,
)
from balancekit.request import Cookies, Headers, QueryParams, parse_cookie_header
from balancekit.sticky import StickySessions


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


SPECIAL = st.sampled_from(
    [
        10**400,
        -(10**400),
        10**5000,  # beyond int -> str's 4,300-digit limit
        2**64,
        2**1024,
        float("nan"),
        float("inf"),
        -float("inf"),
        True,
        False,
        "\ud800",
        "a\ud800:80",
        "host\n:80",
        "x" * 100_000,
        b"\xff" * 10,
        _nested(100_000),
        [("a", _nested(100_000))],
        {"a": _nested(1000)},
        [("a", "b", "c")],
        [(1, 2)],
        object(),
        type,
        (),
        [],
        {},
        None,
        0,
        -1,
        1.5,
    ]
)
SURROGATE_TEXT = st.text(st.characters(categories=["Cs", "Lu", "Nd", "Zs", "Cc"]), max_size=20)
JUNK = SPECIAL | st.from_type(object) | SURROGATE_TEXT | st.binary(max_size=20)
JUNK_SETTINGS = settings(max_examples=60, suppress_health_check=list(HealthCheck))


def refused_or_fine(call: Callable[[], object]) -> None:
    """``call()`` returns, or raises a BalancekitError; anything else fails the test."""
    with contextlib.suppress(BalancekitError):
        call()


def request_with(option: str, value: object) -> Request:
    return Request(**{option: value})


REQUEST_OPTIONS = [
    "client_addr",
    "client_port",
    "local_addr",
    "local_port",
    "protocol",
    "method",
    "scheme",
    "host",
    "path",
    "query",
    "headers",
    "cookies",
    "body",
]
EXTRACTORS = [
    keys.client_ip(),
    keys.client_ip(trusted_proxies=["0.0.0.0/0", "::/0"]),
    keys.client_ip(trusted_proxies=["0.0.0.0/0", "::/0"], header="forwarded"),
    keys.header("x-a"),
    keys.cookie("a"),
    keys.query("a"),
    keys.host(),
    keys.path(),
    keys.five_tuple(),
]


@JUNK_SETTINGS
@given(st.sampled_from(REQUEST_OPTIONS), JUNK)
def test_request_options_and_every_extractor_on_what_they_accept(option: str, junk: Any) -> None:
    try:
        request = request_with(option, junk)
    except BalancekitError:
        return
    for extract in EXTRACTORS:
        key = extract(request)
        assert key is None or isinstance(key, str | bytes)


@JUNK_SETTINGS
@given(JUNK, st.sampled_from([Headers, QueryParams, Cookies]))
def test_multi_maps(junk: Any, kind: Callable[[Any], object]) -> None:
    refused_or_fine(lambda: kind(junk))


@JUNK_SETTINGS
@given(
    st.sampled_from(
        [
            "client",
            "server",
            "headers",
            "query_string",
            "method",
            "path",
            "http_version",
            "scheme",
            "type",
        ]
    ),
    JUNK,
)
def test_from_asgi(field: str, junk: Any) -> None:
    scope: dict[str, Any] = {"type": "http", field: junk}
    refused_or_fine(lambda: Request.from_asgi(scope))
    refused_or_fine(lambda: Request.from_asgi(junk))


@JUNK_SETTINGS
@given(JUNK)
def test_duck_typed_constructors(junk: Any) -> None:
    refused_or_fine(lambda: Request.from_httpx(junk))
    refused_or_fine(lambda: Request.from_requests(junk))

    class Prepared:
        method, url, headers, body = "GET", "http://h/", {}, junk

    refused_or_fine(lambda: Request.from_requests(Prepared(), body_limit=junk))
    refused_or_fine(lambda: Request.from_requests(Prepared()))


KEY_OPTIONS: list[Callable[[Any], object]] = [
    keys.header,
    keys.cookie,
    keys.query,
    lambda j: keys.client_ip(trusted_proxies=j),
    lambda j: keys.client_ip(header=j),
    keys.TrustedProxies,
    lambda j: keys.first_of(j),
    lambda j: keys.first_of(*j) if isinstance(j, list | tuple) and len(j) < 10 else None,
    lambda j: parse_cookie_header([j]) if isinstance(j, str) else None,
]


@JUNK_SETTINGS
@given(st.sampled_from(KEY_OPTIONS), JUNK)
def test_key_extractor_options(build: Callable[[Any], object], junk: Any) -> None:
    refused_or_fine(lambda: build(junk))


ROUTE_OPTIONS = [
    "host",
    "path",
    "prefix",
    "regex",
    "methods",
    "headers",
    "cookies",
    "query",
    "name",
]


@JUNK_SETTINGS
@given(st.sampled_from(ROUTE_OPTIONS), JUNK)
def test_route_and_router_options(option: str, junk: Any) -> None:
    refused_or_fine(lambda: bk.Router([bk.Route("t", **{option: junk})]).route(Request()))
    refused_or_fine(lambda: bk.Router(junk))
    refused_or_fine(lambda: bk.Route("t", headers={"x": junk}))


@JUNK_SETTINGS
@given(JUNK)
def test_endpoint_and_addresses(junk: Any) -> None:
    refused_or_fine(lambda: bk.Endpoint(junk))
    refused_or_fine(lambda: bk.Endpoint("a:1", weight=junk))
    refused_or_fine(lambda: bk.Endpoint("a:1", metadata=junk))
    refused_or_fine(lambda: split_address(junk))
    refused_or_fine(lambda: canonical_address(junk))
    refused_or_fine(lambda: bk.RoundRobin(junk))
    refused_or_fine(lambda: bk.RoundRobin([junk]))


GUARD_OPTIONS: list[Callable[[Any], object]] = [
    *(
        lambda j, o=o: BanList(**{o: j})
        for o in ("key", "strikes", "within", "ban_for", "clock", "max_keys", "status")
    ),
    *(
        lambda j, o=o: AnomalyDetector(**{o: j})
        for o in (
            "key",
            "bucket",
            "half_life",
            "factor",
            "min_count",
            "clock",
            "max_keys",
            "bans",
            "status",
        )
    ),
    ConcurrencyLimit,
    *(lambda j, o=o: ConcurrencyLimit(1, **{o: j}) for o in ("key", "bans", "status")),
    RateLimit,
    *(
        lambda j, o=o: RateLimit("1/hour", **{o: j})
        for o in ("key", "strategy", "storage", "bans", "status", "max_keys")
    ),
    Chain,
    lambda j: Chain([j]),
    lambda j: Verdict.reject(j, status=403, rule_ids=("r",)),
    lambda j: Verdict.reject("x", status=j, rule_ids=("r",)),
    lambda j: Verdict.reject("x", status=403, rule_ids=j),
    lambda j: Verdict.reject("x", status=403, rule_ids=("r",), retry_after=j),
    lambda j: BanList().ban(Request(), seconds=j),
    lambda j: BanList().ban(Request(), reason=j),
    lambda j: StickySessions(j),
    *(
        lambda j, o=o: StickySessions(b"k" * 32, **{o: j})
        for o in ("previous_keys", "max_age", "clock", "leeway")
    ),
    lambda j: StickySessions(b"k" * 32).issue(j),
    lambda j: StickySessions(b"k" * 32).verify(j),
    lambda j: number("n", j),
    lambda j: seconds("s", j),
    lambda j: integer("i", j, 0, 10),
]


@JUNK_SETTINGS
@given(st.sampled_from(GUARD_OPTIONS), JUNK)
def test_guard_options(build: Callable[[Any], object], junk: Any) -> None:
    refused_or_fine(lambda: build(junk))


@JUNK_SETTINGS
@given(JUNK)
def test_guards_with_a_key_extractor_returning_junk(junk: Any) -> None:
    clock = lambda: 0.0  # noqa: E731
    for guard in (
        BanList(key=lambda r: junk, clock=clock),
        AnomalyDetector(key=lambda r: junk, clock=clock),
        ConcurrencyLimit(1, key=lambda r: junk),
        RateLimit("1/hour", key=lambda r: junk),
    ):
        refused_or_fine(lambda g=guard: g.check(Request()))  # type: ignore[misc]


@pytest.mark.parametrize(
    "call",
    [
        lambda: keys.client_ip()(Request(client_addr=123)),  # type: ignore[arg-type]
        lambda: Request(headers=5),  # type: ignore[arg-type]
        lambda: Request(query=5),  # type: ignore[arg-type]
        lambda: Request(cookies=5),  # type: ignore[arg-type]
        lambda: bk.Route("t", host=5),  # type: ignore[arg-type]
        lambda: bk.Route("t", methods=5),  # type: ignore[arg-type]
        lambda: bk.Endpoint("a:1", metadata=None),  # type: ignore[arg-type]
        lambda: BanList(within=10**400),
        lambda: AnomalyDetector(min_count=10**400),
        lambda: bk.Endpoint("a:1", weight=10**5000),
        lambda: Request.from_asgi({"type": "http", "headers": [(10**10, b"x")]}),
    ],
)
def test_the_reported_cases_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(BalancekitError):
        call()


def test_trusted_proxies_refuses_an_endless_list_of_networks() -> None:
    # range(10**12) is a valid list of IPv4 addresses in ints, one by one: bounded, not run out
    with pytest.raises(bk.InvalidOption, match="more than"):
        keys.TrustedProxies(range(10**12))
    assert keys.TrustedProxies(range(3)) is not None


# Ranges of any length in O(1) memory: st.from_type(object) draws them from unbounded integers
# (hypothesis builds range(st.integers(), st.integers())), so which option met a huge one
# depended on the random order -- StickySessions(previous_keys=range(-2**32, 0)) once took
# 22.7 GB before the kernel killed the run. Here every option meets each of them, every run.
HUGE_RANGES = [range(-(2**32), 0), range(10**12), range(0, 10**30, 7)]
EVERY_OPTION: list[Callable[[Any], object]] = [
    *(lambda j, o=o: request_with(o, j) for o in REQUEST_OPTIONS),
    Headers,
    QueryParams,
    Cookies,
    *KEY_OPTIONS,
    *(lambda j, o=o: bk.Route("t", **{o: j}) for o in ROUTE_OPTIONS),
    bk.Router,
    bk.Endpoint,
    bk.RoundRobin,
    *GUARD_OPTIONS,
]


@pytest.fixture
def memory_cap() -> Iterator[None]:
    """Cap this process's address space at 2 GiB above its present size for the test, so a
    regression that materialises a huge input fails with MemoryError instead of the kernel
    OOM-killing the run (and whatever else shares the machine)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    cap = used + (2 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
@pytest.mark.usefixtures("memory_cap")
@pytest.mark.parametrize("huge", HUGE_RANGES, ids=["reported", "1e12", "beyond-ssize_t"])
@pytest.mark.parametrize("build", EVERY_OPTION)
def test_every_option_with_a_huge_range(build: Callable[[Any], object], huge: range) -> None:
    refused_or_fine(lambda: build(huge))
