"""balancekit.discovery.Etcd against a real etcd (started by the fixture, stopped by its PID)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import balancekit as bk
from balancekit.discovery import AsyncWatcher, Etcd, Watcher

from ._etcd import EtcdServer
from .conftest import wait_until

PREFIX = "services/api/"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _members(lb: bk.Balancer) -> dict[str, int]:
    return {e.address: e.weight for e in lb.endpoints}


def test_the_prefix_lists_endpoints_with_weights_and_metadata_bad_keys_skipped(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    etcd.put(PREFIX + "10.0.0.1:80", {"weight": 3, "metadata": {"zone": "a"}})
    etcd.put(PREFIX + "10.0.0.2:80")  # no value: weight 1
    etcd.put(PREFIX + "[2001:DB8::1]:0443", {"metadata": {"v": [1, 2]}})
    etcd.put("services/apiary/10.0.0.9:80")  # another prefix
    etcd.put("services/api0", b"")  # just past the prefix
    etcd.put(PREFIX + "10.0.0.3:80", b"{not json")
    etcd.put(PREFIX + "no port", {"weight": 1})
    etcd.put(PREFIX + "10.0.0.4:80", {"weight": 2_000_000})
    etcd.put(PREFIX + "10.0.0.5:80", {"weight": "2"})
    etcd.put(PREFIX + "10.0.0.6:80", b"[" * 50_000)
    etcd.put(PREFIX + "10.0.0.7:80", b'{"weight": 1, "metadata": "x"}')
    source = Etcd(PREFIX, url=etcd.url)
    with caplog.at_level(logging.WARNING, logger="balancekit.discovery"):
        snapshot = source.resolve()
    got = {e.address: (e.weight, dict(e.metadata)) for e in snapshot.endpoints}
    assert got == {
        "10.0.0.1:80": (3, {"zone": "a"}),
        "10.0.0.2:80": (1, {}),
        "[2001:db8::1]:443": (1, {"v": [1, 2]}),
    }
    assert snapshot.ttl == 0
    assert source.skipped == 6
    assert sum("skipped etcd key" in r.getMessage() for r in caplog.records) == 6


def test_changes_are_applied_within_a_second(etcd: EtcdServer) -> None:
    etcd.put(PREFIX + "10.0.0.1:80")
    lb = bk.RoundRobin()
    with Watcher(lb, Etcd(PREFIX, url=etcd.url, wait=2.0), min_interval=0.1) as watcher:
        assert _members(lb) == {"10.0.0.1:80": 1}
        for step, change, expected in (
            ("add", lambda: etcd.put(PREFIX + "10.0.0.2:80"), {"10.0.0.1:80": 1, "10.0.0.2:80": 1}),
            ("weight", lambda: etcd.put(PREFIX + "10.0.0.2:80", {"weight": 4}), None),
            ("remove", lambda: etcd.delete(PREFIX + "10.0.0.1:80"), {"10.0.0.2:80": 4}),
            ("bad value", lambda: etcd.put(PREFIX + "10.0.0.3:80", b"?"), {"10.0.0.2:80": 4}),
        ):
            time.sleep(0.3)  # the watcher is (back) in its watch, not between refreshes
            refreshes = watcher.refreshes
            change()
            want = expected or {"10.0.0.1:80": 1, "10.0.0.2:80": 4}
            assert wait_until(lambda w=want: _members(lb) == w, timeout=1.0), (step, _members(lb))
            assert wait_until(lambda r=refreshes: watcher.refreshes > r, timeout=1.0), step
        assert watcher.errors == 0


def test_the_async_watcher_applies_changes_within_a_second(etcd: EtcdServer) -> None:
    etcd.put(PREFIX + "10.0.0.1:80", {"weight": 2})

    async def main() -> None:
        lb = bk.LeastConnections()
        source = Etcd(PREFIX, url=etcd.url, wait=2.0)
        async with AsyncWatcher(lb, source, min_interval=0.1) as watcher:
            assert _members(lb) == {"10.0.0.1:80": 2}
            await asyncio.sleep(0.3)
            await asyncio.to_thread(etcd.put, PREFIX + "10.0.0.2:80", {"weight": 5})
            deadline = time.monotonic() + 1.0
            while _members(lb) != {"10.0.0.1:80": 2, "10.0.0.2:80": 5}:
                assert time.monotonic() < deadline, _members(lb)
                await asyncio.sleep(0.01)
            await asyncio.to_thread(etcd.delete, PREFIX + "10.0.0.1:80")
            deadline = time.monotonic() + 1.0
            while _members(lb) != {"10.0.0.2:80": 5}:
                assert time.monotonic() < deadline, _members(lb)
                await asyncio.sleep(0.01)
            assert watcher.errors == 0

    asyncio.run(main())


def test_a_wait_without_changes_returns_the_same_membership(etcd: EtcdServer) -> None:
    etcd.put(PREFIX + "10.0.0.1:80")
    source = Etcd(PREFIX, url=etcd.url, wait=0.2)
    first = source.resolve()
    assert source.resolve() == first  # waited 0.2 s for a change; none came
    assert asyncio.run(source.resolve_async()) == first


def test_a_compacted_revision_makes_the_source_list_again(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    etcd.put(PREFIX + "10.0.0.1:80")
    source = Etcd(PREFIX, url=etcd.url, wait=2.0)
    assert [e.address for e in source.resolve().endpoints] == ["10.0.0.1:80"]
    seen = source.revision
    assert seen is not None
    etcd.put(PREFIX + "10.0.0.2:80")
    etcd.delete(PREFIX + "10.0.0.1:80")
    last = etcd.put(PREFIX + "10.0.0.3:80", {"weight": 7})
    etcd.compact(last)  # the revisions after `seen` are gone: a watch from there is refused
    with caplog.at_level(logging.INFO, logger="balancekit.discovery"):
        snapshot = source.resolve()
    assert any("compacted" in r.getMessage() for r in caplog.records)
    assert {e.address: e.weight for e in snapshot.endpoints} == {
        "10.0.0.2:80": 1,
        "10.0.0.3:80": 7,
    }
    assert source.revision == last


def test_etcd_going_away_keeps_the_membership_and_its_return_is_noticed(
    etcd: EtcdServer,
) -> None:
    etcd.put(PREFIX + "10.0.0.1:80")
    etcd.put(PREFIX + "10.0.0.2:80")
    lb = bk.RoundRobin()
    source = Etcd(PREFIX, url=etcd.url, wait=1.0, timeout=0.5)
    watcher = Watcher(lb, source, min_interval=0.1, error_interval=0.1, max_interval=0.5)
    with watcher:
        before = _members(lb)
        assert len(before) == 2
        etcd.stop()  # by its PID
        assert wait_until(lambda: watcher.errors >= 2, timeout=15), watcher.last_error
        assert _members(lb) == before  # the last membership stands
        assert watcher.is_alive()

        etcd.start()  # same ports, same data: the revisions go on
        etcd.delete(PREFIX + "10.0.0.1:80")
        etcd.put(PREFIX + "10.0.0.3:80", {"weight": 2})
        assert wait_until(
            lambda: _members(lb) == {"10.0.0.2:80": 1, "10.0.0.3:80": 2}, timeout=15
        ), (_members(lb), watcher.last_error)
        assert wait_until(lambda: watcher.errors == 0, timeout=5)


def test_a_fresh_etcd_in_place_of_the_old_one_is_read_afresh(tmp_path: Path) -> None:
    """After a failure the source lists again: a new etcd (revisions from 1 again) is not
    watched from the old, higher revision, which would hide its keys."""
    old = EtcdServer(tmp_path / "old")
    (tmp_path / "old").mkdir()
    old.start()
    try:
        for i in range(20):
            old.put(PREFIX + f"10.0.0.{i + 1}:80")
        source = Etcd(PREFIX, url=old.url, wait=0.5, timeout=0.5)
        assert len(source.resolve().endpoints) == 20
    finally:
        old.stop()
    with pytest.raises(httpx.ConnectError):
        source.resolve()
    (tmp_path / "new").mkdir()
    new = EtcdServer(tmp_path / "new")
    new.client_port, new.peer_port, new.url = old.client_port, old.peer_port, old.url
    new.start()
    try:
        new.put(PREFIX + "10.9.9.9:80")
        assert [e.address for e in source.resolve().endpoints] == ["10.9.9.9:80"]
    finally:
        new.stop()


def test_a_fresh_etcd_swapped_in_between_two_resolves_is_listed_not_watched(
    tmp_path: Path,
) -> None:
    """No resolve fails here: the old etcd goes and a new one (revisions from 1) takes its
    ports between two resolves. Watching from the old revision would wait for revisions the
    new store may not reach for a long time; the source notices and lists instead."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = EtcdServer(tmp_path / "old")
    old.start()
    try:
        for i in range(20):
            old.put(PREFIX + f"10.0.0.{i + 1}:80")
        source = Etcd(PREFIX, url=old.url, wait=3.0, timeout=1.0)
        assert len(source.resolve().endpoints) == 20
    finally:
        old.stop()
    new = EtcdServer(tmp_path / "new")
    new.client_port, new.peer_port, new.url = old.client_port, old.peer_port, old.url
    new.start()
    try:
        new.put(PREFIX + "10.9.9.9:80")
        assert [e.address for e in source.resolve().endpoints] == ["10.9.9.9:80"]
        assert source.revision == 2
    finally:
        new.stop()


def test_an_empty_prefix_keeps_the_watchers_endpoints(etcd: EtcdServer) -> None:
    etcd.put(PREFIX + "10.0.0.1:80")
    lb = bk.RoundRobin()
    with Watcher(lb, Etcd(PREFIX, url=etcd.url, wait=1.0), min_interval=0.1) as watcher:
        time.sleep(0.2)
        etcd.delete(PREFIX + "10.0.0.1:80")
        assert wait_until(lambda: watcher.errors >= 1, timeout=2)
        assert _members(lb) == {"10.0.0.1:80": 1}  # allow_empty=False: not applied


def test_discovery_imports_httpx_only_for_etcd() -> None:
    code = (
        "import sys, balancekit as bk\n"
        "assert bk.discovery.Static and 'httpx' not in sys.modules\n"
        "assert bk.discovery.Etcd and 'httpx' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
