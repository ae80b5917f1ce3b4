"""Delta refresh (issue 11): after any sequence of changes, every strategy's incrementally kept
index equals one built from scratch.

Each machine drives three balancers of one strategy with the same operations: ``lb`` (delta
refresh, what the library does), ``twin`` (the same class whose ``_apply`` is the base's
fallback: ``_rebuild`` of the whole eligible list after every change, what main did), and,
after every step, ``fresh``: a new balancer built from the final eligible endpoints alone (join
order, effective weights). After every step:

* the base's eligible list, address index and panic counts equal the from-scratch computation
  (``_check_invariants`` of both, which also checks each strategy's own structures);
* ``lb``'s index holds the same endpoints with the same weights as ``twin``'s and ``fresh``'s;
* where the index does not depend on history it answers exactly as ``fresh``: the same draw for
  the same uniform number (weighted random, P2C, PeakEWMA), the same schedule (round robin), the
  same continuum and lookups (IPHash, Ketama, BoundedLoadHash, Rendezvous);
* where it does (NGINX's carried ``current_weight``, JumpHash's bucket history, A58's
  counters), ``lb`` and ``twin`` make the same picks, pick for pick, for deterministic
  strategies. For WeightedRoundRobin the online threshold is lowered so pools switch between
  the precomputed schedule and NGINX's loop stepped online (``SmoothOnline``) and both are
  compared with the precomputed reference.

Operations: add, remove, update (a new set with weights), set_weight, mark_down, mark_up, and
with health: an ejection (``connect_failed``), time passing (ejections end, slow-start ramps
step); panic (threshold one half) is reached when half the pool is ejected or down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import balancekit as bk
from balancekit._core import BalancerBase
from balancekit.health import health_of
from balancekit.strategies import round_robin

ADDRESSES = [f"10.11.0.{i}:80" for i in range(1, 10)]
WEIGHTS = st.integers(1, 6)
KEYS = [f"key-{i}" for i in range(40)]
UNIFORMS = [i / 37 for i in range(37)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Factory = Callable[[list[bk.Endpoint], Clock], BalancerBase]
# name, factory(class), kind of comparison, health (None / "passive" / "slow")
CASES: list[tuple[str, type[BalancerBase], dict[str, Any], str, str | None]] = [
    ("RoundRobin", bk.RoundRobin, {}, "schedule", "slow"),
    ("WeightedRoundRobin", bk.WeightedRoundRobin, {}, "picks", "slow"),
    ("WeightedRoundRobin-plain", bk.WeightedRoundRobin, {}, "picks", None),
    ("WeightedRoundRobin-envoy", bk.WeightedRoundRobin, {"order": "envoy"}, "picks", None),
    ("Random", bk.Random, {"seed": 1}, "uniform", "passive"),
    ("WeightedRandom", bk.WeightedRandom, {"seed": 2}, "line", "slow"),
    ("PowerOfTwoChoices", bk.PowerOfTwoChoices, {"seed": 3}, "line", "slow"),
    ("PeakEWMA", bk.PeakEWMA, {"seed": 4}, "line", "passive"),
    ("LeastConnections", bk.LeastConnections, {}, "heap", "slow"),
    ("LeastResponseTime", bk.LeastResponseTime, {}, "heap", "passive"),
    ("LoadReportWeightedRoundRobin", bk.LoadReportWeightedRoundRobin, {}, "picks", "passive"),
    ("JumpHash", bk.JumpHash, {}, "picks", "passive"),
    ("Rendezvous", bk.Rendezvous, {}, "lookups", "passive"),
    ("IPHash", bk.IPHash, {"replicas": 20}, "lookups", "passive"),
    ("Ketama", bk.Ketama, {}, "lookups", None),
    ("Ketama-uhashring", bk.Ketama, {"compat": "uhashring"}, "lookups", "passive"),
    ("BoundedLoadHash", bk.BoundedLoadHash, {"replicas": 20}, "lookups", None),
]


def full_rebuild_twin(cls: type[BalancerBase]) -> type[BalancerBase]:
    """``cls`` with the base's fallback ``_apply``: a rebuild from the whole eligible list."""
    return type(f"FullRebuild{cls.__name__}", (cls,), {"_apply": BalancerBase._apply})


def index_of(lb: Any, kind: str) -> list[tuple[str, int]]:
    """The endpoints (address, weight) the strategy's own index holds, in its order."""
    if kind == "schedule":
        states = list(lb._schedule)
    elif kind == "uniform":
        states = list(lb._uniform.states)
    elif kind == "line":
        states = list(lb._table.states)
    elif kind == "heap":
        entries = list(lb._heap)  # LeastConnections: the heap and its runs (least_conn.py)
        entries += [e for run in getattr(lb, "_runs", {}).values() for e in run.entries]
        live = list({id(e[3]): e[3] for e in entries if e[3].rank is e}.values())
        states = sorted(live, key=lambda state: state.seq)
    elif isinstance(lb, bk.WeightedRoundRobin | bk.LoadReportWeightedRoundRobin):
        states = list(lb._eligible_list)
    elif isinstance(lb, bk.JumpHash):
        holders = [s for s in lb._published.holders if s is not None]
        states = sorted(set(holders), key=lambda state: state.seq)
        assert all(holders.count(s) == s.weight for s in states)
    elif isinstance(lb, bk.Rendezvous):
        states = list(lb._bidders[2])
    else:  # the rings
        owners = {state for _, state in lb._ring.items()}
        states = sorted(owners, key=lambda state: state.seq)
    return [(state.endpoint.address, state.weight) for state in states]


def make_machine(
    name: str, cls: type[BalancerBase], options: dict[str, Any], kind: str, health: str | None
) -> type[RuleBasedStateMachine]:
    twin_cls = full_rebuild_twin(cls)

    class DeltaMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = Clock()
            self.lb: Any = None
            self.twin: Any = None

        def build(self, target: type[BalancerBase], endpoints: list[bk.Endpoint]) -> Any:
            lb = target(endpoints, clock=self.clock, **options)
            if health is not None:
                passive = bk.PassiveHealth(
                    consecutive_failures=1,
                    max_ejection_share=1.0,
                    base_ejection=5.0,
                    panic_threshold=0.5,
                )
                slow = bk.SlowStart(window=4.0, steps=4) if health == "slow" else None
                lb = bk.with_health(lb, passive, slow_start=slow)
            return lb

        @initialize(
            weights=st.lists(WEIGHTS, min_size=0, max_size=len(ADDRESSES)),
        )
        def start(self, weights: list[int]) -> None:
            endpoints = [
                bk.Endpoint(address, weight=weight)
                for address, weight in zip(ADDRESSES, weights, strict=False)
            ]
            self.lb = self.build(cls, endpoints)
            self.twin = self.build(twin_cls, endpoints)

        def both(self, action: Callable[[Any], object]) -> None:
            outcomes = []
            for lb in (self.lb, self.twin):
                try:
                    outcomes.append(("ok", action(lb)))
                except bk.BalancekitError as exc:
                    outcomes.append(("error", type(exc).__name__))
            assert outcomes[0] == outcomes[1]

        @rule(address=st.sampled_from(ADDRESSES), weight=WEIGHTS)
        def add(self, address: str, weight: int) -> None:
            self.both(lambda lb: lb.add(bk.Endpoint(address, weight=weight)))

        @rule(address=st.sampled_from(ADDRESSES))
        def remove(self, address: str) -> None:
            self.both(lambda lb: lb.remove(address))

        @rule(address=st.sampled_from(ADDRESSES), weight=WEIGHTS)
        def set_weight(self, address: str, weight: int) -> None:
            self.both(lambda lb: lb.set_weight(address, weight))

        @rule(wanted=st.dictionaries(st.sampled_from(ADDRESSES), WEIGHTS, max_size=8))
        def update(self, wanted: dict[str, int]) -> None:
            endpoints = [bk.Endpoint(a, weight=w) for a, w in wanted.items()]
            self.both(lambda lb: lb.update(endpoints))

        @rule(address=st.sampled_from(ADDRESSES), up=st.booleans())
        def mark(self, address: str, up: bool) -> None:
            self.both(lambda lb: lb.mark_up(address) if up else lb.mark_down(address))

        @rule(address=st.sampled_from(ADDRESSES))
        def eject(self, address: str) -> None:
            if health is not None:
                self.both(lambda lb: health_of(lb).connect_failed(address))  # type: ignore[union-attr]

        @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 6.0]))
        def time_passes(self, seconds: float) -> None:
            self.clock.now += seconds
            self.both(lambda lb: lb._catch_up_health())

        @rule(count=st.integers(1, 12), key=st.sampled_from(KEYS))
        def picks(self, count: int, key: str) -> None:
            """The same picks from both (deterministic strategies): the delta-kept index and
            the rebuilt one are in the same state, carried weights and history included."""
            if kind != "picks":
                return

            def pick(lb: Any) -> str:
                lease = lb.select(key)
                lb.release(lease)
                return str(lease.address)

            for _ in range(count):
                self.both(pick)

        @invariant()
        def equals_from_scratch(self) -> None:
            if self.lb is None:
                return
            self.lb._check_invariants()
            self.twin._check_invariants()
            ours, theirs = index_of(self.lb, kind), index_of(self.twin, kind)
            eligible = [(s.endpoint.address, s.weight) for s in self.lb._eligible()]
            assert sorted(ours) == sorted(theirs) == sorted(eligible)
            endpoints = [bk.Endpoint(a, weight=w) for a, w in eligible]
            fresh: Any = cls(endpoints, clock=self.clock, **options)
            if kind in ("schedule", "uniform", "line"):
                assert ours == index_of(fresh, kind) == eligible  # join order too
            if kind == "line" and eligible:
                draws = [self.lb._table.draw(u).endpoint.address for u in UNIFORMS]
                assert draws == [fresh._table.draw(u).endpoint.address for u in UNIFORMS]
            if kind == "lookups":
                assert ours == index_of(fresh, kind) or isinstance(fresh, bk.Rendezvous)
                if isinstance(fresh, bk.IPHash | bk.Ketama):
                    assert self.lb.continuum() == fresh.continuum()
                if eligible and not self.lb._outstanding:
                    mine = [self.lb.lookup(key).address for key in KEYS]
                    assert mine == [fresh.lookup(key).address for key in KEYS]

    DeltaMachine.__name__ = f"Delta{name.replace('-', '')}"
    return DeltaMachine


MACHINES = {case[0]: make_machine(*case) for case in CASES}


@pytest.mark.parametrize("name", list(MACHINES))
def test_incremental_equals_from_scratch(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name.startswith("WeightedRoundRobin"):  # pools switch between both modes
        monkeypatch.setattr(round_robin, "SMALL_POOL", 2)
        monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", 40)
    machine = MACHINES[name]
    machine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
