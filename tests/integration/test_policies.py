"""The integrations' pure parts, without a network: ejection, URL rewriting, refresh schedule."""

from __future__ import annotations

import math
import subprocess
import sys

import httpx
import pytest
import requests

import balancekit as bk
from balancekit.discovery import Snapshot, Static, Watcher
from balancekit.health import Ejected, HealthEvent
from balancekit.integrations._eject import connect_health, connect_only
from balancekit.integrations.httpx import rewrite
from balancekit.integrations.requests import BalancedAdapter, _with_endpoint

from . import _dnsmasq

A, B, C = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_connect_failures_eject_at_once_for_longer_on_repeats_until_max_eject() -> None:
    clock = Clock()
    events: list[HealthEvent] = []
    lb = bk.with_health(
        bk.RoundRobin([A, B, C], clock=clock), connect_only(1.0, 3.0), on_event=events.append
    )
    tracker = connect_health(lb, 1.0, 3.0, explicit=True)  # the same times: this one is used
    assert tracker is not None and bk.health_of(lb) is tracker
    assert tracker.connect_failed(A)
    assert tracker.ejected() == [A] and lb.stats()[A].up  # ejected, never marked down
    assert not tracker.connect_failed(A)  # already out: nothing changes
    assert not tracker.connect_failed("10.9.9.9:80")  # not a member: ignored
    clock.now = 0.99
    assert {lb.select().address for _ in range(4)} == {B, C}
    clock.now = 1.0
    assert A in {lb.select().address for _ in range(3)}  # its time is over
    tracker.connect_failed(A)  # failed again at once: twice as long
    tracker.connect_failed(B)  # any number at once: only refused connections eject
    clock.now = 3.0
    lb.select()
    tracker.connect_failed(A)  # the third in a row: capped by max_eject (3 s)
    untils = [(e.address, e.at, e.until) for e in events if isinstance(e, Ejected)]
    assert untils == [(A, 0.0, 1.0), (A, 1.0, 3.0), (B, 1.0, 2.0), (A, 3.0, 6.0)]
    assert all(e.reason == "connect_failure" for e in events if isinstance(e, Ejected))


def test_an_ejection_ending_never_undoes_an_operators_mark_down() -> None:
    clock = Clock()
    lb = bk.RoundRobin([A, B, C], clock=clock)
    tracker = connect_health(lb, 1.0, 30.0, explicit=False)
    assert tracker is not None
    tracker.connect_failed(A)
    lb.mark_down(A)  # an operator drains A while it is ejected
    clock.now = 10.0  # the ejection is over
    assert {lb.select().address for _ in range(6)} == {B, C}
    assert not lb.stats()[A].up and not lb.stats()[A].ejected  # drained until mark_up
    lb.mark_up(A)
    assert A in {lb.select().address for _ in range(3)}


def test_the_balancers_own_health_is_used_and_explicit_times_must_agree_with_it() -> None:
    own = bk.with_health(bk.RoundRobin([A, B, C]), bk.PassiveHealth(base_ejection=7.0))
    assert connect_health(own, 1.0, 30.0, explicit=False) is bk.health_of(own)
    with pytest.raises(bk.InvalidOption, match="has its own"):
        BalancedAdapter(own, eject=2.0)
    assert connect_health(own, None, 30.0, explicit=True) is None
    plain = bk.RoundRobin([A, B])
    first = BalancedAdapter(plain, eject=2.0, max_eject=4.0)
    assert BalancedAdapter(plain, eject=2.0, max_eject=4.0).health is first.health  # agree
    with pytest.raises(bk.InvalidOption, match="has its own"):
        BalancedAdapter(plain, eject=3.0, max_eject=4.0)
    with pytest.raises(bk.InvalidOption, match="balancer's clock"):
        BalancedAdapter(bk.RoundRobin([A]), clock=Clock())  # type: ignore[call-arg]


def test_urls_are_rewritten_to_the_endpoint_and_the_host_kept() -> None:
    request = httpx.Request("GET", "https://users:8443/a/b?c=1", headers={"x": "y"})
    sent = rewrite(request, bk.Endpoint("[2001:db8::1]:9000"), "logical")
    assert str(sent.url) == "https://[2001:db8::1]:9000/a/b?c=1"
    assert sent.headers["host"] == "users:8443" and sent.headers["x"] == "y"
    assert sent.extensions["sni_hostname"] == "users"
    sent = rewrite(request, bk.Endpoint("10.0.0.1:9000"), "endpoint")
    assert sent.headers["host"] == "10.0.0.1:9000" and "sni_hostname" not in sent.extensions
    assert _with_endpoint("http://u:p@users/x?y#z", bk.Endpoint(A)) == f"http://{A}/x?y#z"


def test_adapter_options_are_validated() -> None:
    lb = bk.RoundRobin([A])
    with pytest.raises(bk.InvalidOption):
        BalancedAdapter(lb, adapter=requests.Session())  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        BalancedAdapter(lb, eject=2.0, max_eject=1.0)


class Flaky:
    """A source answering from a list: a Snapshot, or an exception to raise."""

    def __init__(self, answers: list[Snapshot | Exception]) -> None:
        self.answers = answers

    def resolve(self) -> Snapshot:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_refresh_interval_follows_the_ttl_and_backs_off_on_errors() -> None:
    lb = bk.WeightedRoundRobin()
    ok = Snapshot((bk.Endpoint(A, weight=2),), 0.0)
    answers: list[Snapshot | Exception] = [
        ok,
        Snapshot((bk.Endpoint(B),), 42.0),
        Snapshot((bk.Endpoint(B),), 1e9),
        OSError("timeout"),
        OSError("timeout"),
        Snapshot((), 5.0),
    ]
    watcher = Watcher(lb, Flaky(answers), min_interval=0.5, max_interval=60, error_interval=2)
    watcher.refresh()
    assert watcher.interval == 0.5  # TTL 0 is clamped to min_interval
    assert {e.address: e.weight for e in lb.endpoints} == {A: 2}
    watcher.refresh()
    assert watcher.interval == 42.0 and [e.address for e in lb.endpoints] == [B]
    watcher.refresh()
    assert watcher.interval == 60  # clamped to max_interval
    for expected in (2.0, 4.0, 8.0):
        with pytest.raises(Exception) as caught:
            watcher.refresh()
        watcher.failed(caught.value)
        assert watcher.interval == expected
    assert [e.address for e in lb.endpoints] == [B]  # kept through errors and an empty answer
    assert watcher.errors == 3 and watcher.refreshes == 3


def test_a_static_watcher_never_refreshes_again() -> None:
    lb = bk.RoundRobin()
    with Watcher(lb, Static([A])) as watcher:
        assert watcher.interval == math.inf and watcher.refreshes == 1


def test_missing_dnsmasq_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dnsmasq, "DNSMASQ", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="missing in CI"):
        _dnsmasq.require_dnsmasq()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _dnsmasq.require_dnsmasq()


def test_the_core_imports_no_http_or_dns_library() -> None:
    code = (
        "import sys, balancekit as bk\n"
        "heavy = {'httpx', 'requests', 'dns', 'httpcore', 'urllib3'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "assert bk.httpx.BalancedTransport and 'httpx' in sys.modules\n"
        "assert bk.requests.BalancedAdapter and bk.discovery.DNS and 'dns' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
