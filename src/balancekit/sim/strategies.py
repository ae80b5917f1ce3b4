"""The simulator's strategy table: which balancers ``simulate`` compares, and how each is built.

:data:`STRATEGY_NAMES` lists classes of :mod:`balancekit` by name, in report order. A name whose
class does not exist (yet) in this build is skipped, so strategies added by later work appear as
soon as they are exported. Each is built with the endpoints, ``clock=`` the simulated clock, and
its defaults for every other option, except a ``seed=`` (or ``rng=``) option for randomised
strategies, which gets the run's seed so runs stay deterministic. :data:`CUSTOM` maps a name to a
hand-written factory when the defaults are not what a comparison should show.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Collection

import balancekit

from .._core import Balancer, Clock
from .._endpoint import Endpoint
from .._errors import InvalidOption
from ..strategies.hashing._keyed import KeyedBalancer

__all__ = ["CUSTOM", "HEALTH_SUFFIX", "STRATEGY_NAMES", "available", "factory", "keeps_affinity"]

#: Appended to a strategy's name for its run with passive health (``simulate --health``).
HEALTH_SUFFIX = "+health"

#: Balancer classes of :mod:`balancekit` the simulator compares, in report order.
STRATEGY_NAMES: tuple[str, ...] = (
    "RoundRobin",
    "WeightedRoundRobin",
    "IPHash",
    "LeastConnections",
    "LeastResponseTime",
    "PowerOfTwoChoices",
    "PeakEWMA",
    "WeightedRandom",
    "Random",
    "Ketama",
    "Rendezvous",
    "Maglev",
    "JumpHash",
    "BoundedLoadHash",
)

#: name -> function(endpoints, clock, seed) building the balancer, overriding the default build.
CUSTOM: dict[str, Callable[[list[Endpoint], Clock, int], Balancer]] = {}


def available() -> list[str]:
    """The names in :data:`STRATEGY_NAMES` and :data:`CUSTOM` that can be built in this build."""
    names = [name for name in STRATEGY_NAMES if name in CUSTOM or _class(name) is not None]
    names.extend(name for name in CUSTOM if name not in names)
    return names


def _class(name: str) -> type | None:
    candidate = getattr(balancekit, name, None)
    return candidate if isinstance(candidate, type) else None


def keeps_affinity(name: str) -> bool:
    """Whether strategy ``name`` (or ``name + HEALTH_SUFFIX``) sends a key to the same server.

    True for the consistent hashes (subclasses of ``KeyedBalancer``, which hash the context of
    ``select``); False for everything else, :data:`CUSTOM` entries included.
    """
    cls = _class(name.removesuffix(HEALTH_SUFFIX))
    return cls is not None and issubclass(cls, KeyedBalancer)


def factory(name: str, seed: int = 0) -> Callable[[list[Endpoint], Clock], Balancer]:
    """A balancer factory for :func:`~balancekit.sim.run`: ``factory(name)(endpoints, clock)``.

    Raises :class:`~balancekit.InvalidOption` naming the available strategies if ``name`` is
    unknown.
    """
    if name in CUSTOM:
        custom = CUSTOM[name]
        return lambda endpoints, clock: custom(endpoints, clock, seed)
    cls = _class(name)
    if cls is None or name not in STRATEGY_NAMES:
        raise InvalidOption(f"unknown strategy {name!r}; available: {', '.join(available())}")
    parameters = _options_of(cls)

    def build(endpoints: list[Endpoint], clock: Clock) -> Balancer:
        options: dict[str, object] = {"clock": clock}
        if "seed" in parameters:
            options["seed"] = seed
        elif "rng" in parameters:
            options["rng"] = random.Random(seed)
        balancer: Balancer = cls(endpoints, **options)
        return balancer

    return build


def _options_of(cls: type) -> Collection[str]:
    """The names of ``cls``'s constructor options. Compiled (mypyc), some native classes have no
    signature to inspect (``ValueError``: the hashing strategies): their options are read from
    the first class of their MRO that has one, else none; every randomised strategy has one in
    both builds (tests/sim/test_review8_factory_all_builds.py), and without one the default
    ``simulate`` command stopped before simulating (review8)."""
    for klass in cls.__mro__:
        try:
            return inspect.signature(klass).parameters.keys()
        except (TypeError, ValueError):
            continue
    return ()
