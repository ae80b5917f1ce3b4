"""Delta refresh: a membership or health change costs what changed, not the pool.

Every change (``add``, ``remove``, ``update``, ``set_weight``, ``mark_down``/``mark_up``, a
health ejection or return, an active-check verdict, a slow-start step) names the endpoints it
*touched*. :func:`sync` re-classifies only those (not a member / down / up but unhealthy / up
and healthy), keeps the counts the panic threshold reads (members up, and healthy among them)
without recounting, updates the base's eligible list (join order) and address index, and hands
the strategy a :class:`Delta`: which endpoints became eligible, which stopped being eligible,
which eligible ones changed weight, and which joined or left the membership. O(touched) plus
O(log n) per changed endpoint (a bisection and a ``list`` insert or delete, a memmove of at
most n pointers); a panic transition touches the unhealthy endpoints, and a slow-start scale
change (the first ramp starts or the last one ends) re-weights every member, both O(n) and rare.

The eligible list is what ``BalancerBase._eligible()`` would compute from scratch, in the same
order: members that are up, filtered by the health tracker, in the order they were admitted
(``EndpointState.seq``, set at each admission as the membership dict's order is). The
stateful tests check the two agree after every step.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Final, NamedTuple

from ._state import EndpointState

if TYPE_CHECKING:
    from ._core import BalancerBase

__all__ = ["Delta", "sync"]

_seq: Final = attrgetter("seq")


class Delta(NamedTuple):
    """What one change did to the eligible endpoints, as a strategy's ``_apply`` receives it.

    Every list is in join order. ``added``: eligible now, not before (new, marked up, back from
    ejection, or in panic). ``removed``: eligible before, not now. ``reweighted``: eligible
    before and now, with ``state.weight`` changed since the strategy last saw it. ``joined`` /
    ``left``: endpoints that became or stopped being members (eligible or not), for strategies
    that keep per-member records. ``moved``: every endpoint whose class changed (joined, left,
    marked down or up, ejected or back, failing or passing checks), eligible or not.
    ``full``: the whole pool was re-examined (the first build, a health tracker attached): a
    strategy may rebuild from the eligible list instead. ``before``: ``id(state)`` -> the weight
    the strategy last saw, for every endpoint in ``removed`` and ``reweighted``.
    """

    added: list[EndpointState]
    removed: list[EndpointState]
    reweighted: list[EndpointState]
    joined: list[EndpointState]
    left: list[EndpointState]
    moved: list[EndpointState]
    full: bool
    before: dict[int, int]

    @property
    def size(self) -> int:
        """How many eligible endpoints changed (added, removed or re-weighted)."""
        return len(self.added) + len(self.removed) + len(self.reweighted)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.reweighted or self.moved)


def _classify(lb: BalancerBase, state: EndpointState) -> int:
    """-1 not a member, 0 down, 1 up but unhealthy (ejected, failing checks), 2 up and healthy."""
    if lb._members.get(state.endpoint.address) is not state:
        return -1
    if not state.up:
        return 0
    health = lb._health
    return 1 if health is not None and not health.healthy(state) else 2


def _relist(
    eligible: list[EndpointState], added: list[EndpointState], removed: list[EndpointState]
) -> None:
    """Take ``removed`` out of the join-ordered ``eligible`` and put ``added`` in: a bisection
    and a memmove each, or for many (a first build, a large update) one filter or one sort,
    O(n) in C (timsort merges the appended run with the sorted list)."""
    if len(removed) > 8 + len(eligible) // 32:
        eligible[:] = [state for state in eligible if state.applied is not None]
    else:
        for state in removed:
            index = bisect_left(eligible, state.seq, key=_seq)
            assert eligible[index] is state
            del eligible[index]
    if len(added) > 8:
        eligible.extend(added)
        eligible.sort(key=_seq)
    else:
        for state in added:
            insort(eligible, state, key=_seq)


def sync(lb: BalancerBase, touched: Iterable[EndpointState], full: bool = False) -> Delta:
    """Bring the base's eligible structures up to date with ``touched`` and tell the strategy.

    Called under the balancer's lock, after the change itself (flags, weights, membership).
    """
    unique: dict[int, EndpointState] = {id(state): state for state in touched}
    health = lb._health
    if health is not None:
        health.before_sync(list(unique.values()))
    joined: list[EndpointState] = []
    left: list[EndpointState] = []
    moved: list[EndpointState] = []
    unhealthy = lb._unhealthy
    for key, state in unique.items():
        old, new = state.cls, _classify(lb, state)
        if old == new:
            continue
        state.cls = new
        moved.append(state)
        lb._up_count += (new > 0) - (old > 0)
        lb._healthy_count += (new == 2) - (old == 2)
        if old == 1:
            del unhealthy[key]
        elif new == 1:
            unhealthy[key] = state
        if old == -1:
            joined.append(state)
        elif new == -1:
            left.append(state)
    panic = False
    if health is not None:
        was = health.panic
        panic = health.panic_now(lb._healthy_count, lb._up_count)
        if panic != was:  # every unhealthy endpoint comes into (or leaves) rotation
            for key, state in unhealthy.items():
                unique[key] = state
    added: list[EndpointState] = []
    removed: list[EndpointState] = []
    before: dict[int, int] = {}
    eligible, by_address = lb._eligible_list, lb._eligible_by_address
    for state in unique.values():
        cls = state.cls
        now = cls == 2 or (cls == 1 and panic)
        if now == (state.applied is not None):
            continue
        if now:
            added.append(state)
            by_address[state.endpoint.address] = state
            state.applied = -1  # listed; the weight is recorded below
        else:
            removed.append(state)
            if by_address.get(state.endpoint.address) is state:
                del by_address[state.endpoint.address]
            applied = state.applied
            if applied is not None and applied != -1:
                before[id(state)] = applied
            state.applied = None
    _relist(eligible, added, removed)
    weighed: Iterable[EndpointState] = unique.values()
    if health is not None:
        more = health.after_sync(added, removed, list(unique.values()), full)
        if more is not None:
            weighed = more
    reweighted: list[EndpointState] = []
    for state in weighed:
        applied = state.applied
        if applied is None:
            continue
        if applied == -1:  # newly added: the strategy sees its weight in `added`
            state.applied = state.weight
        elif applied != state.weight:
            reweighted.append(state)
            before[id(state)] = applied
            state.applied = state.weight
    for state in added:  # a tracker may hand back a subset: every new one gets its weight
        state.applied = state.weight
    if len(added) > 1:
        added.sort(key=_seq)
    if len(removed) > 1:
        removed.sort(key=_seq)
    if len(reweighted) > 1:
        reweighted.sort(key=_seq)
    return Delta(added, removed, reweighted, joined, left, moved, full, before)
