"""Endpoints: parsing, validation, and the errors a caller sees for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("10.0.0.1:8080", "10.0.0.1", 8080),
        ("[::1]:443", "::1", 443),
        ("db-1.internal:5432", "db-1.internal", 5432),
    ],
)
def test_parses_addresses(address: str, host: str, port: int) -> None:
    endpoint = bk.Endpoint(address)
    assert (endpoint.host, endpoint.port, endpoint.weight) == (host, port, 1)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.0.0.1", "expected 'host:port'"),
        ("10.0.0.1:http", "port"),
        ("10.0.0.1:70000", "port"),
        ("10.0.0.1:\u00b2", "port"),  # a superscript two is a digit to str.isdigit, not a port
        ("10.0.0.1:\uff18\uff10", "port"),  # fullwidth "80" would alias port 80
        ("::1:80", "brackets"),
        ("[::zz]:80", "not an IPv6"),
        ("bad host:80", "neither an IP address nor a hostname"),
        (":80", "expected 'host:port'"),
    ],
)
def test_unparsable_addresses_say_what_is_wrong(address: str, message: str) -> None:
    with pytest.raises(bk.InvalidEndpoint, match=message):
        bk.Endpoint(address)


@pytest.mark.parametrize("weight", [0, -1, 1.5, True, "2", 10**7])
def test_bad_weights(weight: object) -> None:
    with pytest.raises(bk.InvalidEndpoint, match="weight"):
        bk.Endpoint("10.0.0.1:80", weight=weight)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bk.Endpoint("10.0.0.1:80", weight=weight)  # type: ignore[arg-type]


def test_duplicates_and_wrong_types_in_a_pool() -> None:
    with pytest.raises(bk.DuplicateEndpoint, match="listed twice"):
        bk.RoundRobin(["10.0.0.1:80", bk.Endpoint("10.0.0.1:80", weight=3)])
    with pytest.raises(bk.InvalidEndpoint, match="a list of endpoints"):
        bk.RoundRobin("10.0.0.1:80")
    with pytest.raises(bk.InvalidEndpoint):
        bk.RoundRobin([42])  # type: ignore[list-item]


def test_metadata_is_read_only_and_not_compared() -> None:
    a = bk.Endpoint("10.0.0.1:80", metadata={"zone": "a"})
    assert a == bk.Endpoint("10.0.0.1:80", metadata={"zone": "b"})
    assert a.metadata["zone"] == "a"
    with pytest.raises(TypeError):
        a.metadata["zone"] = "c"  # type: ignore[index]


def test_bad_options_are_refused_at_construction() -> None:
    with pytest.raises(bk.InvalidOption, match="replicas"):
        bk.IPHash([], replicas=0)
    with pytest.raises(bk.InvalidOption, match="clock"):
        bk.RoundRobin([], clock=3.0)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="decay"):
        bk.LeastResponseTime([], decay=-1)
    for option in ("decay", "min_step", "probe_interval", "default_latency"):
        with pytest.raises(bk.InvalidOption, match=option):
            bk.LeastResponseTime([], **{option: True})  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption, match="key must be a function"):
        bk.IPHash([], key="session")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bk.RoundRobin([], colck=lambda: 0.0)  # type: ignore[call-arg]


def test_hash_key_errors() -> None:
    lb = bk.IPHash(["a:1"])
    with pytest.raises(bk.InvalidOption, match="needs a key"):
        lb.select()
    with pytest.raises(bk.InvalidOption, match="str or bytes"):
        lb.select(42)
    with pytest.raises(bk.InvalidOption, match="elapsed"):
        lb.release(lb.select("k"), elapsed=-1.0)


@given(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}\Z"), st.integers(0, 65535)
)
def test_any_hostname_and_port_round_trip(host: str, port: int) -> None:
    endpoint = bk.Endpoint(f"{host}:{port}")
    assert (endpoint.host, endpoint.port) == (host, port)


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (["a:80", "a:080", "A:80", "a.:80", "A.:00080"], "a:80"),
        (["[::1]:80", "[0::1]:80", "[0:0:0:0:0:0:0:1]:080"], "[::1]:80"),
        (["[2001:DB8::0:1]:443", "[2001:db8:0:0:0:0:0:1]:443"], "[2001:db8::1]:443"),
        (["[::FFFF:0102:0304]:1", "[::ffff:1.2.3.4]:1"], "[::ffff:1.2.3.4]:1"),
        (["[FE80::1%eth0]:80"], "[fe80::1%eth0]:80"),
        (["Db-1.Internal:5432"], "db-1.internal:5432"),
    ],
)
def test_addresses_are_stored_in_canonical_form(spellings: list[str], canonical: str) -> None:
    for spelling in spellings:
        endpoint = bk.Endpoint(spelling)
        assert endpoint.address == canonical == bk.Endpoint(canonical).address
        assert endpoint == bk.Endpoint(canonical)
    with pytest.raises(bk.DuplicateEndpoint, match="listed twice"):
        bk.RoundRobin([*spellings, canonical])


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("host\n:80", "neither an IP address nor a hostname"),
        ("host:80\n", "port"),
        ("\nhost:80", "neither an IP address nor a hostname"),
        ("[fe80::1%eth0\r\n]:80", "zone id"),
        ("[fe80::1%" + "x" * 100_000 + "]:80", "at most 260 characters"),
        ("[fe80::1%" + "x" * 65 + "]:80", "zone id"),
        ("[fe80::1%]:80", "zone id"),
        ("999.1.1.1:80", "not an IPv4 address"),
        ("1.2.3.4.5:80", "not an IPv4 address"),
        ("127.1:80", "not an IPv4 address"),
        ("010.0.0.1:80", "not an IPv4 address"),
        ("0x7f.0.0.1:80", "not an IPv4 address"),
        ("example.123:80", "numeric label"),
        ("a" * 64 + ".example:80", "1 to 63 characters"),
        (".".join(["a" * 63] * 4) + ":80", "at most 253"),
        ("a..b:80", "neither an IP address nor a hostname"),
        ("-a:80", "neither an IP address nor a hostname"),
        ("a:000080", "at most 5 digits"),
    ],
)
def test_addresses_that_are_not_canonicalisable_are_refused(address: str, message: str) -> None:
    with pytest.raises(bk.InvalidEndpoint, match=message):
        bk.Endpoint(address)


def test_metadata_must_be_a_mapping() -> None:
    for metadata in (None, 3, "zone=a", [("zone", "a")]):
        with pytest.raises(bk.InvalidEndpoint, match="metadata"):
            bk.Endpoint("10.0.0.1:80", metadata=metadata)  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_canonical_form_is_a_fixed_point_and_has_no_control_characters(text: str) -> None:
    try:
        endpoint = bk.Endpoint(text)
    except bk.InvalidEndpoint:
        return
    address = endpoint.address
    assert bk.Endpoint(address).address == address
    assert address.isascii() and address.isprintable() and len(address) <= 260
    assert not any(c in address for c in "\r\n\t ")


@given(
    st.ip_addresses(v=4) | st.ip_addresses(v=6),
    st.integers(0, 65535),
    st.integers(0, 2),
)
def test_every_ip_spelling_maps_to_one_address(ip: object, port: int, zeros: int) -> None:
    import ipaddress

    assert isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    port_text = "0" * zeros + str(port) if len(str(port)) + zeros <= 5 else str(port)
    if ip.version == 4:
        spellings = [f"{ip}:{port_text}"]
    else:
        spellings = [f"[{ip.exploded}]:{port_text}", f"[{ip.compressed.upper()}]:{port}"]
    addresses = {bk.Endpoint(s).address for s in spellings}
    assert len(addresses) == 1
    (address,) = addresses
    assert address.endswith(f":{port}")
    host = bk.Endpoint(address).host
    assert ipaddress.ip_address(host) == ip
