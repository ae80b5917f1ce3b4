"""Key extractors: what each returns, the documented fallbacks, and trusted-proxy handling."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit import InvalidOption, Request, keys

PROXIES = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]


def test_header_cookie_query_path_host() -> None:
    r = Request(
        host="Api.Example:80",
        path="/p",
        query="tenant=t1&tenant=t2",
        headers=[("X-Api-Key", "k1"), ("x-api-key", "k2"), ("Cookie", "session=s1")],
    )
    assert keys.header("X-API-KEY")(r) == "k1, k2"
    assert keys.cookie("session")(r) == "s1"
    assert keys.query("tenant")(r) == "t1"
    assert keys.path()(r) == "/p"
    assert keys.host()(r) == "api.example"


@pytest.mark.parametrize(
    "extractor",
    [keys.header("x-api-key"), keys.cookie("session"), keys.query("tenant"), keys.host()],
)
def test_missing_or_empty_is_none(extractor: keys.Extractor) -> None:
    assert extractor(Request()) is None
    empty = Request(headers={"X-Api-Key": "", "Cookie": "session="}, query="tenant=")
    assert extractor(empty) is None


def test_first_of_falls_back_in_order() -> None:
    key = keys.first_of(keys.cookie("session"), keys.header("x-user"), keys.client_ip())
    assert (
        key(Request(headers={"Cookie": "session=s", "X-User": "u"}, client_addr="192.0.2.9")) == "s"
    )
    assert key(Request(headers={"X-User": "u"}, client_addr="192.0.2.9")) == "u"
    assert key(Request(client_addr="192.0.2.9")) == "192.0.2.9"
    assert key(Request()) is None


def test_or_else_is_first_of() -> None:
    key = keys.cookie("session").or_else(keys.path())
    assert key(Request(path="/x")) == "/x"
    assert key(Request(path="/x", headers={"Cookie": "session=a"})) == "a"
    assert "cookie('session')" in repr(key)


def test_plain_functions_compose() -> None:
    key = keys.first_of(lambda r: None, lambda r: b"raw")
    assert key(Request()) == b"raw"


def test_five_tuple() -> None:
    r = Request(
        client_addr="192.0.2.1",
        client_port=5000,
        local_addr="10.0.0.1",
        local_port=443,
        protocol="TCP",
    )
    assert keys.five_tuple()(r) == "tcp|192.0.2.1|5000|10.0.0.1|443"
    assert keys.five_tuple()(Request(client_addr="192.0.2.1")) is None
    assert (
        keys.five_tuple()(Request(client_addr="192.0.2.1", client_port=1))
        == "http/1.1|192.0.2.1|1||"
    )


def test_a_non_request_context_is_refused_clearly() -> None:
    with pytest.raises(InvalidOption, match=r"balancekit\.Request"):
        keys.path()("/not-a-request")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        lambda: keys.header(""),
        lambda: keys.cookie(3),  # type: ignore[arg-type]
        lambda: keys.first_of(),
        lambda: keys.first_of("x"),  # type: ignore[arg-type]
        lambda: keys.client_ip(header="via"),
        lambda: keys.client_ip(trusted_proxies=["10.0.0.1/8"]),
        lambda: keys.client_ip(trusted_proxies=["not-an-ip"]),
    ],
)
def test_bad_options(bad: object) -> None:
    with pytest.raises(InvalidOption):
        bad()  # type: ignore[operator]


def test_client_ip_without_trusted_proxies_ignores_headers() -> None:
    key = keys.client_ip()
    r = Request(client_addr="198.51.100.4", headers={"X-Forwarded-For": "1.2.3.4"})
    assert key(r) == "198.51.100.4"
    assert key(Request()) is None
    assert key(Request(client_addr="::ffff:198.51.100.4")) == "198.51.100.4"
    assert key(Request(client_addr="unix-socket")) == "unix-socket"


def test_xff_is_honoured_only_from_a_trusted_peer() -> None:
    key = keys.client_ip(trusted_proxies=PROXIES)
    forged = "6.6.6.6"
    via_proxy = Request(
        client_addr="10.1.2.3", headers={"X-Forwarded-For": f"{forged}, 203.0.113.7"}
    )
    assert key(via_proxy) == "203.0.113.7"  # rightmost untrusted, the forged entry is ignored
    direct = Request(client_addr="203.0.113.8", headers={"X-Forwarded-For": forged})
    assert key(direct) == "203.0.113.8"


def test_xff_walks_through_chained_trusted_proxies() -> None:
    key = keys.client_ip(trusted_proxies=PROXIES)
    r = Request(
        client_addr="10.0.0.1",
        headers=[
            ("X-Forwarded-For", "203.0.113.7, 192.0.2.1"),
            ("X-Forwarded-For", "10.9.9.9:8080"),
        ],
    )
    assert key(r) == "203.0.113.7"
    only_proxies = Request(client_addr="10.0.0.1", headers={"X-Forwarded-For": "10.0.0.2"})
    assert key(only_proxies) == "10.0.0.2"
    no_header = Request(client_addr="10.0.0.1")
    assert key(no_header) == "10.0.0.1"


def test_a_garbage_hop_stops_at_the_proxy_that_wrote_it() -> None:
    key = keys.client_ip(trusted_proxies=PROXIES)
    r = Request(client_addr="10.0.0.1", headers={"X-Forwarded-For": "203.0.113.7, unknown"})
    assert key(r) == "10.0.0.1"


def test_forwarded_header_rfc7239() -> None:
    key = keys.client_ip(trusted_proxies=PROXIES, header="forwarded")
    r = Request(
        client_addr="10.0.0.1",
        headers={
            "Forwarded": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, '
            'for=203.0.113.60;by=10.0.0.1;host="a,b"'
        },
    )
    assert key(r) == "203.0.113.60"
    r2 = Request(client_addr="10.0.0.1", headers={"Forwarded": 'for="[2001:db9::17]:4711"'})
    assert key(r2) == "2001:db9::17"
    hidden = Request(client_addr="10.0.0.1", headers={"Forwarded": "for=_hidden"})
    assert key(hidden) == "10.0.0.1"
    # With header="forwarded", a client-sent X-Forwarded-For is not read at all.
    xff = Request(client_addr="10.0.0.1", headers={"X-Forwarded-For": "6.6.6.6"})
    assert key(xff) == "10.0.0.1"


def test_trusted_proxies_membership() -> None:
    trusted = keys.TrustedProxies(PROXIES)
    assert "10.255.0.1" in trusted and "192.0.2.1" in trusted and "2001:db8::5" in trusted
    assert "11.0.0.1" not in trusted and "192.0.2.2" not in trusted and "bogus" not in trusted
    assert not keys.TrustedProxies() and keys.TrustedProxies("10.0.0.0/8")


NETWORKS = st.builds(
    lambda addr, plen: ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{plen}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@given(st.lists(NETWORKS, max_size=6), st.integers(0, 2**32 - 1))
def test_trusted_proxies_agree_with_ipaddress(
    nets: list[ipaddress.IPv4Network], value: int
) -> None:
    address = ipaddress.IPv4Address(value)
    assert keys.TrustedProxies(nets).contains_ip(address) == any(address in n for n in nets)


IPS = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))


@given(st.lists(IPS, max_size=6), IPS)
def test_client_ip_is_the_rightmost_untrusted_hop(hops: list[str], peer: str) -> None:
    trusted = keys.TrustedProxies(["10.0.0.0/8"])
    request = Request(
        client_addr=peer, headers={"X-Forwarded-For": ", ".join(hops)} if hops else {}
    )
    chain = [*hops, peer]
    expected = peer
    if peer in trusted:  # reference: walk left while the current hop is trusted
        expected = chain[0]
        for hop in reversed(chain):
            expected = hop
            if hop not in trusted:
                break
    assert keys.client_ip(trusted_proxies=trusted)(request) == expected


def test_an_iphash_balances_by_session_cookie() -> None:
    lb = bk.IPHash(
        ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
        key=keys.cookie("session").or_else(keys.client_ip()),
    )
    picks = {
        lb.select(Request(headers={"Cookie": "session=abc"}, client_addr=f"192.0.2.{i}")).address
        for i in range(20)
    }
    assert len(picks) == 1
    with pytest.raises(bk.BalancekitError):
        bk.IPHash(["10.0.0.1:80"], key=keys.cookie("session")).select(Request())


def test_one_trusted_network_object_is_one_network() -> None:
    import ipaddress

    extract = bk.keys.client_ip(trusted_proxies=ipaddress.ip_network("10.0.0.0/8"))
    request = bk.Request(client_addr="10.1.2.3", headers={"X-Forwarded-For": "198.51.100.7"})
    assert extract(request) == "198.51.100.7"


def _forwarded_for_reference(values: tuple[str, ...]) -> list[str]:
    """The character-by-character parser the tokenizer replaced: the model it must agree with."""
    hops: list[str] = []
    for line in values:
        element: list[str] = []
        quoted = False
        current = ""
        for char in line + ",":
            if char == '"':
                quoted = not quoted
            if not quoted and char in ",;":
                element.append(current)
                current = ""
                if char == ",":
                    found = ""
                    for param in element:
                        name, _, value = param.partition("=")
                        if name.strip().lower() == "for":
                            found = value.strip()
                    if any(part.strip() for part in element):
                        hops.append(found)
                    element = []
                continue
            current += char
    return hops


@given(st.lists(st.text(alphabet='for=";, 1.[]:aF\n', max_size=40), max_size=4))
def test_forwarded_tokenizer_agrees_with_the_char_by_char_parser(lines: list[str]) -> None:
    from balancekit.keys import _forwarded_for

    assert _forwarded_for(tuple(lines)) == _forwarded_for_reference(tuple(lines))


def test_huge_forwarded_and_xff_hops_are_not_parsed_or_cached() -> None:
    from balancekit.keys import _parse_ip

    key = keys.client_ip(trusted_proxies=PROXIES)
    hop = "1" * 100_000
    r = Request(client_addr="10.0.0.1", headers={"X-Forwarded-For": f"{hop}, 10.0.0.2"})
    assert key(r) == "10.0.0.2"  # the huge hop is not an address: the walk stops at its proxy
    assert _parse_ip(hop) is None
