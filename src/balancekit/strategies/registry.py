"""Every strategy by name: what configuration files, the simulator and command lines look up.

>>> from balancekit.strategies import registry
>>> registry.get("p2c").__name__
'PowerOfTwoChoices'
>>> registry.get("round-robin") is registry.get("RoundRobin") is registry.get("round_robin")
True
>>> registry.get("roundrobbin")
Traceback (most recent call last):
  ...
balancekit._errors.InvalidOption: unknown strategy 'roundrobbin'; did you mean 'round_robin'? ...

A name is matched without regard to case, ``_`` or ``-`` (``"PeakEWMA"``, ``"peak_ewma"`` and
``"peak-ewma"`` are one name). :func:`names` lists the canonical names (snake case, what the
docs and configuration files use); :data:`ALIASES` maps the short names people already say
(``p2c``, ``wrr``, ``least_conn`` as NGINX's directive, ``ketama``, ``hrw``) to them.
:func:`register` adds a strategy of your own (a :class:`~balancekit.BalancerBase` subclass), so
``from_config`` can build it. Lookups are O(1); the table is guarded by a lock for
registrations from several threads.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Mapping
from types import MappingProxyType

from .._core import BalancerBase
from .._errors import InvalidOption
from .._options import describe
from .ewma import PeakEWMA
from .hashing.bounded import BoundedLoadHash
from .hashing.jump import JumpHash
from .hashing.ketama import Ketama
from .hashing.maglev import Maglev
from .hashing.rendezvous import Rendezvous
from .hashing.ring import IPHash
from .least import LeastConnections, LeastResponseTime
from .load_report import LoadReportWeightedRoundRobin
from .p2c import PowerOfTwoChoices
from .random import Random, WeightedRandom
from .round_robin import RoundRobin, WeightedRoundRobin

__all__ = ["ALIASES", "get", "name_of", "names", "register", "strategies"]

#: The longest name looked up (longer text is refused before any processing).
MAX_NAME = 100

_BUILT_IN: dict[str, type[BalancerBase]] = {
    "round_robin": RoundRobin,
    "weighted_round_robin": WeightedRoundRobin,
    "random": Random,
    "weighted_random": WeightedRandom,
    "least_connections": LeastConnections,
    "least_response_time": LeastResponseTime,
    "power_of_two_choices": PowerOfTwoChoices,
    "peak_ewma": PeakEWMA,
    "load_report_weighted_round_robin": LoadReportWeightedRoundRobin,
    "ip_hash": IPHash,
    "ketama": Ketama,
    "maglev": Maglev,
    "jump_hash": JumpHash,
    "rendezvous": Rendezvous,
    "bounded_load_hash": BoundedLoadHash,
}

#: Short names people use, to the canonical name.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "rr": "round_robin",
        "wrr": "weighted_round_robin",
        "least_conn": "least_connections",
        "least_time": "least_response_time",
        "lrt": "least_response_time",
        "p2c": "power_of_two_choices",
        "ewma": "peak_ewma",
        "orca": "load_report_weighted_round_robin",
        "load_report": "load_report_weighted_round_robin",
        "ring_hash": "ip_hash",
        "consistent_hash": "ip_hash",
        "jump": "jump_hash",
        "hrw": "rendezvous",
        "bounded_load": "bounded_load_hash",
    }
)

_lock = threading.Lock()  # serialises register(); lookups read one snapshot without it


def _fold(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _indexed(strategies: dict[str, type[BalancerBase]]) -> dict[str, str]:
    """The folded spellings (canonical names, class names, aliases) to canonical names."""
    index: dict[str, str] = {}
    for canonical, cls in strategies.items():
        index[_fold(canonical)] = canonical
        index.setdefault(_fold(cls.__name__), canonical)
    for alias, canonical in ALIASES.items():
        index.setdefault(_fold(alias), canonical)
    return index


# The table and its index, replaced together by one assignment (register), never mutated.
_table: tuple[dict[str, type[BalancerBase]], dict[str, str]] = (
    dict(_BUILT_IN),
    _indexed(_BUILT_IN),
)


def _checked_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise InvalidOption(
            f"{what} must be a strategy name (a str of 1 to {MAX_NAME} characters),"
            f" not {describe(name)}"
        )
    return name


def get(name: str) -> type[BalancerBase]:
    """The strategy class called ``name`` (canonical, class name or alias; any case, ``_`` or
    ``-``). An unknown name raises :class:`~balancekit.InvalidOption` listing the known ones."""
    name = _checked_name(name, "strategy")
    table, index = _table
    canonical = index.get(_fold(name))
    if canonical is None:
        known = list(table)
        close = difflib.get_close_matches(_fold(name), list(index), n=1)
        hint = f"did you mean {index[close[0]]!r}? " if close else ""
        raise InvalidOption(
            f"unknown strategy {describe(name)}; {hint}known strategies: {', '.join(known)}"
            f" (aliases: {', '.join(sorted(ALIASES))})"
        )
    return table[canonical]


def name_of(cls: type[BalancerBase]) -> str:
    """The canonical name a strategy class is registered under (InvalidOption if none)."""
    for canonical, registered in _table[0].items():
        if registered is cls:
            return canonical
    raise InvalidOption(f"{describe(cls)} is not a registered strategy")


def names() -> list[str]:
    """The canonical names, in registration order (the built-in ones first)."""
    return list(_table[0])


def strategies() -> dict[str, type[BalancerBase]]:
    """A copy of the table: canonical name to class."""
    return dict(_table[0])


def register(name: str, cls: type[BalancerBase]) -> None:
    """Register ``cls`` (a :class:`~balancekit.BalancerBase` subclass) as ``name``.

    The name must be new in every spelling (case, ``_``, ``-``), including the aliases and the
    class names already known; registering refuses duplicates with InvalidOption.
    """
    name = _checked_name(name, "name")
    if not isinstance(cls, type) or not issubclass(cls, BalancerBase):
        raise InvalidOption(f"cls must be a BalancerBase subclass, not {describe(cls)}")
    global _table
    with _lock:
        table, index = _table
        if _fold(name) in index or _fold(cls.__name__) in index:
            raise InvalidOption(f"a strategy is already registered as {describe(name)}")
        table = {**table, name: cls}
        _table = (table, _indexed(table))
