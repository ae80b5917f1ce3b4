"""The floor of the lease contract (issue 15): a counter, a token, a dict store and a dict pop.

``MinimalLeaseRoundRobin`` is the least a round robin that hands out leases can do: what the
issue calls the floor for this contract (10.4x a no-op call in pure Python when it was filed).

``NativeLeaseRoundRobin`` is the same contract written for mypyc as balancekit's compiled build
is (a native lease class out of the garbage collector, native int counters, a clock reading, a
dict store, a subscript and a del, ``release`` with keyword-only ``ok``/``elapsed``), minus
everything balancekit checks or counts beyond that. ``bench_speed --compiled-floor`` and
``bench_callgrind`` (subject ``floor_compiled``) compile this file with mypyc (as
``_minimal_lease_rr_native``) and time that class: the compiled build's floor. (The pure-Python
class compiled as it is does not make a floor: mypyc calls ``next`` and ``dict.pop`` by name.)
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mypy_extensions import mypyc_attr

NATIVE_NAME = "_minimal_lease_rr_native"


class MinimalLeaseRoundRobin:
    """A counter, a token, a dict: select stores the pick under a new token, release pops it."""

    def __init__(self, endpoints: Sequence[object]) -> None:
        self._endpoints = tuple(endpoints)
        self._counter = itertools.count()
        self._tokens = itertools.count(1)
        self._outstanding: dict[int, object] = {}

    def select(self, key: object = None) -> tuple[object, int]:
        endpoint = self._endpoints[next(self._counter) % len(self._endpoints)]
        token = next(self._tokens)
        self._outstanding[token] = endpoint
        return endpoint, token

    def release(self, lease: tuple[object, int], ok: bool = True, elapsed: float = 0.0) -> None:
        if self._outstanding.pop(lease[1], None) is None:
            raise KeyError(lease[1])


@mypyc_attr(acyclic=True, free_list_len=1)
class NativeLease:
    """What select hands out: the endpoint, a token and the clock's reading."""

    __slots__ = ("endpoint", "started", "token")

    def __init__(self, endpoint: object, token: Any, started: Any) -> None:
        self.endpoint = endpoint
        self.token = token
        self.started = started


class NativeLeaseRoundRobin:
    """The contract's floor as mypyc compiles it best: see the module's docstring."""

    def __init__(self, endpoints: Sequence[object]) -> None:
        self._endpoints = tuple(endpoints)
        self._turn = 0
        self._last = 0
        self._outstanding: dict[Any, object] = {}
        self._clock: Any = time.monotonic

    def select(self, key: object = None, avoid: Any = ()) -> NativeLease:
        started = self._clock()
        turn = self._turn
        self._turn = turn + 1
        endpoint = self._endpoints[turn % len(self._endpoints)]
        token: Any = self._last + 2
        self._last = token
        self._outstanding[token] = endpoint
        return NativeLease(endpoint, token, started)

    def release(self, lease: NativeLease, *, ok: bool = True, elapsed: float | None = None) -> None:
        outstanding = self._outstanding
        token = lease.token
        outstanding[token]  # KeyError: not outstanding
        del outstanding[token]


def build_native(directory: Path) -> Path:
    """Compile this file with mypyc as ``_minimal_lease_rr_native`` in ``directory`` (once)."""
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob(NATIVE_NAME + ".*.so")):
        shutil.copy(Path(__file__), directory / (NATIVE_NAME + ".py"))
        mypyc = Path(sys.executable).with_name("mypyc")
        done = subprocess.run(
            [str(mypyc), NATIVE_NAME + ".py"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise SystemExit(f"mypyc could not build the floor:\n{done.stdout}{done.stderr}")
        (directory / (NATIVE_NAME + ".py")).unlink()  # import the extension, not the source
    return directory
