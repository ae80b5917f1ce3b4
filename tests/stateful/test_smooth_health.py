"""WeightedRoundRobin against NGINX's loop with a health tracker, slow start and ``avoid``.

The model (``ngx_http_upstream_get_peer``'s loop, ``ngx_http_upstream_round_robin.c``) follows
the balancer's eligibility and weights after every release and before every pick: an ejected
endpoint is skipped and keeps its ``current_weight`` as a ``down`` peer does; a changed weight
(``set_weight``, ``update``, a slow start step, slow start's scale) starts at 0; one changed
while out of rotation starts at 0 when it comes back. Picks must equal the model's, in every
mode: precomputed, stepped online, online with a cycle's lookup (issue 15, smooth.Lap), and
switching between them (thresholds scaled down). An avoided pick advances the sequence and
returns an eligible endpoint not avoided.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import balancekit as bk
from balancekit.strategies import round_robin

ADDRESSES = [f"10.3.0.{i}:80" for i in range(1, 13)]
WEIGHTS = st.integers(1, 6)


class _Peer:
    def __init__(self, weight: int, reweights: int) -> None:
        self.weight, self.current, self.reweights, self.eligible = weight, 0, reweights, True


class SmoothHealth(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.lb = bk.WeightedRoundRobin(clock=lambda: self.now)
        # id(EndpointState) -> (that state, the model's peer): the state is kept so that its id
        # cannot be reused by a new state (a removed and re-added endpoint is a new peer)
        self.peers: dict[int, tuple[object, _Peer]] = {}
        self.health = False

    def _eligible(self) -> dict[str, object]:
        return self.lb._eligible_by_address  # type: ignore[return-value]

    def _sync(self) -> list[tuple[str, _Peer]]:
        """The model's peers in NGINX's list order (join order), following the balancer."""
        members = sorted(self.lb._members.values(), key=lambda state: state.seq)
        known = self.peers
        self.peers = {
            id(s): known[id(s)]
            if id(s) in known and known[id(s)][0] is s
            else (s, _Peer(s.weight, s.reweights))
            for s in members
        }
        order = []
        for state in members:
            peer = self.peers[id(state)][1]
            if state.endpoint.address in self._eligible():
                if peer.weight != state.weight or (
                    not peer.eligible and peer.reweights != state.reweights
                ):
                    peer.weight, peer.current = state.weight, 0
                peer.reweights, peer.eligible = state.reweights, True
                order.append((state.endpoint.address, peer))
            else:
                peer.eligible = False
        return order

    def _get_peer(self) -> str | None:
        best: tuple[str, _Peer] | None = None
        total = 0
        for address, peer in self._sync():
            peer.current += peer.weight
            total += peer.weight
            if best is None or peer.current > best[1].current:
                best = (address, peer)
        if best is None:
            return None
        best[1].current -= total
        return best[0]

    @rule(n=st.integers(1, 120), fail_every=st.integers(0, 8), avoiding=st.booleans())
    def select(self, n: int, fail_every: int, avoiding: bool) -> None:
        for i in range(n):
            self.lb._catch_up_health()  # the select's own catch-up would change the model late
            expected = self._get_peer()
            if expected is None:
                with pytest.raises(bk.NoEndpointAvailable):
                    self.lb.select()
                return
            avoid = (expected,) if avoiding and i % 5 == 2 and len(self._eligible()) > 1 else ()
            lease = self.lb.select(avoid=avoid)
            if avoid:
                assert lease.address != expected and lease.address in self._eligible()
            else:
                assert lease.address == expected
            self.lb.release(lease, ok=not (fail_every and i % fail_every == 0))
            # A weight change is an event: a release that ejects changes weights (slow start's
            # scale falls to 1 when the last ramping endpoint leaves), and the next pick's
            # catch-up may change them back; each change restarts current_weight at 0, as
            # between two rules (the invariant's _sync), so the model looks after each release.
            self._sync()
            self.now += 0.3

    @rule(address=st.sampled_from(ADDRESSES), weight=WEIGHTS)
    def add_or_remove(self, address: str, weight: int) -> None:
        if address in self.lb:
            self.lb.remove(address)
        else:
            self.lb.add(bk.Endpoint(address, weight=weight))

    @rule(address=st.sampled_from(ADDRESSES), weight=WEIGHTS)
    def set_weight(self, address: str, weight: int) -> None:
        if address in self.lb:
            self.lb.set_weight(address, weight)

    @rule(address=st.sampled_from(ADDRESSES), down=st.booleans())
    def mark(self, address: str, down: bool) -> None:
        if address in self.lb:
            (self.lb.mark_down if down else self.lb.mark_up)(address)

    @rule(wanted=st.lists(st.tuples(st.sampled_from(ADDRESSES), WEIGHTS), max_size=12))
    def update(self, wanted: list[tuple[str, int]]) -> None:
        self.lb.update([bk.Endpoint(a, weight=w) for a, w in dict(wanted).items()])

    @rule(slow=st.booleans())
    def attach_health(self, slow: bool) -> None:
        if not self.health:
            self.health = True
            passive = bk.PassiveHealth(
                consecutive_failures=2,
                base_ejection=5.0,
                max_ejection=20.0,
                interval=2.0,
                max_ejection_share=0.5,
                panic_threshold=0.3,
            )
            ramp = bk.SlowStart(window=6.0, steps=3, min_share=0.2) if slow else None
            bk.with_health(self.lb, passive, slow_start=ramp)

    @rule(seconds=st.floats(0, 10))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def structures_agree(self) -> None:
        self.lb._check_invariants()
        self._sync()


@pytest.mark.parametrize(
    "small, budget, lap_limit",
    [(0, 0, 1 << 18), (0, 0, 30), (3, 40, 1 << 18), (64, 2048, 1 << 18)],
    ids=["online", "online-no-lap", "switching", "precomputed"],
)
def test_smooth_wrr_with_health_matches_nginx(
    small: int, budget: int, lap_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(round_robin, "SMALL_POOL", small)
    monkeypatch.setattr(round_robin, "PRECOMPUTE_BUDGET", budget)
    monkeypatch.setattr(round_robin, "LAP_LIMIT", lap_limit)
    run_state_machine_as_test(
        SmoothHealth, settings=settings(max_examples=60, stateful_step_count=30, deadline=None)
    )


def test_weights_changed_twice_between_two_picks_restart_at_zero() -> None:
    """Found by hypothesis (the model looked at weights only before each pick then): a release
    ejects the last ramping endpoint, so slow start's scale falls to 1 (every weight / 3), and
    the next pick's catch-up returns another endpoint to its ramp (every weight x 3 again). Each
    change is an event that restarts current_weight at 0, as NGINX replacing a peer does; the
    model now looks after each release, and the balancer's picks are NGINX's."""
    machine = SmoothHealth()
    machine.attach_health(slow=True)
    machine.update(
        wanted=[
            ("10.3.0.1:80", 1),
            ("10.3.0.2:80", 5),
            ("10.3.0.3:80", 6),
            ("10.3.0.4:80", 1),
            ("10.3.0.5:80", 2),
            ("10.3.0.6:80", 3),
            ("10.3.0.7:80", 5),
        ]
    )
    machine.add_or_remove(address="10.3.0.1:80", weight=1)
    machine.select(avoiding=False, fail_every=4, n=79)
    machine.structures_agree()
    machine.teardown()
