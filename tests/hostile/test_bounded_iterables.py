"""Every option that reads a caller's iterable reads it lazily and at most up to its maximum.

``StickySessions(key, previous_keys=range(-2**32, 0))`` built ``(key, *previous_keys)``, four
billion items, before checking one: the kernel killed a test run at 22.7 GB. The same shape
(``tuple(x)``, ``(*x)``, ``list(x)`` of a caller's iterable before any check) was in the guard
collections, and an endless iterable of *valid* items (the same Route, guard, key or address
again and again) was read forever by every option that checked items as it read them. Each
option now has a documented maximum (docs/architecture.md, "Limits").

Each case hands an option an endless iterable of valid items that counts what is read and
fails the test if more than ``maximum + 1`` items are asked for, so a regression fails at once
without eating memory. Options whose real maximum takes long to reach with valid items (a
million endpoints) are checked with the maximum patched down.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import balancekit as bk
import balancekit._endpoint
import balancekit.subset.random_subset
from balancekit import InvalidOption
from balancekit.guard import Chain, Signature, SignatureScreen, Verdict
from balancekit.keys import TrustedProxies
from balancekit.sticky import StickySessions
from balancekit.subset import RandomSubset

# The documented maxima (docs/architecture.md, "Limits"), as numbers: test_the_maxima_are_...
MAX_PREVIOUS_KEYS = 64
MAX_ROUTES = 100_000
MAX_ROUTE_ITEMS = 10_000
MAX_ITEMS = 10_000
MAX_RULE_IDS = MAX_ITEMS + 1  # a full screen's rules and its oversize rule
MAX_TRUSTED_PROXIES = 65_536
MAX_NAMESERVERS = 64
MAX_POOL_SIZE = 1_000_000

KEY = b"k" * 32
RULE = Signature("r", "x", triggers=("x",))
GUARD = bk.guard.ConcurrencyLimit(1)


class Counting(Iterator[Any]):
    """An endless iterator of ``make(n)``: fails the test on reading more than ``allowed``."""

    def __init__(self, make: Callable[[int], Any], allowed: int) -> None:
        self.make = make
        self.allowed = allowed
        self.read = 0

    def __next__(self) -> Any:
        self.read += 1
        if self.read > self.allowed:
            raise AssertionError(f"read {self.read} items, past the maximum + 1 ({self.allowed})")
        return self.make(self.read)


def _address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}:{1 + (n >> 24)}"


def _dns(items: Iterator[Any]) -> object:
    pytest.importorskip("dns")
    from balancekit.discovery import DNS

    return DNS("_http._tcp.example", nameservers=items)  # type: ignore[arg-type]


SMALL_POOL = 50  # MAX_POOL_SIZE (a million) patched down: a million valid addresses take ~30 s

# (id, call with the iterable, maximum, item maker, patch MAX_POOL_SIZE down)
CASES: list[tuple[str, Callable[[Iterator[Any]], object], int, Callable[[int], Any], bool]] = [
    ("sticky previous_keys", lambda it: StickySessions(KEY, previous_keys=it),
     MAX_PREVIOUS_KEYS, lambda n: KEY, False),
    ("Router routes", lambda it: bk.Router(it), MAX_ROUTES,
     lambda n: bk.Route("t", prefix="/"), False),
    ("Route host", lambda it: bk.Route("t", host=it), MAX_ROUTE_ITEMS,
     lambda n: f"h{n}.example", False),
    ("Route methods", lambda it: bk.Route("t", methods=it), MAX_ROUTE_ITEMS,
     lambda n: "GET", False),
    ("Chain guards", lambda it: Chain(it), MAX_ITEMS, lambda n: GUARD, False),
    ("Verdict.reject rule_ids", lambda it: Verdict.reject("x", status=403, rule_ids=it),
     MAX_RULE_IDS, lambda n: "r", False),
    ("Signature triggers", lambda it: Signature("r", "x", triggers=it), MAX_ITEMS,
     lambda n: "x", False),
    ("Signature fields", lambda it: Signature("r", "x", triggers=("x",), fields=it),
     MAX_ITEMS, lambda n: "path", False),
    ("SignatureScreen signatures", lambda it: SignatureScreen(it), MAX_ITEMS,
     lambda n: RULE, False),
    ("SignatureScreen skip_headers", lambda it: SignatureScreen(skip_headers=it), MAX_ITEMS,
     lambda n: "x-token", False),
    ("TrustedProxies", lambda it: TrustedProxies(it), MAX_TRUSTED_PROXIES,
     lambda n: "10.0.0.1", False),
    ("DNS nameservers", _dns, MAX_NAMESERVERS, lambda n: "127.0.0.1", False),
    ("RandomSubset.order", lambda it: RandomSubset(3, seed=1).order(it), SMALL_POOL,
     _address, True),
    ("RandomSubset.subset", lambda it: RandomSubset(3, seed=1).subset(it), SMALL_POOL,
     _address, True),
    ("balancer constructor", lambda it: bk.RoundRobin(it), SMALL_POOL, _address, True),
    ("Maglev constructor", lambda it: bk.Maglev(it), SMALL_POOL, _address, True),
    ("Static source", lambda it: bk.discovery.Static(it), SMALL_POOL, _address, True),
]  # fmt: skip


def test_the_maxima_are_the_documented_ones() -> None:
    import balancekit.discovery.dns
    import balancekit.guard._collection
    import balancekit.guard._verdict
    import balancekit.keys
    import balancekit.routing
    import balancekit.sticky

    assert balancekit.sticky.MAX_PREVIOUS_KEYS == MAX_PREVIOUS_KEYS
    assert balancekit.routing.MAX_ROUTES == MAX_ROUTES
    assert balancekit.routing.MAX_ROUTE_ITEMS == MAX_ROUTE_ITEMS
    assert balancekit.guard._collection.MAX_ITEMS == MAX_ITEMS
    assert balancekit.guard._verdict.MAX_RULE_IDS == MAX_RULE_IDS
    assert balancekit.keys.MAX_TRUSTED_PROXIES == MAX_TRUSTED_PROXIES
    assert balancekit.discovery.dns.MAX_NAMESERVERS == MAX_NAMESERVERS
    assert balancekit._endpoint.MAX_POOL_SIZE == MAX_POOL_SIZE


@pytest.mark.parametrize(
    ("call", "maximum", "make", "patch"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_an_endless_iterable_of_valid_items_is_refused_at_the_maximum(
    call: Callable[[Iterator[Any]], object],
    maximum: int,
    make: Callable[[int], Any],
    patch: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if patch:
        monkeypatch.setattr(balancekit._endpoint, "MAX_POOL_SIZE", maximum, raising=False)
        monkeypatch.setattr(
            balancekit.subset.random_subset, "MAX_POOL_SIZE", maximum, raising=False
        )
    items = Counting(make, maximum + 1)
    with pytest.raises(InvalidOption, match=rf"more than {maximum}\b"):
        call(items)
    assert items.read == maximum + 1


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda it: StickySessions(KEY, previous_keys=it), id="previous_keys"),
        pytest.param(lambda it: Chain(it), id="Chain"),
        pytest.param(lambda it: SignatureScreen(skip_headers=it), id="skip_headers"),
        pytest.param(lambda it: Signature("r", "x", triggers=it), id="triggers"),
        pytest.param(lambda it: Verdict.reject("x", status=403, rule_ids=it), id="rule_ids"),
        pytest.param(lambda it: bk.Route("t", host=it), id="host"),
        pytest.param(lambda it: bk.Router(it), id="routes"),
        pytest.param(lambda it: bk.RoundRobin(it), id="endpoints"),
    ],
)
@pytest.mark.parametrize(
    "huge",
    [range(-(2**32), 0), range(10**12), range(0, 10**30, 7)],
    ids=["reported", "1e12", "beyond-ssize_t"],
)
def test_a_huge_range_is_refused_without_being_read(
    call: Callable[[Any], object], huge: range
) -> None:
    # A range is a collection of any length in O(1) memory: refused by its length, or at its
    # first item (an int is no key, guard or address); in bounded time either way.
    with pytest.raises(bk.BalancekitError):
        call(huge)


def test_update_with_an_endless_list_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balancekit._endpoint, "MAX_POOL_SIZE", SMALL_POOL, raising=False)
    lb = bk.RoundRobin(["a:1", "b:1"])
    items = Counting(_address, SMALL_POOL + 1)
    with pytest.raises(InvalidOption, match=r"balancekit\.subset"):
        lb.update(items)
    assert items.read == SMALL_POOL + 1
    assert [e.address for e in lb.endpoints] == ["a:1", "b:1"]


def test_the_real_endpoint_maximum_refuses_a_long_list_unread() -> None:
    # The maximum itself (not patched): a list one longer is refused by its length alone.
    too_many = list(itertools.repeat("a:1", MAX_POOL_SIZE + 1))
    with pytest.raises(InvalidOption, match="more than 1000000"):
        bk.RoundRobin(too_many)


def test_the_sticky_maximum_takes_a_rotation_of_64_keys() -> None:
    keys = [bytes([n]) * 32 for n in range(MAX_PREVIOUS_KEYS)]
    sticky = StickySessions(KEY, previous_keys=keys)
    assert sticky.verify(StickySessions(keys[-1]).issue("a:1")) == "a:1"


def test_select_refuses_a_range_to_avoid() -> None:
    # range(10**12) passed the Collection check and was scanned item by item on each select;
    # range(3) first, so the old code fails here instead of scanning for hours.
    lb = bk.RoundRobin(["a:1", "b:1"])
    for avoid in (range(3), range(10**12)):
        with pytest.raises(InvalidOption, match="avoid must be a collection of addresses"):
            lb.select(avoid=avoid)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS as on the CI runners")
def test_the_reported_sticky_case_in_a_process_capped_at_1_gib() -> None:
    # The exact report, where the old code exhausts memory: capped, it would die of MemoryError
    # in seconds instead of taking the machine down.
    script = textwrap.dedent(
        """
        import resource, balancekit.sticky as s
        cap = 1 << 30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            s.StickySessions(b"k" * 32, previous_keys=range(-2**32, 0))
        except s.InvalidOption as e:
            print("refused:", e)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused: previous_keys holds more than 64 items" in done.stdout


def test_dns_nameservers_from_a_generator_are_all_configured() -> None:
    # The check consumed a generator, so list(nameservers) configured no nameserver at all.
    pytest.importorskip("dns")
    from balancekit.discovery import DNS

    wanted = ["127.0.0.1", "127.0.0.2"]
    source = DNS("_http._tcp.example", nameservers=(n for n in wanted))  # type: ignore[arg-type]
    assert source._sync.nameservers == wanted
    assert source._async.nameservers == wanted


def test_a_full_screen_can_still_name_every_rule_it_fired() -> None:
    # The largest screen (10,000 signatures) matching everything, plus its oversize rule: the
    # rejection names 10,001 ids, within Verdict.reject's own maximum.
    rules = [Signature(f"r{n}", "x", triggers=("x",)) for n in range(MAX_ITEMS)]
    screen = SignatureScreen(rules, field_limit=4, oversize="reject")
    verdict = screen.check(bk.Request(path="/xxxxxxxx", headers=[("a", "x")]))
    assert verdict.rule_ids[:2] == ("screen-oversize", "r0")
    assert len(verdict.rule_ids) == MAX_ITEMS + 1
