"""What every hashing strategy shares: turning the selection context into key bytes, and the hash.

The hash is MurmurHash3_x64_128 (Appleby) with seed 0, via ``mmh3``; its low 64 bits (``h1``) are
the 64-bit hash. Never Python's ``hash()``, which is salted per process for strings.

Text policy (one place, :func:`utf8`): every ``str`` that reaches a hash (a key, an address) is
hashed as its UTF-8 bytes, and a lone surrogate (``"\\ud800"``, which JSON and ``surrogateescape``
can produce) is encoded with Python's ``surrogatepass`` handler (as CESU-style 3 bytes) instead
of reaching ``mmh3``, ``xxhash`` or ``md5`` unencodable: mmh3 dereferences the failed conversion
and kills the process. Valid text hashes exactly as before. Hot paths pass an ASCII ``str``
straight to mmh3 (``str.isascii()`` is O(1)) and send everything else through :func:`key_bytes`.

MD5 (Ketama's hash, libketama's ``ketama_hashi``) is :data:`md5`: CPython's built-in ``_md5``
when present, else ``hashlib.md5``. The same digest (RFC 1321) either way; ``hashlib.md5`` goes
through OpenSSL's EVP layer, whose per-call context set-up costs about 2x the built-in's whole
digest of a short key (issue 15: 700 vs 340 ns on 3.11, measured with timeit).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import mmh3
from mypy_extensions import mypyc_attr

from ..._core import BalancerBase, Clock
from ..._endpoint import Endpoint, EndpointLike
from ..._errors import InvalidOption
from ..._options import describe

__all__ = ["KeyFunction", "KeyedBalancer", "hash64", "key_bytes", "md5", "utf8"]

#: Turns a selection context (e.g. a request) into the key to hash, or None if it has none.
KeyFunction = Callable[[Any], "str | bytes | None"]

_MASK64: Final = (1 << 64) - 1
_murmur128: Final = mmh3.hash128

#: MD5 of bytes (``md5(data).digest()``): CPython's built-in ``_md5`` (HACL* since 3.12) when
#: present, with no OpenSSL context per call; ``hashlib.md5`` otherwise. Same digests.
md5 = hashlib.md5
try:
    import _md5  # type: ignore[import-not-found]  # no stub: a private CPython module
except ImportError:  # pragma: no cover - a CPython built without it, or another interpreter
    pass
else:
    md5 = _md5.md5


def utf8(text: str) -> bytes:
    r"""``text`` as UTF-8, a lone surrogate as its ``surrogatepass`` bytes (never an error).

    >>> utf8("é"), utf8("\ud800")
    (b'\xc3\xa9', b'\xed\xa0\x80')
    """
    return text.encode("utf-8", "surrogatepass")


def hash64(data: bytes | str) -> int:
    """The low 64 bits (``h1``) of MurmurHash3_x64_128 of ``data`` (:func:`utf8` for str), seed 0.

    >>> hash64(b"abc")
    13012657714217449575
    """
    if type(data) is not bytes:
        data = key_bytes(data)
    return _murmur128(data) & _MASK64


def key_bytes(key: object, extracted: bool = False) -> bytes:
    """Validate a key: ``bytes`` as they are, ``str`` as :func:`utf8`; anything else is refused.

    ``extracted`` says the key came from the balancer's key function (not the context itself),
    which only changes what the error says.
    """
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if key is None and extracted:
        raise InvalidOption(
            "the key function found no key in this context (it returned None): compose it with"
            " a fallback, e.g. balancekit.keys.cookie('session').or_else(keys.client_ip())"
        )
    if key is None:
        raise InvalidOption(
            "this hashing balancer needs a key: call select(key) with a str or bytes, or build it"
            " with key=<function of the context> (e.g. balancekit.keys.client_ip())"
        )
    source = "the key function returned" if extracted else "got"
    raise InvalidOption(
        f"a hash key must be str or bytes; {source} {type(key).__name__} {describe(key)}"
    )


#: One pick in this many, finding index work pending (a ring's merge, a Maglev table), does a
#: chunk of it.
PICK_EVERY = 64


@mypyc_attr(allow_interpreted_subclasses=True)
class KeyedBalancer(BalancerBase):
    """A balancer whose ``select(context)`` hashes a key taken from the context.

    With ``key=None`` the context itself is the key (str or bytes); with a key function the
    context is passed to it (e.g. ``balancekit.keys.cookie("session")`` on a request).
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointLike] = (),
        *,
        key: KeyFunction | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if key is not None and not callable(key):
            raise InvalidOption(
                f"key must be a function of the selection context, not {describe(key)}"
            )
        super().__init__(endpoints, clock=clock)
        # Any -> Any: compiled, a call through KeyFunction casts its result to str | bytes | None
        # on the way out (TypeError), where a key function's junk is an InvalidOption below.
        self._key: Callable[[Any], Any] | None = key

    def lookup(self, context: Any = None) -> Endpoint:
        """The endpoint ``select(context)`` would choose, without a lease or any counting.

        For pure key -> server mapping (cache sharding, partition owners) where no request is
        tracked; what ``uhashring``'s ``get_node`` does. Raises like ``select``.
        """
        return self._pick(context, ()).endpoint

    def settle(self) -> None:
        """Finish now any index work left pending by membership changes (a ring's merge of its
        overlay, Maglev's new table); later changes and picks otherwise finish it a chunk at a
        time, so no single call pays for all of it. What ``select`` returns does not depend on
        it for the rings; a Maglev serves its previous table until the new one is complete."""
        with self._lock:
            self._settle()

    def _settle(self) -> None:
        """Finish pending index work (under the lock); nothing for most strategies."""

    _ticks = 0  # picks that found index work pending

    def _tick(self) -> None:
        """A pick found index work pending: one pick in PICK_EVERY does a chunk of it
        (:meth:`_step`) if the lock is free (it never waits for it), so the work completes
        without further changes and no pick pays more than a chunk."""
        self._ticks += 1
        if self._ticks % PICK_EVERY or not self._lock.acquire(blocking=False):
            return
        try:
            self._step()
        finally:
            self._lock.release()

    def _step(self) -> None:
        """A chunk of pending index work (under the lock)."""

    def _key_of(self, context: Any) -> bytes | str:
        """The key to hash: the context or ``key(context)``; an ASCII str as it is (mmh3 encodes
        it), other text as :func:`utf8` bytes; bytes as they are."""
        key = context if self._key is None else self._key(context)
        if type(key) is bytes or (type(key) is str and key.isascii()):  # fast path: no copy
            return key
        return key_bytes(key, self._key is not None)

    def _hash_of(self, context: Any) -> int:
        """``hash64`` of the key taken from ``context`` (inlined: this is every pick's cost)."""
        key = context if self._key is None else self._key(context)
        if type(key) is not bytes and (type(key) is not str or not key.isascii()):
            key = key_bytes(key, self._key is not None)  # the text policy: see the module
        return _murmur128(key) & _MASK64
