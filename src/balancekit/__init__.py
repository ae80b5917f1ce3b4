"""balancekit: load-balancing strategies for client-side balancing, gateways and dispatchers.

>>> import balancekit as bk
>>> lb = bk.RoundRobin(["10.0.0.1:8080", "10.0.0.2:8080"])
>>> with lb.acquire() as endpoint:
...     endpoint.address
'10.0.0.1:8080'
"""

from . import guard, keys, sticky
from ._core import Balancer, BalancerBase, Clock
from ._endpoint import Endpoint, EndpointLike
from ._errors import (
    BalancekitError,
    DuplicateEndpoint,
    InvalidEndpoint,
    InvalidLease,
    InvalidOption,
    NoEndpointAvailable,
    UnknownEndpoint,
)
from ._lease import EndpointStats, Lease
from .request import Request
from .routing import NoRoute, Route, Router
from .strategies.hashing.ring import IPHash
from .strategies.least import LeastConnections, LeastResponseTime
from .strategies.round_robin import RoundRobin, WeightedRoundRobin

__all__ = [
    "BalancekitError",
    "Balancer",
    "BalancerBase",
    "Clock",
    "DuplicateEndpoint",
    "Endpoint",
    "EndpointLike",
    "EndpointStats",
    "IPHash",
    "InvalidEndpoint",
    "InvalidLease",
    "InvalidOption",
    "Lease",
    "LeastConnections",
    "LeastResponseTime",
    "NoEndpointAvailable",
    "NoRoute",
    "Request",
    "RoundRobin",
    "Route",
    "Router",
    "UnknownEndpoint",
    "WeightedRoundRobin",
    "guard",
    "keys",
    "sticky",
]
