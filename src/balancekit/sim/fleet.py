"""Fleets: many client processes, each with its own balancer and subset, against one pool.

A :class:`Fleet` is ``clients`` simulated client processes and ``servers`` identical servers
(M/M/c stations as in :mod:`balancekit.sim.engine`: ``capacity`` workers, exponential service
times, a FIFO queue). Each client has its own subset of the servers (:data:`SUBSETS`) and its
own balancer built on that subset, so it balances with only what it sees itself, as a real
client process does. All of them run in one Python process on one simulated clock.

Two ways to make requests:

* ``mode="closed"``: every client keeps ``concurrency`` requests in flight and sends the next
  one as soon as one finishes (a worker pool, a batch job);
* ``mode="open"``: Poisson arrivals at ``load`` times the fleet's capacity, each from a client
  drawn uniformly (independent users).

:func:`layout` is the fleet's connection layout alone (each client's subset), computed with the
library's own subsetters; :func:`connection_counts` counts it per server, which is what the SRE
book's figures 20-3 and 20-5 plot (Site Reliability Engineering, ch. 20 "Load Balancing in the
Datacenter", section "Limiting the Connections Pool with Subsetting"). :func:`simulate` runs the
requests and reports each server's load as a :class:`Spread` (min, p99 and max over the mean).

Deterministic for a seed: client ``c``'s subset seed and balancer seed are derived from
``(seed, c)`` with BLAKE2b (never Python's ``hash``), and every service time comes from one
``random.Random(seed)`` in the order requests are sent. Cost: the layout is O(clients x servers
log servers); each request O(log(events) + the balancer's select and release).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, Literal

from .._core import Balancer
from .._endpoint import Endpoint
from .._errors import InvalidOption, NoEndpointAvailable
from .._options import describe, integer, number
from ..subset import Aperture, DeterministicAperture, DeterministicSubset, RandomSubset
from ..subset._ring import MAX_SIZE
from .engine import SimClock, SimulationError, client_addresses, percentile
from .strategies import factory

__all__ = [
    "MAX_PAIRS",
    "SUBSETS",
    "Fleet",
    "FleetResult",
    "Spread",
    "client_seed",
    "connection_counts",
    "layout",
    "server_addresses",
    "simulate",
]

#: The subset kinds: every server (full mesh), gRFC A68 random, SRE-book deterministic,
#: Finagle deterministic aperture (the :class:`~balancekit.subset.Aperture` balancer).
SUBSETS: tuple[str, ...] = ("none", "random", "deterministic", "aperture")
SubsetKind = Literal["none", "random", "deterministic", "aperture"]
#: The most client x server pairs a fleet may have: the layout (and, full mesh, the balancers'
#: memory) costs in proportion: a 1,000 x 1,000 full mesh takes ~4 s of CPU and 600 MB.
MAX_PAIRS = 1_000_000
#: The most requests one simulation runs.
MAX_REQUESTS = 10_000_000
#: The largest fleet seed (the subsetters take 64-bit seeds).
MAX_SEED = 2**64 - 1
#: The most clients, and the most servers (each gets a distinct 10.x.y.1:80 address).
MAX_CLIENTS = MAX_SERVERS = 20_000


def _default_k(subset: str, servers: int) -> int:
    """The subset size when none is given: the book's 30 % of the servers for random and
    deterministic subsetting, Finagle's minimum aperture (12) for aperture, all for none."""
    if subset == "aperture":
        return 12
    if subset == "none":
        return servers
    return max(1, round(servers * 0.3))


@dataclass(frozen=True, slots=True)
class Fleet:
    """A fleet to simulate (validated when built: :class:`~balancekit.InvalidOption`).

    ``k``: servers per client for ``random`` and ``deterministic``, the minimum aperture for
    ``aperture``, ignored for ``none``; ``None`` takes 30 % of the servers (the book's example)
    or 12 (Finagle's). ``strategy``: the balancer each client runs on its subset (a name from
    :func:`~balancekit.sim.available`); ``aperture`` always runs the Aperture balancer (P2C
    inside the slice). ``service``: mean service time in seconds; ``capacity``: workers per
    server; ``concurrency``: requests each client keeps in flight (closed loop); ``load``: the
    offered load as a fraction of the fleet's capacity (open loop).
    """

    clients: int = 300
    servers: int = 300
    subset: SubsetKind = "random"
    k: int | None = None
    strategy: str = "PowerOfTwoChoices"
    mode: Literal["closed", "open"] = "closed"
    concurrency: int = 2
    load: float = 0.7
    requests: int = 30_000
    service: float = 0.010
    capacity: int = 4
    size: int = field(init=False)

    def __post_init__(self) -> None:
        clients = integer("clients", self.clients, 1, MAX_CLIENTS)
        servers = integer("servers", self.servers, 1, MAX_SERVERS)
        if clients * servers > MAX_PAIRS:
            raise InvalidOption(
                f"clients x servers must be at most {MAX_PAIRS:,}, not {clients:,} x {servers:,}"
            )
        if self.subset not in SUBSETS:
            raise InvalidOption(
                f"subset must be one of {', '.join(SUBSETS)}, not {describe(self.subset)}"
            )
        if self.mode not in ("closed", "open"):
            raise InvalidOption(f"mode must be 'closed' or 'open', not {describe(self.mode)}")
        size = _default_k(self.subset, servers) if self.k is None else self.k
        object.__setattr__(self, "size", integer("k", size, 1, MAX_SIZE))
        integer("concurrency", self.concurrency, 1, 1_000)
        integer("requests", self.requests, 1, MAX_REQUESTS)
        integer("capacity", self.capacity, 1, 1_000)
        number("load", self.load, low=0.0, high=1.0, high_open=False)
        number("service", self.service, high=3600.0, high_open=False)
        if self.subset != "aperture":
            factory(self.strategy)  # InvalidOption naming the strategies if unknown

    @property
    def label(self) -> str:
        """A short name of the subsetting, e.g. ``random k=90`` or ``none (full mesh)``."""
        if self.subset == "none":
            return "none (full mesh)"
        if self.subset == "aperture":
            return f"aperture min {self.size}"
        return f"{self.subset} k={self.size}"


def server_addresses(count: int) -> list[Endpoint]:
    """``count`` servers, ``10.0.0.1:80``, ``10.0.1.1:80``, ... (distinct, in address order
    of creation; the subsetters sort by address themselves)."""
    return [Endpoint(f"10.{i // 250}.{i % 250}.1:80") for i in range(count)]


def client_seed(seed: int, client: int) -> int:
    """Client ``client``'s 64-bit seed in the fleet seeded ``seed`` (BLAKE2b, the same in
    every process and Python version)."""
    digest = hashlib.blake2b(f"{seed}:{client}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def layout(fleet: Fleet, seed: int = 0) -> list[tuple[Endpoint, ...]]:
    """Each client's servers (its connections), client 0 first.

    ``random``: :class:`~balancekit.subset.RandomSubset` with seed ``client_seed(seed, c)``
    (independent clients, as gRFC A68 draws a random seed per client); ``deterministic``:
    :class:`~balancekit.subset.DeterministicSubset` with ``client_id=c`` and ``seed``;
    ``aperture``: the servers of :class:`~balancekit.subset.DeterministicAperture` ``(c,
    clients)``'s slice (weights aside); ``none``: every server. ``seed``: an int from 0 to
    2**64 - 1 (:class:`~balancekit.InvalidOption` otherwise).
    """
    seed = integer("seed", seed, 0, MAX_SEED)
    servers = server_addresses(fleet.servers)
    result: list[tuple[Endpoint, ...]] = []
    for client in range(fleet.clients):
        if fleet.subset == "random":
            chosen = RandomSubset(fleet.size, seed=client_seed(seed, client)).subset(servers)
        elif fleet.subset == "deterministic":
            chosen = DeterministicSubset(fleet.size, client_id=client, seed=seed).subset(servers)
        elif fleet.subset == "aperture":
            aperture = DeterministicAperture(client, fleet.clients, min_aperture=fleet.size)
            chosen = aperture.subset(servers)
        else:
            chosen = tuple(servers)
        result.append(chosen)
    return result


def connection_counts(
    fleet: Fleet, seed: int = 0, chosen_by_client: Sequence[tuple[Endpoint, ...]] | None = None
) -> list[int]:
    """How many clients have each server in their subset (server order of
    :func:`server_addresses`): the SRE book's "connections per backend". ``chosen_by_client``:
    the :func:`layout` if already computed."""
    index = {endpoint.address: i for i, endpoint in enumerate(server_addresses(fleet.servers))}
    counts = [0] * fleet.servers
    if chosen_by_client is None:
        chosen_by_client = layout(fleet, seed)
    for chosen in chosen_by_client:
        for endpoint in chosen:
            counts[index[endpoint.address]] += 1
    return counts


@dataclass(frozen=True, slots=True)
class Spread:
    """A per-server quantity's spread: its mean, and its minimum, 99th percentile (nearest
    rank) and maximum as multiples of the mean (all 0.0 when the mean is 0)."""

    mean: float
    min: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of ``values`` (one per server)."""
        ordered = sorted(float(v) for v in values)
        if not ordered:
            return cls(0.0, 0.0, 0.0, 0.0)
        mean = math.fsum(ordered) / len(ordered)
        if mean <= 0.0:
            return cls(mean, 0.0, 0.0, 0.0)
        return cls(mean, ordered[0] / mean, percentile(ordered, 0.99) / mean, ordered[-1] / mean)


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What one fleet run measured. ``connections``: clients per server by subset (a
    (client, server) pair in the client's subset); ``used``: clients per server that actually
    sent it a request; ``requests``: requests per server (``server_*``: the counts, in
    :func:`server_addresses` order). ``per_client`` is the mean number of
    servers in a client's subset, ``used_per_client`` the mean number it sent requests to
    (the connections a lazily connecting client would open). Latencies in seconds (queueing
    wait + service)."""

    fleet: Fleet
    seed: int
    per_client: float
    used_per_client: float
    connections: Spread
    used: Spread
    requests: Spread
    completed: int
    rejected: int
    mean: float
    p50: float
    p99: float
    server_requests: tuple[int, ...]
    server_connections: tuple[int, ...]
    server_used: tuple[int, ...]


def _balancers(
    fleet: Fleet, seed: int, clock: SimClock, chosen_by_client: list[tuple[Endpoint, ...]]
) -> list[Balancer]:
    """Each client's balancer, on its subset (Aperture: on every server; it slices itself)."""
    balancers: list[Balancer] = []
    if fleet.subset == "aperture":
        servers = server_addresses(fleet.servers)
        for client in range(fleet.clients):
            balancer = Aperture(
                servers,
                instance_id=client,
                instances=fleet.clients,
                min_aperture=fleet.size,
                seed=client_seed(seed, client),
                clock=clock,
            )
            balancers.append(balancer)
        return balancers
    for client, chosen in enumerate(chosen_by_client):
        build = factory(fleet.strategy, client_seed(seed, client) & 0xFFFFFFFF)
        balancers.append(build(list(chosen), clock))
    return balancers


class _Server:
    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.busy = 0
        self.queue: deque[tuple[float, int, Any]] = deque()


def simulate(fleet: Fleet, seed: int = 0) -> FleetResult:
    """Run ``fleet.requests`` requests through the fleet; deterministic for ``seed``.

    Raises :class:`~balancekit.sim.engine.SimulationError` if a client's balancer returns a
    server outside the client's subset (or not a server at all). A request no balancer can
    place (``NoEndpointAvailable``) is counted in ``rejected`` (and, closed loop, that client
    sends its next one).
    """
    clock = SimClock()
    chosen_by_client = layout(fleet, seed)
    balancers = _balancers(fleet, seed, clock, chosen_by_client)
    addresses = [endpoint.address for endpoint in server_addresses(fleet.servers)]
    index = {address: i for i, address in enumerate(addresses)}
    allowed = [frozenset(index[e.address] for e in chosen) for chosen in chosen_by_client]
    names = client_addresses(fleet.clients)
    servers = [_Server() for _ in addresses]
    requests = [0] * fleet.servers
    pairs: set[tuple[int, int]] = set()
    latencies: list[float] = []
    rng = random.Random(seed)
    service, capacity = fleet.service, fleet.capacity
    # events: (time, sequence, kind, client, server, lease, sent); kind 0 = send, 1 = done
    events: list[tuple[float, int, int, int, int, Any, float]] = []
    sequence = 0
    sent = rejected = 0
    closed = fleet.mode == "closed"
    rate = fleet.load * fleet.servers * capacity / service

    def push(at: float, kind: int, client: int, server: int, lease: Any, start: float) -> None:
        nonlocal sequence
        sequence += 1
        heappush(events, (at, sequence, kind, client, server, lease, start))

    def start(server: int, lease: Any, sent_at: float, client: int, now: float) -> None:
        servers[server].busy += 1
        push(now + rng.expovariate(1.0 / service), 1, client, server, lease, sent_at)

    if closed:  # each client's first requests, but never more than the run sends
        first = min(fleet.clients * fleet.concurrency, fleet.requests)
        for slot in range(first):
            push(0.0, 0, slot % fleet.clients, -1, None, 0.0)
    elif rate > 0.0:
        push(rng.expovariate(rate), 0, rng.randrange(fleet.clients), -1, None, 0.0)
    while events:
        now, _, kind, client, server, lease, sent_at = heappop(events)
        clock.now = now
        if kind == 0:
            if sent >= fleet.requests:
                continue
            sent += 1
            if not closed:
                push(now + rng.expovariate(rate), 0, rng.randrange(fleet.clients), -1, None, 0.0)
            try:
                lease = balancers[client].select(names[client])
            except NoEndpointAvailable:
                rejected += 1
                if closed:
                    push(now, 0, client, -1, None, 0.0)
                continue
            target = index.get(lease[0].address)
            if target is None or target not in allowed[client]:
                raise SimulationError(
                    f"client {client}'s balancer returned {lease[0].address!r},"
                    " which is not in its subset"
                )
            requests[target] += 1
            pairs.add((client, target))
            if servers[target].busy < capacity:
                start(target, lease, now, client, now)
            else:
                servers[target].queue.append((now, client, lease))
        else:
            station = servers[server]
            station.busy -= 1
            latency = now - sent_at
            balancers[client].release(lease, ok=True, elapsed=latency)
            latencies.append(latency)
            if station.queue:
                waited_since, waiting, queued = station.queue.popleft()
                start(server, queued, waited_since, waiting, now)
            if closed:
                push(now, 0, client, -1, None, 0.0)
    connections = connection_counts(fleet, seed, chosen_by_client)
    return _result(fleet, seed, connections, requests, pairs, latencies, rejected)


def _result(
    fleet: Fleet,
    seed: int,
    connections: list[int],
    requests: list[int],
    pairs: set[tuple[int, int]],
    latencies: list[float],
    rejected: int,
) -> FleetResult:
    used = [0] * fleet.servers
    for _, server in pairs:
        used[server] += 1
    latencies.sort()
    return FleetResult(
        fleet=fleet,
        seed=seed,
        per_client=sum(connections) / fleet.clients,
        used_per_client=len(pairs) / fleet.clients,
        connections=Spread.of(connections),
        used=Spread.of(used),
        requests=Spread.of(requests),
        completed=len(latencies),
        rejected=rejected,
        mean=math.fsum(latencies) / len(latencies) if latencies else 0.0,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        server_requests=tuple(requests),
        server_connections=tuple(connections),
        server_used=tuple(used),
    )
