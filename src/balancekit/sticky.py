"""Sticky sessions with signed tokens: a client returns to its endpoint while that endpoint is up.

A token names an endpoint address and the time it was issued, and carries an HMAC-SHA256 tag
(RFC 2104, FIPS 198-1) over both, truncated to 128 bits (RFC 2104 §5 allows truncation to at
least half the hash and 80 bits). Its text is URL-safe base64 without padding (RFC 4648 §5), fit
for a cookie or a header. Layout of the decoded bytes::

    version (1 byte, = 1) | issued_at (8 bytes, big-endian seconds) | address (UTF-8) | tag (16)

Verification recomputes the tag and compares it in constant time (``hmac.compare_digest``); any
change to any byte is detected. The tag covers a fixed context label as well, so a token from
another HMAC use of the same key does not verify. Tokens are signed, not encrypted: the
address is readable.

>>> import balancekit as bk
>>> sticky = bk.sticky.StickySessions(b"0123456789abcdef0123456789abcdef", clock=lambda: 1000.0)
>>> token = sticky.issue("10.0.0.1:8080")
>>> sticky.verify(token)
'10.0.0.1:8080'
>>> sticky.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import math
import struct
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ._bounded import bounded
from ._clock import check_clock
from ._errors import BalancekitError, InvalidOption, NoEndpointAvailable
from ._options import describe, seconds

__all__ = ["InvalidToken", "StickyChoice", "StickySessions", "TokenInfo"]

_VERSION = 1
_HEADER = struct.Struct(">BQ")
_LAST_SECOND = 2**64 - 1  # the header's issue time: an unsigned 64-bit count of seconds
_TAG_SIZE = 16
_CONTEXT = b"balancekit.sticky.v1\x00"
_MIN_KEY = 16
#: The most ``previous_keys`` a :class:`StickySessions` takes: a rotation needs one or two, and
#: every verification tries every key.
MAX_PREVIOUS_KEYS = 64


class InvalidToken(BalancekitError, ValueError):
    """A sticky token that is malformed, forged or tampered with, expired, or from the future."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a verified token says: the endpoint address and the issue time (clock seconds)."""

    address: str
    issued_at: int


class _HasAddress(Protocol):
    @property
    def address(self) -> str: ...


class _HasAvailable(Protocol):
    @property
    def available(self) -> bool: ...


L = TypeVar("L", bound=_HasAddress)
L_co = TypeVar("L_co", bound=_HasAddress, covariant=True)


class StickyBalancer(Protocol[L_co]):
    """What :meth:`StickySessions.select` needs of a balancer (every balancekit balancer)."""

    @property
    def endpoints(self) -> Sequence[_HasAddress]: ...

    def stats(self) -> Mapping[str, _HasAvailable]: ...

    def select(self, context: Any = None, *, avoid: Collection[str] = ()) -> L_co: ...


@dataclass(frozen=True, slots=True)
class StickyChoice(Generic[L]):
    """The outcome of :meth:`StickySessions.select`: the lease to use and the token to send back.

    ``reissued`` is ``True`` when the token is new (no token, invalid or expired, or its endpoint
    gone, down or avoided); send it to the client then (e.g. ``Set-Cookie``).
    """

    lease: L
    token: str
    reissued: bool


def _b64decode(text: str) -> bytes:
    if not isinstance(text, str) or not text.isascii():
        raise InvalidToken("a sticky token must be an ASCII str")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("a sticky token must be URL-safe base64") from None
    # Only the canonical spelling is accepted: otherwise the unused low bits of the last
    # character, or '+' and '/', could be changed without changing the decoded bytes.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != text.encode("ascii"):
        raise InvalidToken("a sticky token must be canonical unpadded URL-safe base64")
    return raw


class StickySessions:
    """Issues and verifies sticky tokens and re-balances clients whose endpoint is unavailable.

    ``key``: the secret (bytes, at least 16; 32 random bytes recommended, ``secrets.token_bytes``).
    ``previous_keys``: keys still accepted for verification during a rotation (tokens are always
    issued with ``key``; at most ``MAX_PREVIOUS_KEYS``, 64). ``max_age``: seconds a token stays
    valid (``None`` = until its endpoint leaves). ``clock``: seconds, wall-clock by default
    because tokens outlive processes; inject a fake one in tests. ``leeway``: tolerated clock
    skew, in seconds, for tokens issued "in the future" by another machine. Issue
    and verify are O(length of the address).
    """

    __slots__ = ("_clock", "_keys", "_leeway", "_max_age")

    def __init__(
        self,
        key: bytes,
        *,
        previous_keys: Iterable[bytes] = (),
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
        leeway: float = 60.0,
    ) -> None:
        if isinstance(previous_keys, bytes | str) or not isinstance(previous_keys, Iterable):
            raise InvalidOption(
                f"previous_keys must be a list of bytes keys, got {describe(previous_keys)}"
            )
        checked: list[bytes] = []
        # Checked as read and bounded: previous_keys=range(-2**32, 0) or an endless generator
        # is refused at its first item or its 65th, never materialised.
        hint = ": a key rotation needs one or two"
        rest = bounded("previous_keys", previous_keys, MAX_PREVIOUS_KEYS, hint)
        for item in itertools.chain((key,), rest):
            if not isinstance(item, bytes) or len(item) < _MIN_KEY:
                raise InvalidOption(
                    f"sticky keys must be bytes of at least {_MIN_KEY} bytes (use "
                    f"secrets.token_bytes(32)), got {type(item).__name__} of length "
                    f"{len(item) if isinstance(item, bytes) else '?'}"
                )
            checked.append(item)
        keys = tuple(checked)
        max_age = None if max_age is None else seconds("max_age", max_age)
        leeway = seconds("leeway", leeway, zero=True)
        self._keys = keys
        self._max_age = max_age
        self._clock = check_clock(clock)  # readings checked: balancekit._clock
        self._leeway = leeway

    @staticmethod
    def _tag(key: bytes, message: bytes) -> bytes:
        return hmac.new(key, _CONTEXT + message, hashlib.sha256).digest()[:_TAG_SIZE]

    def issue(self, address: str) -> str:
        """A new token naming ``address``, issued now."""
        if not isinstance(address, str) or not address:
            raise InvalidOption(f"address must be a non-empty str, got {describe(address)}")
        try:
            encoded = address.encode()
        except UnicodeEncodeError:
            raise InvalidOption(
                f"address must be encodable as UTF-8 (no lone surrogates), got {describe(address)}"
            ) from None
        issued = max(0, math.floor(self._clock()))
        if issued > _LAST_SECOND:  # a finite reading past 2**64 s: struct.error (review8)
            raise InvalidOption(
                f"clock= returned {describe(issued)} seconds: a sticky token holds an issue"
                f" time of at most {_LAST_SECOND}"
            )
        message = _HEADER.pack(_VERSION, issued) + encoded
        raw = message + self._tag(self._keys[0], message)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, token: str) -> TokenInfo:
        """Verify ``token`` and return what it says; raise :class:`InvalidToken` saying why."""
        raw = _b64decode(token)
        if len(raw) <= _HEADER.size + _TAG_SIZE:
            raise InvalidToken("sticky token too short")
        message, tag = raw[:-_TAG_SIZE], raw[-_TAG_SIZE:]
        # Check every key (no early exit) so the time taken does not reveal which one matched.
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(self._tag(key, message), tag)
        if not valid:
            raise InvalidToken("sticky token signature does not verify (forged or tampered)")
        version, issued = _HEADER.unpack_from(message)
        if version != _VERSION:
            raise InvalidToken(f"sticky token version {version} is not supported")
        try:
            address = message[_HEADER.size :].decode()
        except UnicodeDecodeError:
            raise InvalidToken("sticky token address is not UTF-8") from None
        now = self._clock()
        if issued > now + self._leeway:
            raise InvalidToken("sticky token issued in the future (check the clocks)")
        if self._max_age is not None and now - issued >= self._max_age:
            raise InvalidToken(f"sticky token expired (older than max_age={self._max_age}s)")
        return TokenInfo(address, issued)

    def verify(self, token: str) -> str | None:
        """The address a valid token names, or ``None`` if it is invalid for any reason."""
        try:
            return self.decode(token).address
        except InvalidToken:
            return None

    def select(
        self,
        balancer: StickyBalancer[L],
        context: Any = None,
        *,
        token: str | None = None,
        avoid: Collection[str] = (),
    ) -> StickyChoice[L]:
        """Select for a client holding ``token`` (or none): its endpoint if still usable.

        The token's endpoint is reused while it is a member of ``balancer``, up, not ejected or
        held down by a health check, and not in ``avoid``. Otherwise the balancer selects
        normally and a new token is issued. A balancekit balancer takes the pinned endpoint with
        ``select_override`` (O(1), counted like any pick, as Envoy's override host); another
        balancer is asked to ``select`` with every other member avoided (O(members)).
        """
        address = self.verify(token) if token else None
        if address is not None and address not in avoid:
            assert token is not None
            override = getattr(balancer, "select_override", None)
            if override is not None:
                pinned: L | None = override(address)
                if pinned is not None:
                    return StickyChoice(pinned, token, reissued=False)
            else:
                pinned = self._select_pinned(balancer, context, address)
                if pinned is not None:
                    if pinned.address == address:
                        return StickyChoice(pinned, token, reissued=False)
                    return StickyChoice(pinned, self.issue(pinned.address), reissued=True)
        lease = balancer.select(context, avoid=avoid)
        return StickyChoice(lease, self.issue(lease.address), reissued=True)

    @staticmethod
    def _select_pinned(balancer: StickyBalancer[L], context: Any, address: str) -> L | None:
        """``address`` via ``select`` with every other member avoided, if it is usable."""
        members = {endpoint.address for endpoint in balancer.endpoints}
        state = balancer.stats().get(address) if address in members else None
        if state is None or not state.available:
            return None
        members.discard(address)
        try:
            return balancer.select(context, avoid=members)
        except NoEndpointAvailable:
            return None  # not eligible after all (e.g. held out by a health check): rebalance
