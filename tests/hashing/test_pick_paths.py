"""The hashing picks made cheaper for issue 15 choose exactly what the general path chooses.

- Ketama's MD5 is CPython's built-in ``_md5`` when present: the same digests as ``hashlib.md5``.
- BoundedLoadHash inlines its usual case (clean ring, nothing avoided, endpoint under its cap)
  and hashes the key before taking its lock: the same picks and loads as the general path
  (``_place``, reached with an ``avoid`` that names no member), and a slow key function no longer
  holds the balancer's lock (a release waited for it).
- Rendezvous takes ``math.log`` of the 128-bit bid directly: the same double as
  ``log(float(bid))``, so the same weighted scores and winners as the reference formula.
- benchmarks/bench_speed.py measures the ``--tree`` it is given (it measured this checkout).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import balancekit as bk
from balancekit.strategies.hashing._keyed import md5
from balancekit.strategies.hashing.rendezvous import _weighted, rendezvous_score

ROOT = Path(__file__).resolve().parents[2]
NOBODY = frozenset({"nobody:0"})  # a non-empty avoid that avoids nothing: the general path


@given(st.binary(max_size=300))
def test_md5_gives_hashlib_digests(data: bytes) -> None:
    assert md5(data).digest() == hashlib.md5(data).digest()


def test_md5_known_vectors() -> None:
    # RFC 1321, appendix A.5
    assert md5(b"").hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5(b"abc").hexdigest() == "900150983cd24fb0d6963f7d28e17f72"
    assert bk.Ketama(["a:1"]).lookup("test").address == "a:1"


def _drive_bounded(seed: int, general: bool) -> list[object]:
    rng = random.Random(seed)
    endpoints = [bk.Endpoint(f"h{i}:1", weight=rng.randint(1, 3)) for i in range(5)]
    lb = bk.BoundedLoadHash(endpoints, epsilon=rng.choice([0.0, 0.25, 1.0]))
    avoid: frozenset[str] = NOBODY if general else frozenset()
    held: list[bk.Lease] = []
    log: list[object] = []
    for _ in range(300):
        roll = rng.random()
        if roll < 0.55:
            key = f"k{rng.randrange(12)}"
            try:
                lease = lb.select(key, avoid=avoid)
            except bk.NoEndpointAvailable:
                log.append("none")
                continue
            held.append(lease)
            log.append(lease.address)
        elif roll < 0.9 and held:
            lb.release(held.pop(rng.randrange(len(held))), ok=True, elapsed=0.001)
        elif roll < 0.95:
            address = f"h{rng.randrange(6)}:1"
            if address in lb:
                lb.remove(address)
            else:
                lb.add(bk.Endpoint(address, weight=rng.randint(1, 3)))
        else:
            address = f"h{rng.randrange(6)}:1"
            if address in lb:
                lb.mark_down(address) if rng.random() < 0.5 else lb.mark_up(address)
        log.append(sorted((a, lb.capacity(a)) for a in ("h0:1", "h1:1", "h2:1", "h5:1")))
        lb._check_invariants()
    return log


@pytest.mark.parametrize("seed", range(12))
def test_bounded_fast_path_picks_as_the_general_path(seed: int) -> None:
    assert _drive_bounded(seed, general=False) == _drive_bounded(seed, general=True)


@pytest.mark.parametrize("call", ["select", "lookup"])
def test_bounded_key_function_runs_outside_the_lock(call: str) -> None:
    entered, go = threading.Event(), threading.Event()

    def key(context: str) -> str:
        if context == "slow":
            entered.set()
            assert go.wait(10)
        return context

    lb = bk.BoundedLoadHash(["a:1", "b:1"], key=key)
    held = lb.select("fast")
    slow = threading.Thread(target=getattr(lb, call), args=("slow",), daemon=True)
    slow.start()
    try:
        assert entered.wait(10)
        releasing = threading.Thread(target=lb.release, args=(held,), daemon=True)
        releasing.start()
        releasing.join(2)  # the release needs the lock: it waited for the key function
        done = not releasing.is_alive()
    finally:
        go.set()
        slow.join(10)
    assert done
    assert lb.stats()["a:1"].in_flight + lb.stats()["b:1"].in_flight == (call == "select")


@given(st.integers(min_value=1, max_value=(1 << 128) - 1))
def test_log_of_an_int_is_log_of_its_double(bid: int) -> None:
    assert math.log(bid) == math.log(float(bid))


def _reference(pool: list[tuple[str, int]], key: str) -> str:
    ordered = sorted(pool)
    if len({w for _, w in pool}) <= 1:
        scores = [float(rendezvous_score(key, a)) for a, _ in ordered]
        bids = [rendezvous_score(key, a) for a, _ in ordered]
        return ordered[bids.index(max(bids))][0] if scores else ""
    scored = [_weighted(-float(w), rendezvous_score(key, a)) for a, w in ordered]
    return ordered[scored.index(max(scored))][0]


@settings(max_examples=60)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,6}:[1-9]", fullmatch=True),
        st.integers(min_value=1, max_value=9),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.text(max_size=12), min_size=1, max_size=8),
)
def test_rendezvous_picks_the_reference_winner(pool: dict[str, int], keys: list[str]) -> None:
    lb = bk.Rendezvous([bk.Endpoint(a, weight=w) for a, w in pool.items()])
    for key in keys:
        assert lb.select(key).address == _reference(list(pool.items()), key)


def test_bench_speed_measures_the_tree_it_is_given(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src" / "balancekit", tree / "balancekit")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(ROOT / "benchmarks")]))
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_speed.py"), "--child"]
    command += ["--sizes", "3", "--strategies", "RoundRobin", "--repeats", "1"]
    command += ["--min-time", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve().is_relative_to(tree.resolve())
