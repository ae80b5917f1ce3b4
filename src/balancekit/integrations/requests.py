"""A requests transport adapter that sends each request to the endpoint a balancer selects.

Use::

    import requests, balancekit as bk
    lb = bk.RoundRobin(["127.0.0.1:8001", "127.0.0.1:8002"])
    session = requests.Session()
    session.mount("http://backend/", bk.requests.BalancedAdapter(lb))
    session.get("http://backend/users/7")   # sent to 127.0.0.1:8001, then :8002, ...

Mounted on a URL prefix naming a logical service, the adapter replaces the host and port of the
URL with the selected endpoint's and sends it through an inner ``requests.adapters.HTTPAdapter``.
The ``Host`` header keeps the logical name (``host_header="endpoint"`` lets urllib3 send the
endpoint's ``host:port``); the response's ``url`` and ``request`` are the logical ones, so
redirects, cookies and ``raise_for_status`` messages speak of the service, not the endpoint.

Outcomes, retries and ejection behave as in :mod:`balancekit.integrations.httpx`: the lease is
released when the body has been read to the end or the response is closed (``stream=True`` keeps
it in flight until then), and given back uncounted when the caller gives up before the answer;
connection failures are retried on another endpoint for any method, broken connections and
responses the policy's ``retry_result`` rejects only for idempotent methods with a
``bytes``/``str`` body. Over ``https`` the
default inner adapter (:class:`LogicalNameAdapter`) sends the logical name as the TLS server name
and checks the certificate against it.
Thread-safe as far as the balancer and requests' HTTPAdapter are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Unpack
from urllib.parse import urlsplit, urlunsplit

from .._errors import InvalidOption, NoEndpointAvailable, missing_extra

try:
    import requests
    import requests.adapters
    import urllib3.exceptions
except ModuleNotFoundError as error:  # say which extra installs it, not only its module name
    if (error.name or "").partition(".")[0] not in ("requests", "urllib3"):
        raise
    raise missing_extra("balancekit.requests", "requests", "requests", "requests") from error

from .._core import Balancer
from .._endpoint import Endpoint
from .._lease import Lease
from .._options import describe
from ..request import Request
from ._call import CONNECT, FINAL, SENT, BodyRelease, Call, send_with_retries
from ._common import IDEMPOTENT_METHODS, Balancing, ClientOptions, Options, check_keywords

__all__ = ["BalancedAdapter", "LogicalNameAdapter", "NoEndpointError"]


class NoEndpointError(requests.ConnectionError, NoEndpointAvailable):
    """No endpoint could take the request: a requests ConnectionError and a NoEndpointAvailable."""


def classify(error: requests.RequestException) -> str:
    """Which kind of failure a requests error is: connect (nothing sent), sent, or final."""
    if isinstance(error, requests.ConnectTimeout):
        return CONNECT
    if isinstance(error, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return FINAL
    if isinstance(error, requests.ConnectionError):
        cause = error.args[0] if error.args else None
        if isinstance(cause, urllib3.exceptions.MaxRetryError):
            cause = cause.reason
        if isinstance(
            cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        ):
            return CONNECT
        return SENT
    return FINAL


class LogicalNameAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` that checks TLS against the ``Host`` header, not the URL's host.

    :class:`BalancedAdapter` sends ``https://10.0.0.1:8443/...`` with ``Host: users``; this
    adapter (its default inner adapter) makes urllib3 send ``users`` as the TLS server name
    (SNI) and verify the certificate against it (urllib3's ``server_hostname`` and
    ``assert_hostname`` pool options), so certificates issued for the service name work with
    endpoints listed by IP. Subclass it, not ``HTTPAdapter``, for a custom inner adapter.
    Needs requests 2.32.2 or later (``build_connection_pool_key_attributes``).
    """

    def __init__(
        self,
        pool_connections: int = requests.adapters.DEFAULT_POOLSIZE,
        pool_maxsize: int = requests.adapters.DEFAULT_POOLSIZE,
        max_retries: Any = requests.adapters.DEFAULT_RETRIES,
        pool_block: bool = requests.adapters.DEFAULT_POOLBLOCK,
    ) -> None:  # HTTPAdapter's options, so a misspelt one names this class
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host = request.headers.get("Host")
        if host and host_params.get("scheme") == "https":
            name = str(host).rpartition("@")[2]
            if name.startswith("["):
                name = name[1 : name.find("]")]
            elif name.count(":") == 1:
                name = name.partition(":")[0]
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs


def _host(request: requests.PreparedRequest) -> str:
    """The logical host of ``request``'s URL (the service name errors use by default)."""
    return urlsplit(str(request.url)).hostname or ""


def _with_endpoint(url: str, endpoint: Endpoint) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=endpoint.address))


class _ReleasingRaw:
    """Wraps urllib3's response: releases the lease when the body ends or is closed."""

    def __init__(self, raw: Any, call: Call) -> None:
        self._raw = raw
        self._release = BodyRelease(self, call)

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        release = self._release
        release.reading = True
        try:
            yield from self._raw.stream(amt, decode_content=decode_content)
        except Exception:
            release.reading, release.ok = False, False
            release.closed()
            raise
        except BaseException:  # KeyboardInterrupt, or GeneratorExit: the reader stopped early
            release.interrupted()
            raise
        release.reading = False
        release.closed()

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        try:
            data: bytes = self._raw.read(amt, *args, **kwargs)
        except Exception:
            self._release.ok = False
            self._release.closed()
            raise
        except BaseException:
            self._release.interrupted()
            raise
        if amt is None or not data:
            self._release.closed()
        return data

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._release.closed()

    def release_conn(self) -> None:
        try:
            self._raw.release_conn()
        finally:
            self._release.closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class BalancedAdapter(Balancing, requests.adapters.BaseAdapter):
    """A requests adapter sending each request to the endpoint ``balancer`` selects.

    Options (keyword-only, validated at once), as for
    :class:`~balancekit.integrations.httpx.BalancedTransport`: ``adapter`` (the inner
    ``HTTPAdapter`` doing the I/O, default a new :class:`LogicalNameAdapter`), ``retry``,
    ``ok_status``, ``host_header``, ``context`` (a function of the ``PreparedRequest``; default
    :meth:`balancekit.Request.from_requests`), ``eject``, ``max_eject``, ``name`` (the service
    in errors; default the URL's logical host: when every endpoint tried failed to connect,
    :class:`NoEndpointError` names it and how many were tried). The policy's
    ``retry_result`` receives the ``requests.Response`` (its ``url`` and ``request`` the logical
    ones).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        adapter: requests.adapters.HTTPAdapter | None = None,
        **options: Unpack[ClientOptions[requests.PreparedRequest]],
    ) -> None:
        check_keywords(self, dict(options))
        self._options = Options(balancer, Request.from_requests, **options)
        if adapter is not None and not isinstance(adapter, requests.adapters.HTTPAdapter):
            raise InvalidOption(f"adapter must be a requests HTTPAdapter, not {describe(adapter)}")
        super().__init__()
        self._adapter = LogicalNameAdapter() if adapter is None else adapter

    def _prepare(self, request: requests.PreparedRequest, endpoint: Endpoint) -> Any:
        sent = request.copy()
        sent.url = _with_endpoint(str(request.url), endpoint)
        if self._options.host_header == "logical" and "Host" not in sent.headers:
            sent.headers["Host"] = urlsplit(str(request.url)).netloc.rpartition("@")[2]
        return sent

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` to a selected endpoint, retrying as the module docs describe."""
        body = request.body
        replayable = str(request.method).upper() in IDEMPOTENT_METHODS and (
            body is None or isinstance(body, bytes | str)
        )
        call = self._options.call(request, replayable=replayable)
        try:
            call.start()
        except NoEndpointAvailable as error:
            message = self._options.no_endpoint(_host(request), error)
            raise NoEndpointError(message, request=request) from error

        def exhausted(last: Exception, tried: int) -> Exception:
            message = self._options.all_refused(_host(request), last, tried)
            return NoEndpointError(message, request=request)

        def send_to(lease: Lease) -> requests.Response:
            response = self._adapter.send(
                self._prepare(request, lease.endpoint),
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=dict(proxies) if proxies is not None else None,
            )
            response.url = str(request.url)  # the logical ones, for retry_result and the caller
            response.request = request
            return response

        response = send_with_retries(
            call, send_to, requests.RequestException, classify, requests.Response.close, exhausted
        )
        response.raw = _ReleasingRaw(response.raw, call)
        return response

    def close(self) -> None:
        self._adapter.close()
