"""The options every HTTP client integration takes, free of any HTTP library, validated once.

- :data:`IDEMPOTENT_METHODS` and :func:`default_ok_status`: what is retried and what counts as
  a success.
- :class:`ClientOptions`: the keyword options the transports and the adapter share.
- :class:`Options`: those options validated, with their defaults in one place; it starts each
  request's :class:`~balancekit.integrations._call.Call`.
- :class:`Balancing`: the ``balancer`` and ``health`` properties they expose."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Generic, Literal, TypedDict, TypeVar

from .._core import Balancer
from .._errors import InvalidOption, NoEndpointAvailable
from .._options import describe
from ..health.tracker import HealthTracker
from ..retry import Retry
from ._call import Call
from ._eject import DEFAULT_EJECT, DEFAULT_MAX_EJECT, check_eject, connect_health

__all__ = [
    "IDEMPOTENT_METHODS",
    "Balancing",
    "ClientOptions",
    "HostHeader",
    "OkStatus",
    "Options",
    "check_keywords",
    "check_options",
    "default_ok_status",
]

#: Methods RFC 9110 §9.2.2 defines as idempotent: repeating them has the effect of sending once,
#: so a request that may have reached a server (a broken connection, a response ``retry_result``
#: rejects) can be sent again to another one. POST and PATCH are not; CONNECT is not balanced.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Decides from a status code whether the request counts as a success for the balancer.
OkStatus = Callable[[int], bool]

#: ``"logical"`` keeps the Host header of the logical URL; ``"endpoint"`` sends ``host:port``.
HostHeader = Literal["logical", "endpoint"]

#: The longest ``name=`` accepted (a DNS name's limit, RFC 1035).
MAX_NAME = 255

#: How much of the last error's text an all-endpoints-down message quotes.
MAX_ERROR_TEXT = 500

#: The client library's request type (``httpx.Request``, ``requests.PreparedRequest``).
RequestT = TypeVar("RequestT")


def default_ok_status(status: int) -> bool:
    """A response is a success unless it is a server error (status 500 or above)."""
    return status < 500


def check_options(
    *,
    retry: Retry | None,
    ok_status: object,
    host_header: object,
    context: object,
    eject: object,
    max_eject: object,
) -> None:
    """Validate the options the transports and the adapter share (raises InvalidOption)."""
    if retry is not None and not isinstance(retry, Retry):
        raise InvalidOption(f"retry must be a balancekit Retry or None, not {describe(retry)}")
    if not callable(ok_status):
        raise InvalidOption(
            f"ok_status must be a function of the status code, not {describe(ok_status)}"
        )
    if host_header not in ("logical", "endpoint"):
        raise InvalidOption(
            f"host_header must be 'logical' or 'endpoint', not {describe(host_header)}"
        )
    if context is not None and not callable(context):
        raise InvalidOption(
            f"context must be a function of the request or None, not {describe(context)}"
        )
    check_eject(eject, max_eject)


class ClientOptions(TypedDict, Generic[RequestT], total=False):
    """The keyword options of every transport and adapter; :class:`Options` has the defaults."""

    retry: Retry | None
    ok_status: OkStatus
    host_header: HostHeader
    context: Callable[[RequestT], Any] | None
    eject: float | None
    max_eject: float
    name: str | None


def check_keywords(owner: object, options: dict[str, object]) -> None:
    """Refuse a keyword ``**options`` does not know, as Python refuses one for a fixed
    signature, naming the public class (``BalancedTransport``), not :class:`Options`."""
    valid = ClientOptions.__annotations__
    for key in options:
        if key not in valid and key != "clock":  # clock=: Options says why it is gone
            raise TypeError(
                f"{type(owner).__name__}.__init__() got an unexpected keyword argument {key!r};"
                f" its options are {', '.join(sorted(valid))}"
            )


class _Default(enum.Enum):
    RETRY = "Retry(): 3 attempts, a retry budget"
    EJECT = f"{DEFAULT_EJECT} s, or the balancer's own health"
    MAX_EJECT = f"{DEFAULT_MAX_EJECT} s, or the balancer's own health"


class Options(Generic[RequestT]):
    """The shared options, validated; ``default_context`` is the library's ``Request.from_*``.

    Defaults: ``retry=Retry()``, ``ok_status=default_ok_status``, ``host_header="logical"``,
    ``context=None`` (``default_context``), ``eject=1.0``, ``max_eject=30.0`` (used when the
    balancer has no health tracker: see :mod:`balancekit.integrations._eject`), ``name=None``
    (errors then name the service by the request URL's logical host).
    """

    def __init__(
        self,
        balancer: Balancer,
        default_context: Callable[[RequestT], Any],
        *,
        retry: Retry | Literal[_Default.RETRY] | None = _Default.RETRY,
        ok_status: OkStatus = default_ok_status,
        host_header: HostHeader = "logical",
        context: Callable[[RequestT], Any] | None = None,
        eject: float | Literal[_Default.EJECT] | None = _Default.EJECT,
        max_eject: float | Literal[_Default.MAX_EJECT] = _Default.MAX_EJECT,
        name: str | None = None,
        clock: object = None,
    ) -> None:
        if clock is not None:  # the ejector's clock, before ejections moved to the tracker
            raise InvalidOption(
                "clock= is no longer an option of the integrations: ejections run on the"
                " balancer's clock (pass clock= to the balancer)"
            )
        if retry is _Default.RETRY:
            retry = Retry()
        explicit = eject is not _Default.EJECT or max_eject is not _Default.MAX_EJECT
        eject = DEFAULT_EJECT if eject is _Default.EJECT else eject
        max_eject = DEFAULT_MAX_EJECT if max_eject is _Default.MAX_EJECT else max_eject
        check_options(
            retry=retry,
            ok_status=ok_status,
            host_header=host_header,
            context=context,
            eject=eject,
            max_eject=max_eject,
        )
        if not isinstance(balancer, Balancer):
            raise InvalidOption(f"expected a balancekit balancer, not {describe(balancer)}")
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME):
            raise InvalidOption(
                f"name must be the service's name (a str of 1 to {MAX_NAME} characters) or None,"
                f" not {describe(name)}"
            )
        self.name = name
        self.balancer = balancer
        self.retry = Retry(attempts=1, budget=None) if retry is None else retry
        self.ok_status = ok_status
        self.host_header = host_header
        self.context = default_context if context is None else context
        seconds, most = check_eject(eject, max_eject)
        self.health = connect_health(balancer, seconds, most, explicit=explicit)

    def service(self, logical_host: str) -> str:
        """How errors name the service: ``name=``, or else the request's logical host."""
        return describe(self.name if self.name is not None else logical_host)

    def no_endpoint(self, logical_host: str, error: NoEndpointAvailable) -> str:
        """The message of the error raised when the balancer has no endpoint to offer."""
        members = len(self.balancer.endpoints)
        return f"service {self.service(logical_host)} ({members} endpoints): {error}"

    def all_refused(self, logical_host: str, error: Exception, tried: int) -> str:
        """The message of the error raised when every endpoint a request tried was down."""
        members = len(self.balancer.endpoints)
        last = str(error)
        if len(last) > MAX_ERROR_TEXT:
            last = last[:MAX_ERROR_TEXT] + "..."
        return (
            f"service {self.service(logical_host)}: all {tried} endpoints tried (of {members})"
            f" failed to connect; the last: {last}"
        )

    def call(self, request: RequestT, *, replayable: bool) -> Call:
        """A new call for ``request``; ``replayable``: may it be sent again once it may have
        reached a server (an idempotent method with a body that can be sent again)."""
        return Call(
            self.balancer,
            self.retry,
            self.context(request),
            self.health,
            self.ok_status,
            replayable=replayable,
        )


class Balancing:
    """What the transports and the adapter expose of their :class:`Options` (read-only)."""

    _options: Options[Any]

    @property
    def balancer(self) -> Balancer:
        """The balancer choosing the endpoints."""
        return self._options.balancer

    @property
    def health(self) -> HealthTracker | None:
        """The balancer's health tracker that refused connections eject through (None with
        ``eject=None`` or a balancer that is no ``BalancerBase``); ``health.ejected()`` lists
        who is out."""
        return self._options.health
