"""Hostile keys and addresses, huge weights, and racing adds for the hashing strategies (issue 10).

- 10.1: a str with a lone surrogate (``"\\ud800"``, e.g. from JSON) used to reach mmh3 unencodable
  and kill the process (SIGSEGV) or raise UnicodeEncodeError. The policy (docs/hashing.md): text
  hashes as UTF-8 with ``surrogatepass``. Each case runs in a subprocess, so a crash fails the
  test instead of killing pytest.
- 10.4: points per endpoint are bounded, so any legal weight builds fast and small.
- 10.14: concurrent ``Maglev.add`` calls cannot put more members in the table than it has slots.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import balancekit as bk
from balancekit.strategies.hashing._keyed import hash64


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


SURROGATE_SCRIPT = r"""
import json, sys
import balancekit as bk
from balancekit.strategies.hashing._keyed import hash64
name = sys.argv[1]
factories = {
    "IPHash": lambda: bk.IPHash(["a:1", "b:1", "c:1"]),
    "BoundedLoadHash": lambda: bk.BoundedLoadHash(["a:1", "b:1", "c:1"]),
    "Maglev": lambda: bk.Maglev(["a:1", "b:1", "c:1"], table_size=307),
    "MaglevEnvoy": lambda: bk.Maglev(["a:1", "b:1", "c:1"], table_size=307, compat="envoy"),
    "JumpHash": lambda: bk.JumpHash(["a:1", "b:1", "c:1"]),
    "Rendezvous": lambda: bk.Rendezvous(["a:1", "b:1", "c:1"]),
    "Ketama": lambda: bk.Ketama(["a:1", "b:1", "c:1"]),
}
lb = factories[name]()
out = {}
for key in ["\ud800", "x\udfffy", "\ud83d\ude00", json.loads('"\\udc80"')]:
    lease = lb.select(key)
    lb.release(lease)
    out[key.encode("utf-8", "surrogatepass").hex()] = [lease.address, lb.lookup(key).address]
keyed = factories[name]().__class__(["a:1", "b:1"], key=lambda request: request)
out["by-key-function"] = keyed.lookup("\ud800").address
out["hash64"] = hash64("\ud800")
for key in ["\ud800", "caf\udce9", "\ud83d\ude00", "plain", "caf\u00e9"]:  # hashed as its bytes
    assert lb.lookup(key).address == lb.lookup(key.encode("utf-8", "surrogatepass")).address
try:  # a surrogate never reaches a ring as an address: Endpoint refuses it (RFC 6874 zone ids)
    lb.add("[fe80::1%e\udcff0]:80")
except bk.InvalidEndpoint:
    out["zone-id"] = "refused"
assert out.get("zone-id") == "refused"
lb.add("[fe80::1%eth0]:80")
out["zone-ok"] = sorted({lb.lookup(f"k{i}").address for i in range(300)})
print(json.dumps(out, sort_keys=True))
"""

STRATEGIES = [
    "IPHash",
    "BoundedLoadHash",
    "Maglev",
    "MaglevEnvoy",
    "JumpHash",
    "Rendezvous",
    "Ketama",
]


def run_isolated(name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SURROGATE_SCRIPT, name],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return done.stdout


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_lone_surrogate_key_hashes_instead_of_crashing(name: str) -> None:
    first = run_isolated(name)
    assert run_isolated(name) == first  # the same answer in every process


def test_valid_text_still_hashes_as_its_utf8() -> None:
    for key in ["plain-ascii", "café", "\U0001f600"]:
        assert utf8(key) == key.encode()
        assert hash64(key) == hash64(key.encode())


@pytest.mark.parametrize("strategy", [bk.IPHash, bk.BoundedLoadHash])
def test_huge_weights_build_a_bounded_ring(strategy: type[bk.IPHash]) -> None:
    lb = strategy([bk.Endpoint(f"10.9.0.{i}:80", weight=65_535) for i in range(3)])
    assert lb._ring.count == 3 * (160 * 65_535 // 32_768)  # 319 points each, not 10.5M
    lb.add(bk.Endpoint("10.9.0.9:80", weight=1_000_000))
    lb.add(bk.Endpoint("10.9.0.10:80", weight=1))
    lb._check_invariants()
    assert lb._ring.count <= 5 * 65_536
    keys = [f"k{i}" for i in range(4000)]
    heavy = sum(lb.lookup(key).address == "10.9.0.9:80" for key in keys)
    assert heavy > 0.7 * len(keys)  # weight still rules: 1e6 of ~1.2e6


def race_adds(lb: bk.Maglev, count: int) -> list[Exception]:
    """``count`` threads call ``lb.add`` at once (a barrier, a tiny switch interval)."""
    barrier = threading.Barrier(count)
    refused: list[Exception] = []

    def add(index: int) -> None:
        barrier.wait(timeout=10)
        try:
            lb.add(f"10.8.0.{index}:80")
        except bk.InvalidOption as error:
            refused.append(error)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(count)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(switch)
    return refused


def test_concurrent_maglev_adds_never_overfill_the_table() -> None:
    for _ in range(20):
        lb = bk.Maglev([], table_size=7)
        refused = race_adds(lb, 10)
        assert len(lb) == 7 and len(refused) == 3
        lb._check_invariants()
        table, _owners = lb._table[:2]
        assert set(table) == set(range(7))  # every member owns a slot


def test_a_health_ejection_filters_maglev_instead_of_rebuilding_in_the_request() -> None:
    # Issue 11: an ejection ran a full table rebuild inside the release() that reported it (and
    # its end inside a select()). Now the table stays; the ejected endpoint is skipped at pick.
    now = [0.0]
    pool = [f"10.7.0.{i}:80" for i in range(1, 6)]
    lb = bk.with_health(
        bk.Maglev(pool, table_size=1009, clock=lambda: now[0]),
        bk.PassiveHealth(consecutive_failures=1, max_ejection_share=0.5, base_ejection=30.0),
    )
    keys = [f"user-{i}" for i in range(400)]
    before = {key: lb.lookup(key).address for key in keys}
    table = lb._table[0]  # the slots (the tuple also holds who is skipped)
    victim = before[keys[0]]
    lb.release(lb.select(keys[0]), ok=False)  # ejects victim
    assert lb.stats()[victim].ejected
    assert lb._table[0] is table  # no rebuild in that release
    during = {key: lb.lookup(key).address for key in keys}
    assert victim not in during.values()
    assert all(during[k] == before[k] for k in keys if before[k] != victim)  # only its keys move
    lb._check_invariants()
    now[0] = 31.0  # the ejection ends: the next select lets it back in, still no rebuild
    lb.release(lb.select(keys[1]))
    assert not lb.stats()[victim].ejected
    assert lb._table[0] is table
    assert {key: lb.lookup(key).address for key in keys} == before
    lb.remove(pool[-1])  # an operator's change still rebuilds, as before
    assert lb._table[0] is not table
    fresh = bk.Maglev(pool[:-1], table_size=1009)
    assert all(lb.lookup(key).address == fresh.lookup(key).address for key in keys)
