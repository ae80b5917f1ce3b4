"""What a simulation runs: servers, their changes over time, the arrival process, the clients.

A :class:`Scenario` is plain data, validated when built (:class:`~balancekit.InvalidOption` with a
message saying what is wrong). Times in :class:`ServerChange` and :class:`Burst` are *fractions of
the run* (0.5 = half-way), where the run is the nominal arrival window ``requests / rate``
seconds, so a scenario keeps its shape whatever ``--requests`` is.

Built-in scenarios are registered in :data:`SCENARIOS` (name -> function of the request count);
add one with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .._endpoint import Endpoint
from .._errors import InvalidOption

__all__ = [
    "SCENARIOS",
    "Burst",
    "Scenario",
    "ServerChange",
    "ServerSpec",
    "default_scenario",
    "register",
]


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidOption(f"{name} must be a positive finite number, not {value!r}")
    return float(value)


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidOption(f"{name} must be a number in [0, 1], not {value!r}")
    return float(value)


def _count(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidOption(f"{name} must be an int >= {low}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One simulated server: an M/M/c station with a FIFO queue.

    ``service`` is the mean service time in seconds (exponentially distributed), ``capacity`` the
    number of requests it works on at once (more wait in its FIFO queue), ``weight`` what weighted
    strategies are told (defaults to ``capacity``), ``failure`` the probability a request fails,
    and ``failure_cost`` the fraction of the service time a failed request takes (1.0: fails
    slowly; 0.05: fails fast, the case that attracts traffic to a broken server).
    """

    address: str
    service: float
    capacity: int
    weight: int = 0
    failure: float = 0.0
    failure_cost: float = 1.0

    def __post_init__(self) -> None:
        Endpoint(self.address)  # validates the address (InvalidEndpoint)
        _positive(f"{self.address}: service", self.service)
        _count(f"{self.address}: capacity", self.capacity)
        if self.weight == 0:
            object.__setattr__(self, "weight", self.capacity)
        _count(f"{self.address}: weight", self.weight)
        _fraction(f"{self.address}: failure", self.failure)
        _fraction(f"{self.address}: failure_cost", self.failure_cost)

    @property
    def throughput(self) -> float:
        """Requests per second it completes when saturated: ``capacity / service``."""
        return self.capacity / self.service

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint a balancer is given for this server."""
        return Endpoint(self.address, weight=self.weight)


@dataclass(frozen=True, slots=True)
class ServerChange:
    """At fraction ``at`` of the run, server ``address`` changes.

    ``slowdown`` multiplies its *base* mean service time from then on (10.0: ten times slower;
    1.0: back to normal); ``failure``, if given, replaces its failure probability. A change applies
    to requests that *start* service after it.
    """

    at: float
    address: str
    slowdown: float = 1.0
    failure: float | None = None

    def __post_init__(self) -> None:
        _fraction("ServerChange.at", self.at)
        _positive("ServerChange.slowdown", self.slowdown)
        if self.failure is not None:
            _fraction("ServerChange.failure", self.failure)

    def describe(self) -> str:
        """A few words for the report, e.g. ``x10 slower, fails 50%`` or ``back to base speed``."""
        parts = []
        if self.slowdown != 1.0:
            parts.append(
                f"x{self.slowdown:g} slower" if self.slowdown > 1 else f"x{self.slowdown:g}"
            )
        if self.failure is not None:
            parts.append(f"fails {self.failure:.0%}")
        return ", ".join(parts) or "back to base speed"


@dataclass(frozen=True, slots=True)
class Burst:
    """From fraction ``at`` of the run, for fraction ``length`` of it, the arrival rate
    is multiplied by ``factor``."""

    at: float
    length: float
    factor: float

    def __post_init__(self) -> None:
        _fraction("Burst.at", self.at)
        _fraction("Burst.length", self.length)
        _positive("Burst.factor", self.factor)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole simulation input: servers, Poisson arrivals, clients, changes over time.

    ``rate`` is the mean arrival rate (requests per second) of a Poisson process, multiplied by
    any :class:`Burst` in effect; ``requests`` is how many arrive in total. Each request comes
    from one of ``clients`` distinct client addresses with Zipf popularity (client k is chosen
    with probability proportional to ``1 / k**zipf``; 0 means uniform) and that address is the
    ``context`` given to ``select`` (the key of hash strategies). ``affinity`` says the workload
    needs key affinity (sessions, per-client caches): the recommendation then picks among the
    strategies that keep a client on one server (:mod:`balancekit.sim.recommend`).
    """

    name: str
    description: str
    servers: tuple[ServerSpec, ...]
    rate: float
    requests: int
    clients: int = 10_000
    zipf: float = 0.9
    changes: tuple[ServerChange, ...] = ()
    bursts: tuple[Burst, ...] = ()
    affinity: bool = False

    def __post_init__(self) -> None:
        if not self.servers:
            raise InvalidOption(f"scenario {self.name!r} has no servers")
        addresses = [server.address for server in self.servers]
        if len(set(addresses)) != len(addresses):
            raise InvalidOption(f"scenario {self.name!r} names a server twice: {addresses}")
        _positive("rate", self.rate)
        _count("requests", self.requests)
        _count("clients", self.clients)
        if isinstance(self.zipf, bool) or not isinstance(self.zipf, int | float) or self.zipf < 0:
            raise InvalidOption(f"zipf must be a number >= 0, not {self.zipf!r}")
        if not isinstance(self.affinity, bool):
            raise InvalidOption(f"affinity must be True or False, not {self.affinity!r}")
        for change in self.changes:
            if change.address not in addresses:
                raise InvalidOption(
                    f"scenario {self.name!r}: change names unknown server {change.address!r}"
                )

    @property
    def window(self) -> float:
        """The nominal arrival window in seconds, ``requests / rate``: what fractions refer to."""
        return self.requests / self.rate

    @property
    def capacity(self) -> float:
        """Total saturated throughput of all servers, requests per second."""
        return sum(server.throughput for server in self.servers)

    @property
    def split(self) -> float | None:
        """Time (seconds) of the first change, the before/after line of the report; else None."""
        if not self.changes:
            return None
        return min(change.at for change in self.changes) * self.window

    @property
    def boundaries(self) -> tuple[float, ...]:
        """The distinct change times in seconds, ascending: they cut the run into phases."""
        return tuple(sorted({change.at * self.window for change in self.changes}))

    @property
    def watched(self) -> tuple[str, ...]:
        """Addresses of the servers that change during the run, in order of first change."""
        seen: dict[str, None] = {}
        for change in sorted(self.changes, key=lambda c: c.at):
            seen.setdefault(change.address, None)
        return tuple(seen)

    def with_requests(self, requests: int) -> Scenario:
        """The same scenario with another request count (same shape, shorter or longer run)."""
        return replace(self, requests=_count("requests", requests))


#: Built-in scenarios: name -> function building the scenario for a request count.
SCENARIOS: dict[str, Callable[[int], Scenario]] = {}

#: Request count of a built-in scenario when none is given (the CLI default).
DEFAULT_REQUESTS = 100_000


def register(name: str) -> Callable[[Callable[[int], Scenario]], Callable[[int], Scenario]]:
    """Decorator registering a built-in scenario builder under ``name`` (``--scenario NAME``)."""

    def decorate(builder: Callable[[int], Scenario]) -> Callable[[int], Scenario]:
        if name in SCENARIOS:
            raise InvalidOption(f"a scenario named {name!r} is already registered")
        SCENARIOS[name] = builder
        return builder

    return decorate


# Ten servers of mixed speed (20-36 ms) and capacity (4-32 workers); weights = capacity.
_MIXED = (
    (0.020, 8),
    (0.024, 8),
    (0.028, 16),
    (0.032, 16),
    (0.036, 8),
    (0.022, 4),
    (0.026, 4),
    (0.030, 16),
    (0.034, 32),
    (0.024, 8),
)


def mixed_servers() -> tuple[ServerSpec, ...]:
    """The default fleet: 10.0.0.1:8080 .. 10.0.0.10:8080, mixed speed and capacity."""
    return tuple(
        ServerSpec(f"10.0.0.{i}:8080", service=service, capacity=capacity)
        for i, (service, capacity) in enumerate(_MIXED, start=1)
    )


#: Offered load of the built-in scenarios, as a fraction of total server capacity.
LOAD = 0.75


@register("degrade")
def default_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """The default: ten mixed servers at 75% load; 10.0.0.3 becomes ten times slower half-way."""
    servers = mixed_servers()
    total = sum(server.throughput for server in servers)
    return Scenario(
        name="degrade",
        description=(
            "ten servers of mixed speed (20-36 ms) and capacity (4-32), weights = capacity,"
            f" Poisson arrivals at {LOAD:.0%} of capacity from 10,000 Zipf-popular clients;"
            " 10.0.0.3:8080 becomes ten times slower half-way"
        ),
        servers=servers,
        rate=round(LOAD * total),
        requests=requests,
        changes=(ServerChange(0.5, "10.0.0.3:8080", slowdown=10.0),),
    )


@register("sticky")
def sticky_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """``degrade`` for clients that need key affinity: the recommendation picks a hash."""
    return replace(
        default_scenario(requests),
        name="sticky",
        description=(
            "the degrade scenario (10.0.0.3:8080 ten times slower half-way) for a service whose"
            " clients need key affinity (sessions or per-client caches held by one server):"
            " only strategies that keep a client on one server qualify"
        ),
        affinity=True,
    )


@register("recover")
def recover_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """The default fleet at 75% load; 10.0.0.3 is ten times slower from 30% to 60% of the run."""
    servers = mixed_servers()
    return Scenario(
        name="recover",
        description=(
            f"the default fleet at {LOAD:.0%} of capacity; 10.0.0.3:8080 is ten times slower from"
            " 30% to 60% of the run, then recovers: does it get its share back?"
        ),
        servers=servers,
        rate=round(LOAD * sum(server.throughput for server in servers)),
        requests=requests,
        changes=(
            ServerChange(0.3, "10.0.0.3:8080", slowdown=10.0),
            ServerChange(0.6, "10.0.0.3:8080", slowdown=1.0),
        ),
    )


@register("steady")
def steady_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """The default fleet at 75% load with nothing going wrong: the baseline."""
    servers = mixed_servers()
    return Scenario(
        name="steady",
        description=(f"the default fleet at {LOAD:.0%} of capacity, nothing changes: the baseline"),
        servers=servers,
        rate=round(LOAD * sum(server.throughput for server in servers)),
        requests=requests,
    )


@register("burst")
def burst_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """The default fleet at 60% load with a burst at 1.5x (90% of capacity) in the middle fifth."""
    servers = mixed_servers()
    return Scenario(
        name="burst",
        description=(
            "the default fleet at 60% of capacity, with arrivals 1.5x faster (90%) from 40% to"
            " 60% of the run"
        ),
        servers=servers,
        rate=round(0.6 * sum(server.throughput for server in servers)),
        requests=requests,
        bursts=(Burst(0.4, 0.2, 1.5),),
    )


@register("flaky")
def flaky_scenario(requests: int = DEFAULT_REQUESTS) -> Scenario:
    """The default fleet at 75% load; from half-way 10.0.0.3 fails half its requests, fast."""
    servers = tuple(
        replace(server, failure_cost=0.05) if server.address == "10.0.0.3:8080" else server
        for server in mixed_servers()
    )
    return Scenario(
        name="flaky",
        description=(
            f"the default fleet at {LOAD:.0%} of capacity; from half-way 10.0.0.3:8080 fails 50%"
            " of its requests, in 5% of the usual time (fast failures attract load-aware picks)"
        ),
        servers=servers,
        rate=round(LOAD * sum(server.throughput for server in servers)),
        requests=requests,
        changes=(ServerChange(0.5, "10.0.0.3:8080", failure=0.5),),
    )


#: The "failing" scenario's rate: low enough that 120,000 requests span ten simulated minutes.
FAILING_RATE = 200.0
FAILING_SERVER = "10.0.0.3:8080"


@register("failing")
def failing_scenario(requests: int = 120_000) -> Scenario:
    """Ten mixed servers at 200 req/s; from 5 % of the run 10.0.0.3:8080 fails half its requests.

    The passive-health comparison (``python -m balancekit.sim.scenario_health``) runs it.
    """
    return Scenario(
        name="failing",
        description=(
            f"the default fleet at {FAILING_RATE:g} requests/s; from 5% of the run"
            f" {FAILING_SERVER} fails 50% of its requests (as slowly as it succeeds)"
        ),
        servers=mixed_servers(),
        rate=FAILING_RATE,
        requests=requests,
        changes=(ServerChange(0.05, FAILING_SERVER, failure=0.5),),
    )
