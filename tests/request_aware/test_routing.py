"""Router: first-match order identical to a naive scan, defaults, and rule validation."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancekit import BalancekitError, InvalidOption, NoRoute, Request, Route, Router
from balancekit._routing_index import literal_prefix

T = TypeVar("T")


def naive(routes: Sequence[Route[T]], request: Request) -> T | None:
    """The reference semantics: scan the list, evaluating every predicate directly."""
    for route in routes:
        if route.matches(request):
            return route.target
    return None


def test_first_match_wins_not_the_most_specific() -> None:
    router = Router([Route("broad", prefix="/"), Route("narrow", prefix="/api/")])
    assert router.route(Request(path="/api/x")) == "broad"


def test_host_exact_wildcard_and_any() -> None:
    router = Router(
        [
            Route("exact", host="a.example.com"),
            Route("wild", host="*.example.com"),
            Route("multi", host=["x.org", "*.x.org"]),
            Route("any", host="*"),
        ]
    )
    assert router.route(Request(host="A.Example.com:443")) == "exact"
    assert router.route(Request(host="b.c.example.com")) == "wild"
    assert router.route(Request(host="example.com")) == "any"
    assert router.route(Request(host="x.org")) == "multi"
    assert router.route(Request(host="y.x.org")) == "multi"


def test_path_kinds() -> None:
    router = Router(
        [
            Route("exact", path="/health"),
            Route("regex", regex=r"/users/\d+"),
            Route("prefix", prefix="/users/"),
        ],
        default="default",
    )
    assert router.route(Request(path="/health")) == "exact"
    assert router.route(Request(path="/health/x")) == "default"
    assert router.route(Request(path="/users/42")) == "regex"
    assert router.route(Request(path="/users/42/x")) == "prefix"  # regex is a full match


def test_method_header_cookie_query_predicates() -> None:
    router = Router(
        [
            Route("get", methods=["get", "HEAD"], headers={"x-canary": False}),
            Route("canary", headers={"X-Canary": "1"}),
            Route("beta", cookies={"beta": re.compile(r"on|yes")}),
            Route("debug", query={"debug": True}),
        ],
        default="none",
    )
    assert router.route(Request(method="head")) == "get"
    assert router.route(Request(method="GET", headers={"X-Canary": "1"})) == "canary"
    assert router.route(Request(method="POST", headers={"Cookie": "beta=yes"})) == "beta"
    assert router.route(Request(method="POST", headers={"Cookie": "beta=yesno"})) == "none"
    assert router.route(Request(method="POST", query="debug=")) == "debug"
    assert router.match(Request(method="POST")) is None


def test_no_route_without_default() -> None:
    router: Router[str] = Router([Route("a", path="/a")])
    with pytest.raises(NoRoute, match="default=") as info:
        router.route(Request(path="/b"))
    assert isinstance(info.value, LookupError) and isinstance(info.value, BalancekitError)
    assert Router([], default=None).route(Request()) is None  # None is a valid default


def test_regexes_with_groups_or_flags_are_tested_alone_in_order() -> None:
    router = Router(
        [
            Route("grouped", regex=r"/(a)\1", methods="POST"),
            Route("flagged", regex=re.compile(r"/AA", re.IGNORECASE)),
            Route("plain", regex=r"/a+"),
        ]
    )
    assert router.route(Request(path="/aa")) == "flagged"
    assert router.route(Request(path="/aa", method="POST")) == "grouped"
    assert router.route(Request(path="/aaa")) == "plain"


def test_regex_rule_that_fails_other_predicates_falls_through() -> None:
    router = Router(
        [
            Route(1, regex=r"/x.*", methods="PUT"),
            Route(2, prefix="/x", methods="DELETE"),
            Route(3, regex=r"/xy", methods="GET"),
            Route(4, prefix="/"),
        ]
    )
    assert router.route(Request(path="/xy")) == 3
    assert router.route(Request(path="/xz")) == 4
    assert router.route(Request(path="/xz", method="delete")) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"path": "/a", "prefix": "/a"},
        {"path": "no-slash"},
        {"prefix": 3},
        {"regex": "("},
        {"host": "a.*.com"},
        {"host": "http://a.com/"},
        {"host": ""},
        {"methods": ["GET POST"]},
        {"methods": []},
        {"headers": {"x": 3}},
        {"headers": ["x"]},
        {"cookies": {"": "v"}},
        {"query": {"q": re.compile(b"x")}},
    ],
)
def test_bad_rules_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidOption):
        Route("t", **options)  # type: ignore[arg-type]


def test_router_takes_only_routes() -> None:
    with pytest.raises(InvalidOption):
        Router(["not a route"])  # type: ignore[arg-type]


HOSTS = ["a.com", "b.com", "x.a.com", "y.x.a.com", ""]
PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/b", "/a/b/c", "/b/1"]
RULE_HOSTS = st.one_of(
    st.none(),
    st.sampled_from(["a.com", "b.com", "*.a.com", "*.x.a.com", "*", "x.a.com"]),
    st.lists(st.sampled_from(["a.com", "*.a.com", "b.com"]), min_size=1, max_size=2),
)
REGEXES: dict[
    str, Callable[[str], str | re.Pattern[str]]
] = {  # regex shapes: literal-prefix ones are indexed as prefixes, the rest combined
    "regex": lambda v: re.escape(v) + ".*",
    "anchored": lambda v: "^" + re.escape(v) + r"(?:/\w+)?$",
    "quantified": lambda v: v + "*",
    "escaped": lambda v: v.replace("/", "\\/") + "(/.*)?",
    "grouped": lambda v: r"/(a)?b?.*",
    "alternation": lambda v: v + "|/b.*",
    "flagged": lambda v: re.compile(re.escape(v.upper()), re.IGNORECASE),
    "class": lambda v: r"[/]a.*",
}
RULES = st.builds(
    lambda target, host, kind, value, method, header: Route(
        target,
        host=host,
        path=value if kind == "path" else None,
        prefix=value if kind == "prefix" else None,
        regex=REGEXES[kind](value) if kind in REGEXES else None,
        methods=method,
        headers={"x-h": header} if header is not None else None,
    ),
    st.integers(0, 10_000),
    RULE_HOSTS,
    st.sampled_from(["none", "path", "prefix", *REGEXES]),
    st.sampled_from(PATHS),
    st.sampled_from([None, "GET", ("POST", "PUT")]),
    st.sampled_from([None, True, False, "1"]),
)
REQUESTS = st.builds(
    lambda host, path, method, header: Request(
        host=host, path=path, method=method, headers={"X-H": header} if header else {}
    ),
    st.sampled_from(HOSTS),
    st.sampled_from(PATHS),
    st.sampled_from(["GET", "POST", "DELETE"]),
    st.sampled_from([None, "1", "2"]),
)


@settings(max_examples=300)
@given(st.lists(RULES, max_size=25), st.lists(REQUESTS, min_size=1, max_size=10))
def test_compiled_router_agrees_with_the_naive_scan(
    routes: list[Route[int]], requests: list[Request]
) -> None:
    router = Router(routes, default=-1)
    router._check_invariants()
    for request in requests:
        expected = naive(routes, request)
        assert router.route(request) == (-1 if expected is None else expected)
        found = router.match(request)
        assert (found.target if found else None) == expected


def test_a_thousand_rules_still_route_to_the_first_match() -> None:
    routes: list[Route[int | str]] = [
        Route(i, host=f"h{i % 50}.example", prefix=f"/s{i % 7}/") for i in range(1000)
    ]
    routes.append(Route("catch-all"))
    router = Router(routes)
    router._check_invariants()
    for i in range(0, 1000, 37):
        request = Request(host=f"h{i % 50}.example", path=f"/s{i % 7}/x")
        assert router.route(request) == naive(routes, request)
    assert router.route(Request(host="nowhere")) == "catch-all"


def compiles(pattern: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set" FutureWarnings
        try:
            re.compile(pattern)
        except re.error:
            return False
    return True


@settings(max_examples=500)
@given(
    st.text("/ab.*+?|()[]{}1,\\^$", max_size=8).filter(compiles),
    st.lists(st.text("/ab", max_size=5), max_size=20),
)
def test_literal_prefix_is_sound(pattern: str, paths: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = re.compile(pattern)
    prefix = literal_prefix(compiled)
    for path in [*paths, prefix, prefix + "a"]:
        if compiled.fullmatch(path):
            assert path.startswith(prefix)


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (r"/api/v\d+/.*", "/api/v"),
        (r"^/a\.b$", "/a.b"),
        (r"/ab*", "/a"),
        (r"/a|/b", ""),
        (r"(?i)/a", ""),
        (r"[/]a", ""),
        (r"/a{2}", "/"),
    ],
)
def test_literal_prefix_examples(pattern: str, prefix: str) -> None:
    assert literal_prefix(re.compile(pattern)) == prefix
