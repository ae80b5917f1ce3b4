"""discovery.File: endpoints from a watched file; a bad file keeps the last good membership."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.discovery import DiscoveryError, File, Watcher


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, as the docs tell writers to."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _addresses(lb: bk.Balancer) -> list[tuple[str, int]]:
    return [(e.address, e.weight) for e in lb.endpoints]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("e.txt", "# comment\n\n127.0.0.1:1\n127.0.0.1:2   weight=3  # two\n"),
        ("e.json", json.dumps(["127.0.0.1:1", {"address": "127.0.0.1:2", "weight": 3}])),
        (
            "e.json",
            json.dumps({"endpoints": ["127.0.0.1:1", {"address": "127.0.0.1:2", "weight": 3}]}),
        ),
        ("e.toml", 'endpoints = ["127.0.0.1:1", { address = "127.0.0.1:2", weight = 3 }]\n'),
    ],
)
def test_each_format_lists_the_same_endpoints(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    snapshot = File(path, interval=2.5).resolve()
    assert [(e.address, e.weight) for e in snapshot.endpoints] == [
        ("127.0.0.1:1", 1),
        ("127.0.0.1:2", 3),
    ]
    assert snapshot.ttl == 2.5


def test_an_unchanged_file_is_not_read_again_and_same_content_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "e.txt"
    path.write_text("127.0.0.1:1\n")
    old = time.time() - 60  # an mtime well before the read: not "racily" new
    os.utime(path, (old, old))
    source = File(path)
    first = source.resolve()
    assert (source.reads, source.parses) == (1, 1)
    assert source.resolve() == first
    assert (source.reads, source.parses) == (1, 1)  # one stat, no read
    os.utime(path, (old + 1, old + 1))  # touched: read again, same hash: not parsed
    assert source.resolve() == first
    assert (source.reads, source.parses) == (2, 1)


def test_a_same_size_rewrite_within_the_same_timestamp_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "e.txt"
    path.write_text("127.0.0.1:1\n")
    stamp = os.stat(path).st_mtime_ns
    source = File(path)
    assert [e.address for e in source.resolve().endpoints] == ["127.0.0.1:1"]
    path.write_text("127.0.0.1:2\n")  # same size
    os.utime(path, ns=(stamp, stamp))  # and the same mtime, as a coarse clock would leave it
    assert [e.address for e in source.resolve().endpoints] == ["127.0.0.1:2"]


def test_a_watcher_follows_changes_and_keeps_the_last_good_membership(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "e.txt"
    path.write_text("127.0.0.1:1\n")
    lb = bk.RoundRobin()
    errors: list[BaseException] = []
    watcher = Watcher(lb, File(path, interval=0.05), min_interval=0.05, on_error=errors.append)
    with watcher, caplog.at_level(logging.WARNING, logger="balancekit.discovery"):
        assert _addresses(lb) == [("127.0.0.1:1", 1)]
        _write(path, "127.0.0.1:1\n127.0.0.1:2\n")
        _wait_for(lambda: len(lb) == 2)
        _write(path, "127.0.0.1:3\nnot an address at all\n")  # bad: keep what we have
        _wait_for(lambda: errors)
        assert _addresses(lb) == [("127.0.0.1:1", 1), ("127.0.0.1:2", 1)]
        assert isinstance(errors[0], DiscoveryError)
        assert any("keeping the last endpoints" in r.getMessage() for r in caplog.records)
        path.unlink()  # gone: keep them too
        count = len(errors)
        _wait_for(lambda: len(errors) > count)
        assert len(lb) == 2
        _write(path, "127.0.0.1:4 weight=2\n")  # good again
        _wait_for(lambda: _addresses(lb) == [("127.0.0.1:4", 2)])


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.txt", "127.0.0.1:1 weight=x\n"),
        ("e.txt", "127.0.0.1:1 colour=blue\n"),
        ("e.txt", "127.0.0.1:1\n127.0.0.1:1\n"),  # a duplicate
        ("e.txt", "127.0.0.1:1 weight=99999999999999999999\n"),
        ("e.json", "{"),
        ("e.json", "[" * 50_000),
        ("e.json", '{"servers": []}'),
        ("e.json", "[5]"),
        ("e.json", '[{"address": "127.0.0.1:1", "weight": NaN}]'),
        ("e.toml", "endpoints = "),
        ("e.txt", b"\xff\xfe127.0.0.1:1"),
        ("e.txt", "999.1.1.1:80\n"),
    ],
)
def test_a_bad_file_raises_discovery_error(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DiscoveryError):
        File(path).resolve()


def test_a_file_over_max_size_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "e.txt"
    path.write_text("127.0.0.1:1\n" * 100)
    source = File(path, max_size=100)
    with pytest.raises(DiscoveryError, match="max_size"):
        source.resolve()
    assert source.reads == 0


@pytest.mark.parametrize(
    "options",
    [{"interval": 0}, {"interval": float("nan")}, {"interval": 10**400}, {"max_size": 0}],
)
def test_options_are_validated(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(bk.InvalidOption):
        File(tmp_path / "e.txt", **options)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        File(5)  # type: ignore[arg-type]
    with pytest.raises(bk.InvalidOption):
        File("\ud800")


@settings(max_examples=150)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_content_gives_endpoints_or_discovery_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("any")
    for name in ("e.txt", "e.json", "e.toml"):
        path = folder / name
        path.write_bytes(data)
        try:
            snapshot = File(path).resolve()
        except DiscoveryError:
            continue
        assert all(isinstance(e, bk.Endpoint) for e in snapshot.endpoints)


def _returns(call: Callable[[], object]) -> BaseException | object:
    """What ``call()`` returned or raised, run in a daemon thread so a call that blocks forever
    fails the test instead of hanging the suite."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert outcome, "blocked: the call did not return"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "e.txt"
    os.mkfifo(path)  # no writer ever opens it: a blocking open() never returns
    source = File(path)
    error = _returns(source.resolve)
    assert isinstance(error, DiscoveryError) and "regular file" in str(error)
    path.unlink()
    path.write_text("127.0.0.1:1\n")  # the lock was released: the next poll works
    assert [e.address for e in source.resolve().endpoints] == ["127.0.0.1:1"]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "e.txt").mkdir()
    with pytest.raises(DiscoveryError, match="cannot read"):
        File(tmp_path / "e.txt").resolve()


def test_a_file_rewritten_during_the_read_is_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.txt"
    path.write_text("127.0.0.1:1\n127.0.0.1:2\n")
    real_read = os.read
    writes = []

    def read_then_write(descriptor: int, size: int) -> bytes:
        data = real_read(descriptor, size)
        if not writes:
            writes.append(size)
            with open(path, "a") as writer:  # a writer appending in place while we read
                writer.write("127.0.0.1:3\n")
        return data

    monkeypatch.setattr(os, "read", read_then_write)
    source = File(path)
    with pytest.raises(DiscoveryError, match="changed while it was read"):
        source.resolve()
    monkeypatch.undo()
    assert len(source.resolve().endpoints) == 3  # the next poll reads the whole file


def test_a_replacement_with_the_same_size_and_mtime_is_seen(tmp_path: Path) -> None:
    """``cp -p``, ``rsync -t``, ``tar`` or a Nix store (mtime 1) replace a file with one of the
    same size and mtime: the inode and ctime still say it changed."""
    path = tmp_path / "e.txt"
    path.write_text("10.0.0.1:80\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # long before any read: not racy
    source = File(path)
    assert [e.address for e in source.resolve().endpoints] == ["10.0.0.1:80"]
    staged = tmp_path / "staged.txt"
    staged.write_text("10.0.0.2:80\n")  # the same size
    os.utime(staged, ns=(1_000_000_000, 1_000_000_000))  # and the same mtime
    os.replace(staged, path)
    assert [e.address for e in source.resolve().endpoints] == ["10.0.0.2:80"]
