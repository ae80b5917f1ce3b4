"""balancekit: load-balancing strategies for client-side balancing, gateways and dispatchers.

>>> import balancekit as bk
>>> lb = bk.RoundRobin(["10.0.0.1:8080", "10.0.0.2:8080"])
>>> with lb.acquire() as endpoint:
...     endpoint.address
'10.0.0.1:8080'
"""

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("balancekit")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

from . import _native

if _native.pure_requested():  # BALANCEKIT_PURE=1: the .py modules even if compiled ones exist
    _native.prefer_source()

from . import _core, guard, health, keys, sticky
from ._core import Balancer, BalancerBase, Clock
from ._endpoint import Endpoint, EndpointLike
from ._errors import (
    BalancekitError,
    DuplicateEndpoint,
    InvalidEndpoint,
    InvalidLease,
    InvalidOption,
    MissingExtra,
    NoEndpointAvailable,
    UnknownEndpoint,
)
from ._lease import EndpointStats, Lease
from .config import Service, from_config, from_config_file
from .health import PassiveHealth, SlowStart, health_of, with_health
from .request import Request
from .retry import Outcome, Retry, RetryBudget
from .routing import NoRoute, Route, Router
from .strategies.ewma import PeakEWMA
from .strategies.hashing.bounded import BoundedLoadHash
from .strategies.hashing.jump import JumpHash
from .strategies.hashing.ketama import Ketama
from .strategies.hashing.maglev import Maglev
from .strategies.hashing.rendezvous import Rendezvous
from .strategies.hashing.ring import IPHash
from .strategies.least import LeastConnections, LeastResponseTime
from .strategies.load_report import LoadReport, LoadReportWeightedRoundRobin
from .strategies.p2c import PowerOfTwoChoices
from .strategies.random import Random, WeightedRandom
from .strategies.round_robin import RoundRobin, WeightedRoundRobin

# A library logs; the application decides where to (Python's logging HOWTO, "Configuring
# Logging for a Library"): without this, an application that configured no logging got every
# ejection on stderr through logging's last-resort handler (the simulator printed hundreds).
logging.getLogger(__name__).addHandler(logging.NullHandler())

#: True when the mypyc-compiled core and strategies are loaded (``BALANCEKIT_COMPILE=1`` build,
#: and ``BALANCEKIT_PURE`` not set); False for the pure-Python reference modules.
compiled: bool = _native.is_compiled(_core)

__all__ = [
    "BalancekitError",
    "Balancer",
    "BalancerBase",
    "BoundedLoadHash",
    "Clock",
    "DuplicateEndpoint",
    "Endpoint",
    "EndpointLike",
    "EndpointStats",
    "IPHash",
    "InvalidEndpoint",
    "InvalidLease",
    "InvalidOption",
    "JumpHash",
    "Ketama",
    "Lease",
    "LeastConnections",
    "LeastResponseTime",
    "LoadReport",
    "LoadReportWeightedRoundRobin",
    "Maglev",
    "MissingExtra",
    "NoEndpointAvailable",
    "NoRoute",
    "Outcome",
    "PassiveHealth",
    "PeakEWMA",
    "PowerOfTwoChoices",
    "Random",
    "Rendezvous",
    "Request",
    "Retry",
    "RetryBudget",
    "RoundRobin",
    "Route",
    "Router",
    "Service",
    "SlowStart",
    "UnknownEndpoint",
    "WeightedRandom",
    "WeightedRoundRobin",
    "__version__",
    "compiled",
    "from_config",
    "from_config_file",
    "guard",
    "health",
    "health_of",
    "keys",
    "sticky",
    "with_health",
]

if TYPE_CHECKING:  # imported lazily at run time, so the core needs no HTTP or DNS library
    from . import discovery as discovery
    from . import subset as subset
    from .integrations import aiohttp as aiohttp
    from .integrations import grpc as grpc
    from .integrations import httpx as httpx
    from .integrations import requests as requests

# bk.httpx, bk.requests, bk.grpc and bk.discovery import their optional dependency on first use.
_LAZY = {
    "aiohttp": "balancekit.integrations.aiohttp",
    "discovery": "balancekit.discovery",
    "grpc": "balancekit.integrations.grpc",
    "httpx": "balancekit.integrations.httpx",
    "requests": "balancekit.integrations.requests",
    "subset": "balancekit.subset",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'balancekit' has no attribute {name!r}")
    import importlib

    value = importlib.import_module(module)
    globals()[name] = value
    return value
