"""What the sync and asyncio gRPC channels share: status codes, options, the end of an attempt.

- :data:`FAILURE_CODES` and :func:`default_ok_code`: which statuses count against an endpoint.
- :func:`classify`: whether an ``UNAVAILABLE`` call was never sent (a retry elsewhere is
  transparent) or may have reached the server.
- :class:`GrpcOptions`: the validated options, on top of the HTTP integrations' :class:`Options`
  (retry, ejection, context), plus ``idempotent`` and the ORCA reports.
- :class:`Ended`: a finished attempt as :class:`~balancekit.integrations._call.Call` judges it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

import grpc

from .._core import Balancer
from .._errors import InvalidOption
from .._lease import Lease
from .._options import describe
from ..request import Request
from ..retry import Retry
from ..strategies._orca import MAX_HEADER_LENGTH, LoadReport
from ._call import CONNECT, SENT, Call
from ._common import Options

__all__ = [
    "FAILURE_CODES",
    "MAX_TIMEOUT",
    "ORCA_KEY",
    "CallInfo",
    "Ended",
    "GrpcOptions",
    "OkCode",
    "check_metadata",
    "check_timeout",
    "classify",
    "default_ok_code",
    "load_report",
]

#: The statuses that count as the endpoint's failure: those Envoy maps to an HTTP 5xx
#: (``Grpc::Utility::grpcToHttpStatus``: UNKNOWN, INTERNAL and DATA_LOSS 500, UNIMPLEMENTED 501,
#: UNAVAILABLE 503, DEADLINE_EXCEEDED 504), so a gRPC call is judged as the HTTP integrations'
#: ``status < 500``. gRPC's status code guide (doc/statuscodes.md) has the library itself raise
#: UNAVAILABLE for transport failures and DEADLINE_EXCEEDED when the server did not answer in
#: time; INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED and the like are the application's
#: answers about the request, not about the server, and count as successes. CANCELLED (the
#: caller gave up) is neither: the lease goes back uncounted.
FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

#: Decides from a call's status code whether it counts as a success for the balancer.
OkCode = Callable[[grpc.StatusCode], bool]

#: gRPC C-core's status details when no connection could be made, so nothing was sent: the
#: subchannel's "failed to connect to all addresses" (connection refused, unreachable, TLS
#: handshake failed) and a failed name resolution.
_NOT_SENT = ("failed to connect to all addresses", "DNS resolution failed")

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def default_ok_code(code: grpc.StatusCode) -> bool:
    """A call is a success unless its status is in :data:`FAILURE_CODES`."""
    return code not in FAILURE_CODES


def classify(error: grpc.RpcError) -> str:
    """An ``UNAVAILABLE`` call's kind: ``CONNECT`` if C-core never had a connection to send it
    on (gRFC A6's transparent retry: no server saw it), else ``SENT`` (a stream reset, a
    connection that broke after the call went out)."""
    details = error.details() or ""
    return CONNECT if isinstance(details, str) and details.startswith(_NOT_SENT) else SENT


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is a call that ended ``UNAVAILABLE`` (a transport failure)."""
    return isinstance(error, grpc.RpcError) and _code_of(error) is grpc.StatusCode.UNAVAILABLE


def _code_of(call: Any) -> Any:
    try:
        return call.code()
    except Exception:  # an RpcError that is no Call (raised by an interceptor): unknown
        return grpc.StatusCode.UNKNOWN


#: The trailing metadata key of an ORCA load report in its TEXT or JSON form (the
#: ``endpoint-load-metrics`` header of the ORCA HTTP design, which Envoy also parses). The
#: binary form, ``endpoint-load-metrics-bin`` (gRFC A51), is consumed by gRPC C-core and never
#: reaches a Python client: its metadata trait is ``kPublishToApp = false``
#: (``src/core/lib/transport/metadata_batch.h``), so servers report to balancekit in text.
ORCA_KEY = "endpoint-load-metrics"


def load_report(metadata: Any) -> LoadReport | None:
    """The ORCA report in a call's trailing metadata (the first ``endpoint-load-metrics``), or
    None when there is none or it is unusable: a bad report is ignored, never a failed call.
    Bounded: a value longer than the parser's limit is not parsed."""
    if not metadata:
        return None
    for key, value in metadata:
        if key == ORCA_KEY:
            if not isinstance(value, str) or len(value) > MAX_HEADER_LENGTH:
                return None
            try:
                return LoadReport.from_header(value)
            except InvalidOption:
                return None
    return None


#: Longest call timeout accepted, in seconds: grpcio turns a larger one (1e300, inf) into a
#: deadline in the past and fails the call with DEADLINE_EXCEEDED at once.
MAX_TIMEOUT = 1e9
_KEY_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz_.-"
#: grpcio's details when a call failed in the client before anything was sent: the caller's
#: request serializer raised. The endpoint had no part in it: the lease goes back uncounted.
#: So did "Exception iterating requests!": the caller's request iterator raised (grpcio's
#: ``_consume_request_iterator``, StatusCode.UNKNOWN).
_CLIENT_SIDE = (
    "Exception serializing request!",
    "Exception serializing message!",
    "Exception iterating requests!",
)


def check_timeout(timeout: object) -> float | None:
    """A call's ``timeout``, checked before any pick: None, or a number of seconds up to
    :data:`MAX_TIMEOUT` (0 or less: already expired, as in grpcio). Else InvalidOption."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidOption(f"timeout must be a number of seconds or None, not {describe(timeout)}")
    if isinstance(timeout, int) and not -MAX_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise InvalidOption(f"timeout must be at most {MAX_TIMEOUT:g} seconds")
    if not timeout <= MAX_TIMEOUT:  # NaN too
        raise InvalidOption(
            f"timeout must be a number of seconds up to {MAX_TIMEOUT:g}, not {describe(timeout)}"
        )
    return float(timeout)


def check_metadata(metadata: object) -> tuple[tuple[str, str | bytes], ...] | None:
    """A call's ``metadata``, checked before any pick and kept as a tuple (an iterator would
    be used up by the first attempt): ``(key, value)`` pairs, keys of ``0-9 a-z _ . -`` (gRPC's
    HTTP/2 protocol, ``Header-Name``), values printable ASCII, or bytes for ``-bin`` keys.
    gRPC C-core fails a call whose metadata breaks these rules with INTERNAL, which would
    count against the endpoint; here it is an InvalidOption, and nothing changes. Linear."""
    if metadata is None:
        return None
    if isinstance(metadata, str | bytes) or not isinstance(metadata, Iterable):
        raise InvalidOption(f"metadata must be (key, value) pairs, not {describe(metadata)}")
    pairs = tuple(metadata)
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidOption(f"metadata must be (key, value) pairs, not {describe(pair)}")
        key, value = pair
        if not isinstance(key, str) or not key or not key.isascii() or key.strip(_KEY_CHARS):
            raise InvalidOption(
                "a metadata key is lower-case letters, digits, '_', '.' and '-',"
                f" not {describe(key)}"
            )
        if key.endswith("-bin"):
            if not isinstance(value, bytes):
                raise InvalidOption(f"the value of {key!r} (a -bin key) must be bytes")
        elif not (isinstance(value, str) and value.isascii() and value.isprintable()):
            raise InvalidOption(f"the value of {key!r} must be printable ASCII text")
    return pairs


class CallInfo(NamedTuple):
    """What the ``context`` option receives for each call: the method and its metadata."""

    method: str
    metadata: Any


def default_context(info: CallInfo) -> Request:
    """The request a key extractor reads: ``POST <method>``, text metadata as headers."""
    headers = []
    if info.metadata:
        headers = [
            (key, value)
            for key, value in info.metadata
            if isinstance(key, str) and isinstance(value, str) and not key.endswith("-bin")
        ]
    return Request(protocol="grpc", method="POST", path=info.method, headers=headers)


#: Methods whose metadata-free request :func:`cached_context` keeps (a client calls a few).
CACHED_METHODS = 256


def cached_context() -> Callable[[CallInfo], Request]:
    """:func:`default_context`, with the request of a call without metadata built once per
    method (a :class:`~balancekit.Request` is immutable; building one costs ~30 µs, most of a
    call's overhead). At most :data:`CACHED_METHODS` kept; past that, built each time."""
    plain: dict[str, Request] = {}

    def context(info: CallInfo) -> Request:
        if info.metadata:
            return default_context(info)
        request = plain.get(info.method)
        if request is None:
            request = default_context(info)
            if len(plain) < CACHED_METHODS and isinstance(info.method, str):
                plain[info.method] = request
        return request

    return context


def _idempotent(value: object) -> Callable[[str], bool]:
    if isinstance(value, bool):
        return (lambda method: True) if value else (lambda method: False)
    if isinstance(value, str):  # one name is a collection of characters: refuse, don't guess
        raise InvalidOption(f"idempotent must be a collection of method names, not {value!r}"[:200])
    if callable(value):
        function: Callable[[str], bool] = value
        return lambda method: bool(function(method))
    if isinstance(value, Collection) and all(isinstance(name, str) for name in value):
        names = frozenset(value)
        return names.__contains__
    raise InvalidOption(
        "idempotent must be a bool, a collection of method names ('/pkg.Service/Method') or a"
        f" function of the method name, not {describe(value)}"
    )


class Ended:
    """A finished attempt: its status, and its value or error, read as ``Call`` expects.

    ``status_code`` is the status's number (``Call`` hands it to ``ok_status``, which the
    options adapt to ``ok_code``); ``code()``, ``details()`` and ``trailing_metadata()`` are the
    ``grpc.Call``'s, for the policy's ``retry_result``.
    """

    __slots__ = ("error", "rpc", "value")

    def __init__(self, rpc: Any, value: Any = None, error: BaseException | None = None) -> None:
        self.rpc = rpc
        self.value = value
        self.error = error

    @property
    def status_code(self) -> int:
        code = _code_of(self.rpc)
        return int(code.value[0]) if isinstance(code, grpc.StatusCode) else 2

    def code(self) -> grpc.StatusCode:
        return _code_of(self.rpc)

    def details(self) -> str | None:
        return self.rpc.details()  # type: ignore[no-any-return]

    def trailing_metadata(self) -> Any:
        return self.rpc.trailing_metadata()


def _client_side(rpc: Any) -> bool:
    try:
        details = rpc.details()
    except Exception:
        return False
    return isinstance(details, str) and details.startswith(_CLIENT_SIDE)


class GrpcOptions:
    """The options of :class:`~balancekit.integrations.grpc.BalancedChannel`, validated.

    On top of the HTTP integrations' (``retry``, ``context``, ``eject``, ``max_eject``):
    ``ok_code`` (a function of the ``grpc.StatusCode``, default :func:`default_ok_code`),
    ``idempotent`` (which methods may be sent again once they may have reached a server) and
    ``orca`` (feed the balancer's ``report`` from ORCA trailers).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        ok_code: object,
        idempotent: object,
        context: object,
        orca: object,
        **base: Any,
    ) -> None:
        if not callable(ok_code):
            raise InvalidOption(
                f"ok_code must be a function of the grpc.StatusCode, not {describe(ok_code)}"
            )
        if not isinstance(orca, bool):
            raise InvalidOption(f"orca must be True or False, not {describe(orca)}")
        self.idempotent = _idempotent(idempotent)
        judge: OkCode = ok_code
        self.base: Options[CallInfo] = Options(
            balancer,
            cached_context(),
            ok_status=lambda number: judge(_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)),
            context=context,  # type: ignore[arg-type]
            **base,  # retry, eject, max_eject when given (Options has their defaults)
        )
        self.balancer = balancer
        report = getattr(balancer, "report", None) if orca else None
        self.report: Callable[[Lease, Any], object] | None = report

    @property
    def retry(self) -> Retry:
        return self.base.retry

    def call(self, method: str, metadata: Any, *, replayable: bool) -> Call:
        """A new call (not started) for ``method``."""
        return self.base.call(CallInfo(method, metadata), replayable=replayable)

    def finish(self, call: Call, rpc: Any, ok: bool) -> None:
        """Release ``call`` with ``ok``, after feeding the ORCA report in ``rpc``'s trailers
        (if any, and if the balancer takes reports) for the lease it answered. The release
        happens whatever the report does (a balancer's ``report`` that raises propagates)."""
        lease = call.lease
        try:
            if self.report is not None and lease is not None:
                try:
                    metadata = rpc.trailing_metadata()
                except Exception:
                    metadata = None
                load = load_report(metadata)
                if load is not None:
                    # a report the balancer refuses is ignored, never a failed call
                    with contextlib.suppress(InvalidOption):
                        self.report(lease, load)
        finally:
            call.finish(ok)

    def judge(self, call: Call, rpc: Any, *, expired: bool = False) -> None:
        """Release ``call`` by ``rpc``'s final status: uncounted if CANCELLED (the caller gave
        up), if DEADLINE_EXCEEDED on an attempt ``expired`` before it started (the caller's
        deadline, not the endpoint), or if the request failed to serialize in the client;
        else ``ok_code``'s verdict (transport failures the driver retries never get here)."""
        code = _code_of(rpc)
        if (
            code is grpc.StatusCode.CANCELLED
            or (expired and code is grpc.StatusCode.DEADLINE_EXCEEDED)
            or (code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and _client_side(rpc))
        ):
            call.cancel()
            return
        try:
            ok = bool(self.base.ok_status(int(code.value[0])))
        except BaseException:
            call.error()
            raise
        self.finish(call, rpc, ok)
