# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The lease contract's floor (issue 15) as Cython compiles it best: never shipped.

The same steps as ``_minimal_lease_rr.NativeLeaseRoundRobin`` (the mypyc floor): select reads
the injected clock, takes the next turn, the endpoint at turn % n, the next token (an int:
last + 2), stores ``outstanding[token] = endpoint`` and returns a lease; release removes
``outstanding[lease.token]``, ``KeyError`` if it is not outstanding. What Cython offers for it:

- ``cdef class`` with C-typed fields (the turn, the last token, n as C integers; the tuple and
  the dict typed, so ``self._endpoints[i]`` is ``PyTuple_GET_ITEM`` and the store and the
  ``del`` are ``PyDict_SetItem`` / ``PyDict_DelItem`` with no method lookup);
- ``@cython.freelist(8)`` on the lease (released leases' memory reused, as CPython's floats) and
  ``@cython.no_gc`` (not tracked by the collector: acyclic, as the mypyc floor's lease);
- ``Lease.__new__(Lease)`` calls the type's ``tp_new`` directly (no ``__init__`` call);
- ``@cython.final``: attribute access and method calls inside the module bind statically;
- ``release(self, Lease lease, ...)``: the lease's type is checked on entry and its ``token``
  read as a C struct field.

``binding`` (Cython 3's default True: methods are cyfunctions) is set by bench_floors at build
time (``-X binding=...``), since which one calls faster is what it measures.
One difference from the mypyc floor: ``del self._outstanding[token]`` is one dict operation
(``PyDict_DelItem`` raises the ``KeyError``), where the mypyc floor looks the token up first.
"""

cimport cython

import time


@cython.final
@cython.freelist(8)
@cython.no_gc
cdef class Lease:
    """What select hands out: the endpoint, a token and the clock's reading."""

    cdef readonly object endpoint
    cdef readonly object token
    cdef readonly object started


@cython.final
cdef class CyLeaseRoundRobin:
    """The contract's floor: see the module's docstring."""

    cdef tuple _endpoints
    cdef Py_ssize_t _n
    cdef size_t _turn
    cdef long long _last
    cdef dict _outstanding
    cdef object _clock

    def __init__(self, endpoints):
        self._endpoints = tuple(endpoints)
        self._n = len(self._endpoints)
        if self._n == 0:
            raise ValueError("no endpoints")
        self._turn = 0
        self._last = 0
        self._outstanding = {}
        self._clock = time.monotonic

    def select(self, key=None, avoid=()):
        cdef object started = self._clock()
        cdef size_t turn = self._turn
        self._turn = turn + 1
        cdef object endpoint = self._endpoints[<Py_ssize_t>(turn % <size_t>self._n)]
        self._last += 2
        cdef object token = self._last  # one int object: the dict's key and the lease's token
        self._outstanding[token] = endpoint
        cdef Lease lease = Lease.__new__(Lease)
        lease.endpoint = endpoint
        lease.token = token
        lease.started = started
        return lease

    def release(self, Lease lease not None, *, bint ok=True, elapsed=None):
        del self._outstanding[lease.token]  # KeyError: not outstanding

    def outstanding(self):
        """How many leases are out."""
        return len(self._outstanding)
