"""The strategies the conformance suite checks, gathered from ``cases_*.py`` files beside this one.

Each ``cases_<topic>.py`` defines ``CASES: list[Case]``; a new strategy is registered once there
and every property in ``test_conformance.py`` runs against it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import balancekit as bk

#: Builds a balancer over the given endpoints with the given clock.
Factory = Callable[[Sequence[bk.Endpoint], Callable[[], float]], bk.Balancer]


@dataclass(frozen=True)
class Case:
    """One strategy under test.

    name: shown in test ids.
    factory: builds the balancer (endpoints, clock) -> balancer.
    keyed: ``select`` needs a key (str) as context; the suite passes distinct keys.
    weights: how weights show over many picks (share of endpoint i within ``tolerance``,
      absolute, of w_i / W):
      "sequential"  in select-then-release traffic (one request at a time);
      "statistical" the same over distinct keys or random draws (``tolerance`` wider);
      "concurrent"  in requests held open at once (load-aware strategies whose sequential choice
                    follows measured latency rather than weight);
      "ignored"     the strategy does not use weights (round robin): shares are equal instead.
    consistent: a consistent hash: with membership unchanged the same key maps to the same
      endpoint, and removing or marking down one endpoint moves only the keys it owned.
    """

    name: str
    factory: Factory
    keyed: bool = False
    weights: Literal["sequential", "statistical", "concurrent", "ignored"] = "sequential"
    tolerance: float = 0.02
    consistent: bool = False


def all_cases() -> list[Case]:
    """Every ``CASES`` entry from every ``cases_*.py`` module in this package, by name."""
    cases: list[Case] = []
    folder = Path(__file__).parent
    for module in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if module.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"{__package__}.{module.name}").CASES)
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), f"duplicate case names: {names}"
    return cases
