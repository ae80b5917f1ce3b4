"""An aiohttp client middleware that sends each request to the endpoint a balancer selects.

Use::

    import aiohttp, balancekit as bk
    lb = bk.LeastConnections(["127.0.0.1:8001", "127.0.0.1:8002"])
    balanced = bk.aiohttp.BalancedMiddleware(lb)
    async with aiohttp.ClientSession("http://backend", middlewares=(balanced,)) as session:
        async with session.get("/users/7") as response:   # sent to :8001 or :8002
            body = await response.json()                   # Host: backend

aiohttp (3.12 and later) runs *client middlewares* around the step that connects and sends a
request (``ClientSession(middlewares=...)``, or ``middlewares=`` on one request, which
replaces the session's); a middleware may change the request and call the handler more than
once, which is how aiohttp's own documentation writes retries. This middleware replaces the
host and port of each attempt's URL with the selected endpoint's, keeps scheme, path and query,
and keeps the ``Host`` header of the logical name (``host_header="endpoint"`` sends the
endpoint's ``host:port``); over ``https`` the TLS server name and certificate check use the
logical name (aiohttp's ``server_hostname``), unless the request set its own. Connections are
pooled per endpoint (aiohttp's pool key is the URL's host and port). The response the caller
gets speaks of the logical URL (``response.url``, ``request_info``, so cookies are stored for
the service and relative redirects stay on it): aiohttp has no public setter for these, so the
middleware sets the response's ``_url``, ``_real_url`` and ``_request_info``, which the tests
check against the installed aiohttp.

**Release.** The lease is released when the response's connection is given back: the body was
read to the end, or the response was released or closed (``async with`` exits,
``response.release()``), or garbage-collected; a response with no body is released at once.
So a streamed response (``async for chunk in response.content``) stays in flight until it is
over, and the elapsed time covers the whole body (NGINX's ``least_time last_byte``). The outcome
is ``ok_status(status)`` (status < 500 by default) and the policy's ``retry_result``; a body
that broke while being read (``aiohttp.ClientPayloadError``, a ``sock_read`` timeout, a
connection reset) makes it a failure. A request
cancelled before its answer (``asyncio.CancelledError``, aiohttp's total timeout) gives its
lease back uncounted, and so does a body read that a cancellation cuts short (``asyncio.timeout``
or ``wait_for`` around the fetch); aiohttp's own total timeout during the body cannot be told
from a close (aiohttp has turned it into a TimeoutError by then), so it counts by the status.

**Retries** follow :mod:`balancekit.integrations.httpx`: a failed connection
(``aiohttp.ClientConnectorError``, a connect timeout) is retried at once on another endpoint
for every method and ejects the endpoint through the balancer's health tracker; a connection
broken after sending (``ServerDisconnectedError``, ``ClientOSError``) or a response that
``retry_result`` rejects is retried with the :class:`balancekit.retry.Retry` policy only for
idempotent methods (RFC 9110 §9.2.2) whose body can be sent again (none, or bytes/str/form
data: ``aiohttp.payload.BytesPayload``). TLS errors and read timeouts are not retried.

Task-safe on one event loop, as aiohttp is. Per request: one ``select`` and one ``release``
per attempt, plus a closure and a callback on aiohttp's connection.
Source: aiohttp ``client_middlewares.py`` and "Client Middleware" in the aiohttp docs.
"""

from __future__ import annotations

import asyncio
from typing import Unpack

from .._errors import missing_extra

try:
    import aiohttp
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] != "aiohttp":
        raise
    raise missing_extra("balancekit.aiohttp", "aiohttp", "aiohttp", "aiohttp") from error
from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.payload import BytesPayload
from yarl import URL

from .._core import Balancer
from .._endpoint import split_address
from .._errors import InvalidOption, NoEndpointAvailable
from .._lease import Lease
from .._options import describe
from ..request import Request
from ._call import CONNECT, FINAL, SENT, Call, send_with_retries_async
from ._common import IDEMPOTENT_METHODS, Balancing, ClientOptions, Options, check_keywords

__all__ = ["BalancedMiddleware", "NoEndpointError", "classify", "request_context"]

#: Endpoint addresses whose (host, port) a middleware keeps parsed; past it, the cache restarts.
_MAX_CACHED_HOSTS = 4096


class NoEndpointError(aiohttp.ClientConnectionError, NoEndpointAvailable):
    """No endpoint could take the request: an ``aiohttp.ClientConnectionError`` and a
    NoEndpointAvailable."""


def _host_name(host: object) -> str:
    """The ``host`` option as a URL's ``raw_host`` reads (lowercase, no final dot), or
    InvalidOption for anything a URL's host cannot be (a port, a scheme, a path: such a
    middleware would match no request and let every one pass unbalanced)."""
    if not (isinstance(host, str) and 0 < len(host) <= 255 and host.isascii()):
        raise InvalidOption(
            f"host must be a non-empty ASCII host name or None, not {describe(host)}"
        )
    try:
        raw = URL.build(scheme="http", host=host).raw_host
    except ValueError as error:
        raise InvalidOption(
            f"host must be a bare host name (no scheme, port or path), not {describe(host)}:"
            f" {error}"
        ) from None
    return (raw or "").rstrip(".")


def classify(error: aiohttp.ClientError) -> str:
    """Which kind of failure an aiohttp error is: connect (nothing sent), sent, or final."""
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return FINAL  # a certificate will not get better on another attempt
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return CONNECT
    if isinstance(error, aiohttp.ServerTimeoutError):
        return FINAL  # waiting for the answer timed out: the server may be working on it
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return SENT
    return FINAL


def request_context(request: ClientRequest) -> Request:
    """The :class:`balancekit.Request` of an aiohttp ``ClientRequest`` (the logical URL, the
    headers; the body is not read), which the key extractors in ``balancekit.keys`` read."""
    url = request.url
    return Request(
        method=request.method,
        scheme=url.scheme or "http",
        host=url.host or "",
        path=url.path or "/",
        query=url.query_string,
        headers=[(str(k), str(v)) for k, v in request.headers.items()],
    )


def _status(response: ClientResponse) -> int:
    return response.status


def _replayable(request: ClientRequest) -> bool:
    body = request.body
    return request.method in IDEMPOTENT_METHODS and (body == b"" or isinstance(body, BytesPayload))


async def _release(response: ClientResponse) -> None:
    """Give back a response the middleware will not return (a rejected one, before its retry)."""
    response.release()


#: What aiohttp sets on a response's content when the body broke while being read: cut short
#: (ClientPayloadError), the server silent past ``sock_read`` (ServerTimeoutError), the
#: connection reset (ClientOSError). A release or close by the caller sets a plain
#: ClientConnectionError("Connection closed"), which is none of these.
_BODY_BROKEN = (aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError, aiohttp.ClientOSError)


def _cancelling() -> bool:
    """Whether the running task is being cancelled (the release comes from the exit of an
    ``async with`` that a cancellation unwinds); False outside a task."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: a response collected in another thread
        return False
    return task is not None and task.cancelling() > 0


def _release_on_close(response: ClientResponse, call: Call) -> None:
    """Release ``call`` when aiohttp gives the response's connection back (body over, released,
    closed, or the response collected), a failure if the body broke."""
    connection = response.connection
    if connection is None:  # no body, or it was over before the handler returned
        call.finish(call.ok)
        return
    content = response.content  # not the response: no cycle through the connection
    ok = call.ok

    def released() -> None:
        broken = isinstance(content.exception(), _BODY_BROKEN)
        if ok and not broken and _cancelling():
            call.cancel()  # the caller gave up part-way (a timeout around the fetch): unknown
            return
        call.finish(ok and not broken)

    connection.add_callback(released)


def _speak_logically(response: ClientResponse, request: ClientRequest) -> None:
    """Make the response name the logical URL, as if aiohttp had sent it there."""
    url = request.url
    for name, value in (
        ("_url", url.with_fragment(None) if url.raw_fragment else url),
        ("_real_url", url),
        ("_request_info", request.request_info),
    ):
        if hasattr(response, name):
            setattr(response, name, value)
    cache = getattr(response, "_cache", None)  # aiohttp's reify keeps request_info there
    if isinstance(cache, dict):
        cache.pop("request_info", None)


class BalancedMiddleware(Balancing):
    """An aiohttp client middleware balancing every request it sees over ``balancer``.

    Options (keyword-only, validated at once), as :class:`balancekit.httpx.BalancedTransport`:

    - ``retry``: a :class:`balancekit.retry.Retry` (default ``Retry()``: 3 attempts on distinct
      endpoints, jittered backoff, a retry budget); ``None`` for a single attempt. Its
      ``retry_result`` is a predicate on the ``aiohttp.ClientResponse``.
    - ``ok_status``: a function of the status code deciding success (default: status < 500).
    - ``host_header``: ``"logical"`` (default) or ``"endpoint"``.
    - ``context``: what ``select`` receives, a function of the ``aiohttp.ClientRequest``
      (default :func:`request_context`: ``bk.IPHash(..., key=bk.keys.header("x-user"))``).
    - ``eject`` / ``max_eject``: refused connections eject the endpoint through the balancer's
      health tracker (1 s, growing to 30 s, when the balancer has none); ``None`` for off.
    - ``host``: balance only requests to this logical host name (any port and scheme), and
      pass the others through untouched (an internationalised name in its ASCII form,
      ``xn--...``), so one session can hold a middleware per service
      (and a redirect to another site is not sent to the endpoints); default ``None``: every
      request the middleware sees.

    Put it last in ``middlewares`` so that the others (auth, logging) see the logical request
    once, not each attempt.
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        host: str | None = None,
        **options: Unpack[ClientOptions[ClientRequest]],
    ) -> None:
        check_keywords(self, dict(options))
        self._host = None if host is None else _host_name(host)
        self._options = Options(balancer, request_context, **options)
        self._hosts: dict[str, tuple[str, int]] = {}  # address -> (host, port), parsed once

    def _host_port(self, address: str) -> tuple[str, int]:
        hosts = self._hosts
        found = hosts.get(address)
        if found is None:
            if len(hosts) >= _MAX_CACHED_HOSTS:  # membership churned a lot: start over
                hosts.clear()
            found = hosts[address] = split_address(address)
        return found

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if not isinstance(request, ClientRequest):
            raise InvalidOption(f"expected an aiohttp ClientRequest, not {describe(request)}")
        # raw_host: the ASCII (IDNA) form, lowercased, as `host=` is given; url.host is decoded
        if self._host is not None and (request.url.raw_host or "").rstrip(".") != self._host:
            return await handler(request)  # another service's request: not ours to balance
        options = self._options
        call = Call(
            options.balancer,
            options.retry,
            options.context(request),
            options.health,
            options.ok_status,
            replayable=_replayable(request),
            status=_status,
        )
        try:
            call.start()
        except NoEndpointAvailable as error:
            raise NoEndpointError(str(error)) from error
        logical = request.url
        secure = request.is_ssl()
        server_hostname = request.server_hostname
        headers = request.headers
        endpoint_host = options.host_header == "endpoint"

        async def send(lease: Lease) -> ClientResponse:
            address = lease.address
            host, port = self._host_port(address)
            request.url = logical.with_host(host).with_port(port)
            if secure and server_hostname is None:
                request.server_hostname = logical.raw_host
            before = headers.getall("Host", None)
            if endpoint_host:
                headers["Host"] = address
            try:
                response = await handler(request)
            finally:  # aiohttp may send the request again (its own retry, redirects)
                request.url = logical
                request.server_hostname = server_hostname
                if endpoint_host:
                    headers.popall("Host", None)
                    for value in before or ():
                        headers.add("Host", value)
            _speak_logically(response, request)
            return response

        response = await send_with_retries_async(
            call, send, aiohttp.ClientError, classify, _release
        )
        _release_on_close(response, call)
        return response

    def __repr__(self) -> str:
        return f"BalancedMiddleware({self._options.balancer!r})"
