"""Guards: checks that run before selection and return a :class:`Verdict`.

A guard is anything with ``check(request) -> Verdict`` (the :class:`Guard` protocol). Compose
them with :class:`Chain`; the first rejection wins. The building blocks:

* :class:`RateLimit` (per-key rate, on the ``limits`` library) and :class:`ConcurrencyLimit`
  (per-key requests in progress) in :mod:`balancekit.guard.rate`; :class:`BanList` (temporary
  bans after repeated strikes, bounded by ``max_keys``) in :mod:`balancekit.guard.bans`;
* :class:`AnomalyDetector`, which learns each key's normal rate, in
  :mod:`balancekit.guard.anomaly`;
* :class:`SignatureScreen` and :data:`DEFAULT_SIGNATURES` in :mod:`balancekit.guard.signatures`;
* :class:`RedisStore` (:mod:`balancekit.guard.store`): pass it as ``store=`` to share rate
  windows, bans and anomaly counters among processes through Redis, with a fail-open or
  fail-closed policy when Redis is unreachable (needs ``pip install 'balancekit[redis]'``).

``RateLimit`` needs the optional ``limits`` package (``pip install 'balancekit[guard]'``); it is
imported only when a ``RateLimit`` is built.
"""

from ._verdict import ALLOW, Chain, Guard, ReleasingGuard, Verdict
from .anomaly import AnomalyDetector
from .bans import BanList
from .rate import ConcurrencyLimit, RateLimit
from .signatures import DEFAULT_SIGNATURES, Signature, SignatureScreen, normalise
from .store import RedisStore

__all__ = [
    "ALLOW",
    "DEFAULT_SIGNATURES",
    "AnomalyDetector",
    "BanList",
    "Chain",
    "ConcurrencyLimit",
    "Guard",
    "RateLimit",
    "RedisStore",
    "ReleasingGuard",
    "Signature",
    "SignatureScreen",
    "Verdict",
    "normalise",
]
