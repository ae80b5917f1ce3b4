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
from balancekit.integrations import Ejector
from balancekit.integrations.httpx import rewrite
from balancekit.integrations.requests import BalancedAdapter, _with_endpoint

from . import _dnsmasq

A, B, C = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ejection_doubles_until_an_answer_and_returns_after_its_time() -> None:
    lb = bk.RoundRobin([A, B, C])
    clock = Clock()
    ejector = Ejector(lb, eject=1.0, max_eject=3.0, clock=clock)
    ejector.connect_failed(A)
    assert not lb.stats()[A].up and ejector.ejected == {A: 1.0}
    ejector.connect_failed(A)  # already out: nothing changes
    assert ejector.ejected == {A: 1.0}
    clock.now = 0.99
    ejector.check()
    assert not lb.stats()[A].up
    clock.now = 1.0
    ejector.check()  # its time is over: back on trial
    assert lb.stats()[A].up and ejector.ejected == {}
    ejector.connect_failed(A)  # failed again on trial: twice as long
    assert ejector.ejected == {A: 3.0}
    clock.now = 3.0
    ejector.check()
    ejector.connect_failed(A)  # capped by max_eject
    assert ejector.ejected == {A: 6.0}
    clock.now = 6.0
    ejector.check()
    ejector.succeeded(A)  # it answered: history forgotten
    ejector.connect_failed(A)
    assert ejector.ejected == {A: 7.0}


def test_ejection_never_empties_the_pool_and_respects_other_mark_downs() -> None:
    lb = bk.RoundRobin([A, B])
    clock = Clock()
    ejector = Ejector(lb, clock=clock)
    ejector.connect_failed(A)
    ejector.connect_failed(B)  # the last one up stays up
    assert [s.up for s in lb.stats().values()] == [False, True]
    lb.add(C)
    lb.mark_down(C)  # marked down by someone else: never marked up by the ejector
    clock.now = 10.0
    ejector.check()
    assert lb.stats()[A].up and not lb.stats()[C].up


def test_ejection_of_an_endpoint_removed_meanwhile_is_forgotten() -> None:
    lb = bk.RoundRobin([A, B, C])
    clock = Clock()
    ejector = Ejector(lb, clock=clock)
    ejector.connect_failed(A)
    lb.remove(A)
    clock.now = 10.0
    ejector.check()
    assert ejector.ejected == {} and A not in lb
    ejector.connect_failed("10.9.9.9:80")  # not a member: ignored
    assert ejector.ejected == {}


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
