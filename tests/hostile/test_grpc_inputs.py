"""What a gRPC server or caller can hand balancekit.grpc: trailers, statuses, options.

A server's trailing metadata is hostile input: any ``endpoint-load-metrics`` value (huge, NaN,
10**400, nested JSON, not a str) gives a report or None, never an exception, in time linear in
its size; the statuses decide success exactly as documented.
"""

from __future__ import annotations

import math

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

import balancekit as bk
from balancekit.integrations._call import CONNECT, SENT
from balancekit.integrations._grpc_common import (
    FAILURE_CODES,
    ORCA_KEY,
    classify,
    default_ok_code,
    load_report,
)

values = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=50),
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.builds(lambda n: f"TEXT cpu_utilization={n}, rps_fractional={n}", st.floats()),
    st.builds(lambda n: f'JSON {{"cpu_utilization": {n}, "rps_fractional": 10}}', st.integers()),
)


@given(st.lists(st.tuples(st.sampled_from([ORCA_KEY, "other", ORCA_KEY + "-bin"]), values)))
def test_any_trailer_gives_a_report_or_none(metadata: list[tuple[str, object]]) -> None:
    report = load_report(metadata)
    assert report is None or isinstance(report, bk.LoadReport)
    if report is not None:
        for field in (report.cpu_utilization, report.qps, report.eps):
            assert math.isfinite(field) and field >= 0


@pytest.mark.parametrize(
    "value",
    [
        "TEXT cpu_utilization=nan, rps_fractional=1",
        "TEXT cpu_utilization=-1, rps_fractional=1",
        "TEXT cpu_utilization=1e400, rps_fractional=1",
        "JSON " + "[" * 100_000,
        'JSON {"cpu_utilization": ' + "9" * 5000 + "}",
        "TEXT cpu_utilization=\ud800",
        "BIN AAAA",
    ],
)
def test_bad_reports_are_ignored(value: str) -> None:
    assert load_report([(ORCA_KEY, value)]) is None


def test_a_huge_trailer_is_not_parsed() -> None:
    # valid if parsed (repeated keys, the last wins): None means it was refused by its length
    value = "TEXT " + "cpu_utilization=0.5, " * 1_000_000 + "rps_fractional=1"
    assert load_report([(ORCA_KEY, value)]) is None
    assert load_report([(ORCA_KEY, "TEXT cpu_utilization=0.5, rps_fractional=1")]) is not None


def test_a_good_report() -> None:
    report = load_report([("x", "y"), (ORCA_KEY, "TEXT cpu_utilization=0.5, rps_fractional=300")])
    assert report == bk.LoadReport(cpu_utilization=0.5, qps=300.0)


def test_status_codes() -> None:
    assert {code for code in grpc.StatusCode if not default_ok_code(code)} == FAILURE_CODES
    for code in ("NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "OK", "CANCELLED"):
        assert default_ok_code(getattr(grpc.StatusCode, code))
    for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN"):
        assert not default_ok_code(getattr(grpc.StatusCode, code))


class _Error(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, details: object) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> object:
        return self._details


def test_unavailable_is_classified_by_whether_anything_was_sent() -> None:
    refused = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: refused"
    assert classify(_Error(refused)) == CONNECT
    assert classify(_Error("Stream removed (Socket closed)")) == SENT
    assert classify(_Error(None)) == SENT
    assert classify(_Error(b"failed to connect to all addresses")) == SENT


def test_the_request_cache_is_per_method_and_bounded() -> None:
    from balancekit.integrations._grpc_common import CACHED_METHODS, CallInfo, cached_context

    context = cached_context()
    first = context(CallInfo("/a.B/C", None))
    assert context(CallInfo("/a.B/C", ())) is first
    assert first.path == "/a.B/C" and first.method == "POST"
    with_metadata = context(CallInfo("/a.B/C", (("x-user", "ann"), ("k-bin", b"\x00"))))
    assert with_metadata is not first and with_metadata.headers.get_all("x-user") == ("ann",)
    assert "k-bin" not in with_metadata.headers
    # a client calling ever new method names keeps at most CACHED_METHODS requests
    requests = [context(CallInfo(f"/m/{i}", None)) for i in range(CACHED_METHODS + 50)]
    assert context(CallInfo(f"/m/{CACHED_METHODS + 10}", None)) is not requests[-40]
    assert context(CallInfo("/m/0", None)) is requests[0]


BAD_CALL_ARGUMENTS = [
    {"timeout": float("nan")},
    {"timeout": float("inf")},
    {"timeout": 1e300},
    {"timeout": 10**400},
    {"timeout": "1"},
    {"timeout": True},
    {"metadata": "x-user"},
    {"metadata": [("x-user",)]},
    {"metadata": [("X-User", "ann")]},
    {"metadata": [("x user", "ann")]},
    {"metadata": [("", "ann")]},
    {"metadata": [(1, "ann")]},
    {"metadata": [("x-user", "\ud800")]},
    {"metadata": [("x-user", "caf\xe9")]},
    {"metadata": [("x-user", "a\nb")]},
    {"metadata": [("x-user", b"ann")]},
    {"metadata": [("x-bin", "text")]},
    {"metadata": 7},
]


@pytest.mark.parametrize("arguments", BAD_CALL_ARGUMENTS)
def test_bad_call_arguments_are_refused_before_any_pick(arguments: dict[str, object]) -> None:
    """grpcio would fail these with DEADLINE_EXCEEDED or INTERNAL (or a TypeError mid-call),
    which counted against the endpoint; refused up front, nothing changes."""
    from balancekit.integrations.grpc import AsyncBalancedChannel, BalancedChannel

    lb = bk.LeastConnections(["127.0.0.1:1"])
    with BalancedChannel(lb) as channel:
        for method in (
            channel.unary_unary("/a.B/C"),
            channel.unary_stream("/a.B/C"),
            channel.stream_unary("/a.B/C"),
            channel.stream_stream("/a.B/C"),
        ):
            with pytest.raises(bk.InvalidOption):
                method(b"", **arguments)
        with pytest.raises(bk.InvalidOption):
            channel.unary_unary("/a.B/C").future(b"", **arguments)

    async def main() -> None:
        async with AsyncBalancedChannel(lb) as achannel:
            for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
                with pytest.raises(bk.InvalidOption):
                    getattr(achannel, kind)("/a.B/C")(b"", **arguments)

    import asyncio

    asyncio.run(main())
    stats = lb.stats()["127.0.0.1:1"]
    assert (stats.selected, stats.in_flight, stats.failed) == (0, 0, 0)


def test_good_metadata_is_kept_as_a_tuple() -> None:
    from balancekit.integrations._grpc_common import check_metadata, check_timeout

    pairs = iter([("x-user", "ann"), ("k-bin", b"\x00\xff"), ("a.b_c-d", " ~")])
    assert check_metadata(pairs) == (("x-user", "ann"), ("k-bin", b"\x00\xff"), ("a.b_c-d", " ~"))
    assert check_metadata(None) is None
    assert check_timeout(None) is None
    assert check_timeout(-1) == -1.0  # already expired, as grpcio takes it
    assert check_timeout(2) == 2.0
