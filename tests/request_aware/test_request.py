"""Request: normalisation on construction and the duck-typed constructors."""

from __future__ import annotations

import httpx
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from balancekit import InvalidOption, Request
from balancekit.request import Headers, QueryParams, parse_cookie_header


def test_defaults_are_a_plain_get() -> None:
    r = Request()
    assert (r.method, r.scheme, r.protocol, r.host, r.path) == ("GET", "http", "http/1.1", "", "/")
    assert r.client_addr is None and r.client_port is None and r.body == b""
    assert len(r.headers) == len(r.query) == len(r.cookies) == 0


def test_host_is_normalised() -> None:
    assert Request(host="API.Example.COM.:8443").host == "api.example.com"
    assert Request(host="[2001:DB8::1]:443").host == "[2001:db8::1]"
    assert Request(headers={"Host": "Web.example:80"}).host == "web.example"


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    r = Request(headers=[("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")])
    assert r.headers.get_all("X-FORWARDED-FOR") == ("1.1.1.1", "2.2.2.2")
    assert r.headers["x-forwarded-for"] == "1.1.1.1, 2.2.2.2"
    assert "X-Forwarded-For" in r.headers and "nope" not in r.headers
    assert list(r.headers) == ["x-forwarded-for"]


def test_query_is_parsed_multi_valued_and_keeps_blanks() -> None:
    r = Request(query="?a=1&a=2&b=&c=x%20y")
    assert r.query.get_all("a") == ("1", "2") and r.query["a"] == "1"
    assert r.query["b"] == "" and r.query["c"] == "x y"
    assert r.raw_query == "a=1&a=2&b=&c=x%20y"
    assert Request(query=[("k", "v")]).query == QueryParams([("k", "v")])


def test_cookies_come_from_every_cookie_line() -> None:
    r = Request(headers=[("Cookie", 'a=1; b="two"'), ("cookie", "c=3;junk; =x")])
    assert dict(r.cookies) == {"a": "1", "b": "two", "c": "3"}
    assert parse_cookie_header(["s=1; s=2"]).get_all("s") == ("1", "2")


def test_explicit_cookies_win() -> None:
    r = Request(headers={"Cookie": "a=1"}, cookies={"b": "2"})
    assert dict(r.cookies) == {"b": "2"}


@pytest.mark.parametrize(
    "options",
    [
        {"client_port": 70000},
        {"local_port": -1},
        {"client_port": True},
        {"method": ""},
        {"path": b"/"},
        {"headers": [("a", 1)]},
        {"headers": ["oops"]},
        {"body": "text"},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidOption):
        Request(**options)  # type: ignore[arg-type]


def test_requests_are_immutable_and_hashable() -> None:
    r = Request(path="/a", headers={"A": "b"})
    with pytest.raises(AttributeError):
        r.path = "/b"  # type: ignore[misc]
    assert r == Request(path="/a", headers={"A": "b"}) and hash(r) == hash(
        Request(path="/a", headers={"A": "b"})
    )


def test_from_asgi() -> None:
    scope = {
        "type": "http",
        "http_version": "2",
        "method": "post",
        "scheme": "https",
        "path": "/v1/items",
        "query_string": b"x=1&x=2",
        "headers": [(b"host", b"Shop.Example:443"), (b"cookie", b"sid=abc")],
        "client": ("192.0.2.5", 40000),
        "server": ("10.0.0.2", 443),
    }
    r = Request.from_asgi(scope, body=b"{}")
    assert (r.method, r.scheme, r.protocol, r.host, r.path) == (
        "POST",
        "https",
        "h2",
        "shop.example",
        "/v1/items",
    )
    assert (r.client_addr, r.client_port, r.local_addr, r.local_port) == (
        "192.0.2.5",
        40000,
        "10.0.0.2",
        443,
    )
    assert r.query.get_all("x") == ("1", "2") and r.cookies["sid"] == "abc" and r.body == b"{}"


def test_from_asgi_websocket_and_missing_fields() -> None:
    r = Request.from_asgi({"type": "websocket", "path": "/ws", "server": ("h", 80)})
    assert (r.protocol, r.scheme, r.method, r.host, r.client_addr) == (
        "websocket",
        "ws",
        "GET",
        "h",
        None,
    )
    with pytest.raises(InvalidOption, match="lifespan"):
        Request.from_asgi({"type": "lifespan"})


def test_from_httpx() -> None:
    request = httpx.Request(
        "PUT", "https://API.example.com:8443/a%20b?q=1&q=2", headers=[("X-A", "1"), ("X-A", "2")]
    )
    r = Request.from_httpx(request)
    assert (r.method, r.scheme, r.host, r.path) == ("PUT", "https", "api.example.com", "/a b")
    assert r.query.get_all("q") == ("1", "2") and r.headers.get_all("x-a") == ("1", "2")
    assert r.client_addr is None


def test_from_requests() -> None:
    prepared = requests.Request(
        "POST", "http://user:pw@example.org:8080/p?x=1", headers={"Cookie": "s=9"}, data={"a": "b"}
    ).prepare()
    r = Request.from_requests(prepared, body_limit=2)
    assert (r.method, r.host, r.path, r.query["x"], r.cookies["s"]) == (
        "POST",
        "example.org",
        "/p",
        "1",
        "9",
    )
    assert r.body == b"a="


TOKEN = st.text("abcXYZ-_019", min_size=1, max_size=5)  # header names are ASCII tokens (RFC 9110)


@given(st.lists(st.tuples(TOKEN, st.text(max_size=5)), max_size=8))
def test_headers_lookup_matches_a_naive_fold(pairs: list[tuple[str, str]]) -> None:
    headers = Headers(pairs)
    for name, _ in pairs:
        expected = tuple(v for k, v in pairs if k.lower() == name.lower())
        assert headers.get_all(name.upper()) == expected
