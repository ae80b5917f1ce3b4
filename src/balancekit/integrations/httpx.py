"""httpx transports that send each request to the endpoint a balancer selects.

Use::

    import httpx, balancekit as bk
    lb = bk.LeastConnections(["127.0.0.1:8001", "127.0.0.1:8002"])
    client = httpx.Client(base_url="http://backend", transport=bk.httpx.BalancedTransport(lb))
    client.get("/users/7")        # sent to 127.0.0.1:8001 or :8002, Host: backend

The request's URL names a *logical* service (``http://backend/...``); the transport replaces
its host and port with the selected endpoint's, keeps scheme, path and query, and by default
keeps the ``Host`` header of the logical name (``host_header="endpoint"`` sends the endpoint's
``host:port`` instead); over ``https`` the TLS server name (SNI) and the certificate check use
the logical name too (httpcore's ``sni_hostname`` extension). To balance only one service in a
client that talks to others, mount the transport: ``httpx.Client(mounts={"http://backend":
transport})``.

Every request is released back to the balancer when its response body is closed (``ok`` when no
transport error occurred and ``ok_status(status)`` holds: status < 500 by default), so the
elapsed time covers the whole body, as NGINX's ``least_time last_byte``. A streamed response
(``client.stream(...)``) stays in flight until it is closed; a request cancelled before its
answer is given back uncounted (``Balancer.cancel``). Failed connections are retried at once on
another endpoint for every method (nothing was sent), without spending the retry budget; a
connection broken after sending, or a response the policy's ``retry_result`` rejects, is
retried only for idempotent methods (RFC 9110 §9.2.2) with a replayable body, following a
:class:`balancekit.retry.Retry` policy (attempts, backoff, budget). An endpoint that refuses a
connection is ejected for a while through the balancer's health tracker
(:mod:`balancekit.integrations._eject`).

Both transports are as thread-safe (or task-safe) as the balancer and the inner transport.
Source: httpx ``BaseTransport.handle_request`` (``httpx/_transports/base.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Unpack

from .._errors import InvalidOption, NoEndpointAvailable, missing_extra

try:
    import httpx
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] != "httpx":
        raise
    raise missing_extra("balancekit.httpx", "httpx", "httpx", "httpx") from error

from .._core import Balancer
from .._endpoint import Endpoint, split_address
from .._lease import Lease
from .._options import describe
from ..request import Request
from ._call import (
    CONNECT,
    FINAL,
    SENT,
    BodyRelease,
    Call,
    Exhausted,
    send_with_retries,
    send_with_retries_async,
)
from ._common import (
    IDEMPOTENT_METHODS,
    Balancing,
    ClientOptions,
    HostHeader,
    Options,
    check_keywords,
)

__all__ = ["AsyncBalancedTransport", "BalancedTransport", "NoEndpointError"]


class NoEndpointError(httpx.ConnectError, NoEndpointAvailable):
    """No endpoint could take the request: an ``httpx.ConnectError`` and a NoEndpointAvailable."""


def classify(error: httpx.TransportError) -> str:
    """Which kind of failure an httpx error is: connect (nothing sent), sent, or final."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return CONNECT
    if isinstance(error, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return SENT
    return FINAL


def rewrite(request: httpx.Request, endpoint: Endpoint, host_header: HostHeader) -> httpx.Request:
    """The request to send to ``endpoint``: same method, path, query, headers and body.

    The original request is never changed (the client's ``response.request`` stays logical);
    headers and extensions are copied only when they change.
    """
    host, port = split_address(endpoint.address)
    url = request.url.copy_with(host=host, port=port)
    headers = request.headers
    extensions = request.extensions
    if host_header == "endpoint":
        headers = headers.copy()
        headers["Host"] = endpoint.address
    elif url.scheme == "https" and "sni_hostname" not in extensions:
        extensions = {**extensions, "sni_hostname": request.url.host}
    return httpx.Request(
        request.method, url, headers=headers, stream=request.stream, extensions=extensions
    )


def _started_call(options: Options[httpx.Request], request: httpx.Request) -> Call:
    """A call for ``request`` holding its first lease (NoEndpointError if the pool has none)."""
    replayable = request.method in IDEMPOTENT_METHODS and isinstance(
        request.stream, httpx.ByteStream
    )
    call = options.call(request, replayable=replayable)
    try:
        call.start()
    except NoEndpointAvailable as error:
        raise NoEndpointError(
            options.no_endpoint(request.url.host, error), request=request
        ) from error
    return call


def _exhausted(options: Options[httpx.Request], request: httpx.Request) -> Exhausted:
    """Builds the error for a request whose every attempt failed to connect: it names the
    service and how many endpoints were tried."""

    def error(last: Exception, tried: int) -> Exception:
        message = options.all_refused(request.url.host, last, tried)
        return NoEndpointError(message, request=request)

    return error


def _close(response: httpx.Response) -> None:
    """Close a response the transport will not return (a rejected one, before its retry)."""
    response.close()


async def _aclose(response: httpx.Response) -> None:
    await response.aclose()


class _ReleasingStream(httpx.SyncByteStream):
    """A response body that releases the lease when it is closed (or garbage-collected)."""

    def __init__(self, stream: httpx.SyncByteStream, call: Call) -> None:
        self._stream = stream
        self._release = BodyRelease(self, call)

    def __iter__(self) -> Iterator[bytes]:
        release = self._release
        release.reading = True
        try:
            yield from self._stream
        except Exception:
            release.ok = False
            raise
        except BaseException:  # KeyboardInterrupt, or GeneratorExit: the reader stopped early
            release.interrupted()
            raise
        finally:
            release.reading = False

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._release.closed()


class _AsyncReleasingStream(httpx.AsyncByteStream):
    """The async twin of :class:`_ReleasingStream`."""

    def __init__(self, stream: httpx.AsyncByteStream, call: Call) -> None:
        self._stream = stream
        self._release = BodyRelease(self, call)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        release = self._release
        release.reading = True
        try:
            async for chunk in self._stream:
                yield chunk
        except Exception:
            release.ok = False
            raise
        except BaseException:  # CancelledError, or GeneratorExit: the reader stopped early
            release.interrupted()
            raise
        finally:
            release.reading = False

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release.closed()


class BalancedTransport(Balancing, httpx.BaseTransport):
    """An httpx transport sending each request to the endpoint ``balancer`` selects.

    Options (keyword-only, validated at once):

    - ``transport``: the inner transport that does the I/O (default ``httpx.HTTPTransport()``;
      pass one to set pool limits, HTTP/2, TLS options).
    - ``retry``: a :class:`balancekit.retry.Retry` (default ``Retry()``: 3 attempts on distinct
      endpoints, jittered backoff, a retry budget); ``None`` for a single attempt. Its
      ``retry_result`` (a predicate on the ``httpx.Response``) retries rejected responses of
      idempotent requests.
    - ``ok_status``: a function of the status code deciding success (default: status < 500).
    - ``host_header``: ``"logical"`` (default) or ``"endpoint"`` (see the module docs).
    - ``context``: what ``select`` receives, a function of the ``httpx.Request`` (default
      :meth:`balancekit.Request.from_httpx`, which the key extractors in ``balancekit.keys``
      read: ``bk.IPHash(..., key=bk.keys.header("x-user"))``).
    - ``name``: the service's name in errors (default: the request URL's logical host). When
      every endpoint a request tried failed to connect, the transport raises
      :class:`NoEndpointError` (an ``httpx.ConnectError``) naming the service and how many
      endpoints were tried, chained from the last connection error.
    - ``eject``: an endpoint refusing connections is ejected at once through the balancer's
      health tracker; if the balancer has none, one is attached whose ejections last ``eject``
      seconds (default 1), ``eject * n`` for the n-th in a row, at most ``max_eject`` (default
      30); with its own tracker, that tracker's times apply. ``None``: refused connections only
      count as failed requests.

    Per request: one ``select`` and one ``release`` per attempt, plus the inner transport's work.
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions[httpx.Request]],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise InvalidOption(
                f"transport must be an httpx.BaseTransport, not {describe(transport)}"
            )
        check_keywords(self, dict(options))
        self._options = Options(balancer, Request.from_httpx, **options)
        self._transport = httpx.HTTPTransport() if transport is None else transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        options = self._options
        call = _started_call(options, request)

        def send(lease: Lease) -> httpx.Response:
            sent = rewrite(request, lease.endpoint, options.host_header)
            response = self._transport.handle_request(sent)
            response.request = request  # the logical request, as the client will set it
            return response

        response = send_with_retries(
            call, send, httpx.TransportError, classify, _close, _exhausted(options, request)
        )
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _ReleasingStream(response.stream, call)
        return response

    def close(self) -> None:
        self._transport.close()


class AsyncBalancedTransport(Balancing, httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`BalancedTransport`, with the same options.

    ``transport`` defaults to ``httpx.AsyncHTTPTransport()``. Backoff waits use
    :func:`asyncio.sleep`; a cancelled request gives its lease back uncounted (``cancel``).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions[httpx.Request]],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise InvalidOption(
                f"transport must be an httpx.AsyncBaseTransport, not {describe(transport)}"
            )
        check_keywords(self, dict(options))
        self._options = Options(balancer, Request.from_httpx, **options)
        self._transport = httpx.AsyncHTTPTransport() if transport is None else transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        options = self._options
        call = _started_call(options, request)

        async def send(lease: Lease) -> httpx.Response:
            sent = rewrite(request, lease.endpoint, options.host_header)
            response = await self._transport.handle_async_request(sent)
            response.request = request
            return response

        response = await send_with_retries_async(
            call, send, httpx.TransportError, classify, _aclose, _exhausted(options, request)
        )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncReleasingStream(response.stream, call)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()
