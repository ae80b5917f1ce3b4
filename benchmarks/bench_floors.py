"""Is issue 15's compiled target (RR/WRR select + release <= 5x a no-op call) reachable at all?

The lease contract's floor (``_minimal_lease_rr.NativeLeaseRoundRobin``: a clock read, a lease
object, an int token, a dict store; release with keyword-only ``ok``/``elapsed`` removing the
token, ``KeyError`` if it is not outstanding) written for three compilers, measured in ONE run
beside the no-op method call every ``x no-op`` ratio divides by:

- ``mypyc``: ``NativeLeaseRoundRobin`` compiled by mypyc (balancekit's compiler), as
  ``bench_callgrind``'s ``floor_compiled`` and ``bench_speed --compiled-floor`` build it;
- ``cython``: ``_floor_cython.pyx`` (cdef classes, C-typed fields, a free-listed lease out of
  the collector; its docstring lists the features), with Cython 3's default ``binding=True``,
  and ``cython_nobinding`` (``binding=False``: methods as plain C methods, not cyfunctions);
- ``c``: ``_floor_c.c``, the CPython C API by hand (``METH_FASTCALL | METH_KEYWORDS``, a
  free-listed lease out of the collector): the least the contract can cost on this interpreter;
- ``c_*``: the C floor with one part removed each (``VARIANTS``; ``_floor_c.c`` describes each
  flag), so the part's price is the difference: the clock call, the lease allocation, the
  token's int allocation, the dict store and removal, the argument checks, and ``c_empty`` /
  ``c_bare``: the two calls alone (with / without their argument checks); and the C floor
  tuned without breaking the contract: ``c_c_clock`` (the default clock read in C),
  ``c_known_hash`` (the dict told the token's hash), ``c_tuned`` (both).

Everything is built on demand into a temporary directory (``BUILD``, keyed by the sources'
hash; the mypyc floor in ``bench_callgrind.FLOOR_DIR``), never shipped. Before measuring, each
subject is checked to behave as the contract (picks in turn, distinct tokens, a release of an
unknown or already released lease raises ``KeyError``, an unknown keyword ``TypeError``, nothing
left outstanding): a self-check, not a test.

Two measurements, both as ``bench_callgrind`` / ``bench_speed`` make them:

- instructions (callgrind, deterministic): each subject in its own process under
  ``valgrind --tool=callgrind``, counting only one ``functools.reduce`` over 4,096 keys after a
  warm-up pass; an empty step's count subtracted. A step is ``release(select(key), ok=True,
  elapsed=0.001)``, the no-op's ``call(key)``: the steps of ``bench_callgrind``.
- time (``--passes`` child processes, each timing every subject interleaved with
  ``_harness.interleaved`` in the loop shape of ``bench_speed``: ``release(select(), ok=True,
  elapsed=0.001)`` vs ``call()``), per pass the ratio to that pass's no-op, then the median
  over passes; ``(fastest)``: the same with each case's fastest round, the least disturbed by
  the other tenants of a shared machine::

    python benchmarks/bench_floors.py                      # both, N = 10 and 10,000
    python benchmarks/bench_floors.py --no-time --sizes 10 # instructions only

(``HP_KEEP=DIR`` keeps each ``callgrind.out`` there, for ``callgrind_annotate --inclusive=yes``.)

What it found (2026-12-07, CPython 3.11.7, 2 shared cores under load; ``--passes 11``): per
select + release, instructions / time as x the no-op (430 instructions): mypyc 1,964 / 6.5x;
Cython (binding=True) 1,675 / 6.0x, (binding=False) 1,469 / 5.0x; C 1,350 / 4.3-4.4x; C tuned
1,147 / 3.9-4.0x. The parts, time x no-op (instructions): the two calls alone 0.87 (389), their
argument checks ~0.1-0.3 (~80), the clock call 1.3 (210; read in C: -0.3, -120), the dict store
and removal 1.4 (467), the token's int 0.2-0.3 (117), the lease with a free list ~0 (48; without
the free list +0.6, +84), mypyc's second lookup in release +0.6 (119). Only a hand-written C
build of the contract is below 5x with room to spare (0.6-1.0 no-op: all balancekit may add).

Benchmarks never run as tests.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
KEYS = 4096
#: The C floor's variants: module name -> the flags compiled in (see ``_floor_c.c``).
VARIANTS: dict[str, tuple[str, ...]] = {
    "c": (),
    "c_no_clock": ("FLOOR_NO_CLOCK",),
    "c_c_clock": ("FLOOR_C_CLOCK",),
    "c_no_freelist": ("FLOOR_NO_FREELIST",),
    "c_no_lease": ("FLOOR_NO_LEASE",),
    "c_small_token": ("FLOOR_SMALL_TOKEN",),
    "c_no_dict": ("FLOOR_NO_DICT",),
    "c_two_lookups": ("FLOOR_TWO_LOOKUPS",),
    "c_known_hash": ("FLOOR_KNOWN_HASH",),
    "c_tuned": ("FLOOR_C_CLOCK", "FLOOR_KNOWN_HASH"),
    "c_no_parse": ("FLOOR_NO_PARSE",),
    "c_empty": ("FLOOR_EMPTY",),
    "c_bare": ("FLOOR_EMPTY", "FLOOR_NO_PARSE"),
}
SUBJECTS = ("noop", "mypyc", "cython", "cython_nobinding", *VARIANTS)
#: Variants that still keep the contract (the dict, the checks): self-checked in full.
_FULL = {"mypyc", "cython", "cython_nobinding", "c", "c_no_clock", "c_c_clock"}
_FULL |= {"c_no_freelist", "c_small_token", "c_two_lookups", "c_no_lease", "c_known_hash"}
_FULL |= {"c_tuned"}
_SOURCES = ("_floor_c.c", "_floor_cython.pyx")


def _build_dir() -> Path:
    digest = hashlib.sha256(sys.version.encode())
    for name in _SOURCES:
        digest.update((_HERE / name).read_bytes())
    return Path(tempfile.gettempdir()) / f"balancekit-floors-{digest.hexdigest()[:12]}"


BUILD = _build_dir()

_SETUP = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup

variants = {variants!r}
c = [
    Extension(
        "_floor_" + name,
        ["_floor_" + name + ".c"],
        define_macros=[("MODNAME", "_floor_" + name)] + [(flag, "1") for flag in flags],
    )
    for name, flags in variants.items()
]
cy = [
    cythonize(Extension(name, [name + ".pyx"]), compiler_directives={{"binding": binding}})[0]
    for name, binding in (("_floor_cython", True), ("_floor_cython_nobinding", False))
]
setup(name="floors", ext_modules=c + cy, script_args=["build_ext", "--inplace", "-q"])
"""


def build() -> Path:
    """Compile the C variants, both Cython builds (in ``BUILD``) and the mypyc floor (once)."""
    sys.path.insert(0, str(_HERE))
    from _minimal_lease_rr import build_native
    from bench_callgrind import FLOOR_DIR

    build_native(FLOOR_DIR)
    if (BUILD / "done").exists():
        return BUILD
    BUILD.mkdir(parents=True, exist_ok=True)
    for name in VARIANTS:  # one copy each: one object file each
        (BUILD / f"_floor_{name}.c").write_bytes((_HERE / "_floor_c.c").read_bytes())
    for name in ("_floor_cython", "_floor_cython_nobinding"):
        (BUILD / f"{name}.pyx").write_bytes((_HERE / "_floor_cython.pyx").read_bytes())
    (BUILD / "setup_floors.py").write_text(_SETUP.format(variants=VARIANTS))
    done = subprocess.run(
        [sys.executable, "setup_floors.py"], cwd=BUILD, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"could not build the floors:\n{done.stdout}{done.stderr}")
    (BUILD / "done").write_text(done.stdout + done.stderr)
    return BUILD


def _env() -> dict[str, str]:
    from bench_callgrind import FLOOR_DIR

    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(BUILD), str(FLOOR_DIR), str(_HERE)])
    return env


# -- the subjects (in a child: the build directories on sys.path) ----------------------------


def make(name: str, n: int) -> Any:
    """A fresh balancer of subject ``name`` over ``n`` endpoints (not for ``noop``)."""
    endpoints = [f"10.0.{i >> 8 & 255}.{i & 255}:8080" for i in range(n)]
    if name == "mypyc":
        from _minimal_lease_rr import NATIVE_NAME

        return __import__(NATIVE_NAME).NativeLeaseRoundRobin(endpoints)
    module = __import__("_floor_" + name)
    kind = module.CyLeaseRoundRobin if name.startswith("cython") else module.CLeaseRoundRobin
    return kind(endpoints)


def _outstanding(balancer: Any) -> int:
    count = getattr(balancer, "outstanding", None)
    return int(count()) if count is not None else len(balancer._outstanding)


def self_check(name: str) -> None:
    """Does subject ``name`` keep the contract? (The parts a variant removes are not checked.)"""
    if name == "noop":
        return
    balancer = make(name, 3)
    leases = [balancer.select() for _ in range(4)]
    for lease in leases:
        balancer.release(lease, ok=True, elapsed=0.001)
    if name not in _FULL:  # no dict or no checks: it runs, that is all
        return
    if name != "c_no_lease":
        picked = [lease.endpoint for lease in leases]
        assert picked == [f"10.0.0.{i}:8080" for i in (0, 1, 2, 0)], name
    assert _outstanding(balancer) == 0, name
    tokens = [lease if name == "c_no_lease" else lease.token for lease in leases]
    assert len(set(tokens)) == 4, name
    for lease in leases[:2]:  # released already
        try:
            balancer.release(lease, ok=True, elapsed=0.001)
        except KeyError:
            pass
        else:
            raise AssertionError(f"{name}: a second release was accepted")
    other = make(name, 3)
    foreign = [other.select() for _ in range(6)][-1]  # a token never handed out by balancer
    try:
        balancer.release(foreign)
    except KeyError:
        pass
    else:
        raise AssertionError(f"{name}: an unknown lease was accepted")
    before = time.monotonic()
    lease = balancer.select()
    if name not in ("c_no_lease", "c_no_clock"):  # the clock's reading, as time.monotonic gives it
        assert before <= lease.started <= time.monotonic(), name
    try:
        balancer.release(lease, bogus=1)
    except TypeError:
        pass
    else:
        raise AssertionError(f"{name}: an unknown keyword was accepted")
    assert _outstanding(balancer) == 1, name
    balancer.release(lease)
    assert _outstanding(balancer) == 0, name


# -- instructions (callgrind) ----------------------------------------------------------------


def cg_child(name: str, n: int, go: str) -> None:
    """Build the subject, wait for ``go`` (instrumentation on), then run the counted loop."""
    keys = [f"10.{i >> 8}.{i & 255}.1" for i in range(KEYS)]

    def step(_: object, key: str) -> None:
        return None

    if name == "noop":

        class Floor:
            def noop(self, key: object) -> None:
                return None

        call = Floor().noop

        def step(_: object, key: str) -> None:
            call(key)

    elif name != "empty":
        balancer = make(name, n)
        select, release = balancer.select, balancer.release

        def step(_: object, key: str) -> None:
            release(select(key), ok=True, elapsed=0.001)

    Path(go + ".ready").write_text(str(os.getpid()))
    while not os.path.exists(go):
        time.sleep(0.05)
    for key in keys:  # warm: not counted (outside functools.reduce)
        step(None, key)
    functools.reduce(step, keys, None)


def count(name: str, n: int) -> float:
    """Instructions per step of ``name`` (the empty step included), as bench_callgrind.count."""
    with tempfile.TemporaryDirectory() as scratch:
        go, out = os.path.join(scratch, "go"), os.path.join(scratch, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += ["--toggle-collect=functools_reduce", f"--callgrind-out-file={out}"]
        command += [sys.executable, str(Path(__file__).resolve()), "--cg-child", name, str(n), go]
        process = subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True)
        try:
            while not os.path.exists(go + ".ready"):
                if process.poll() is not None:
                    raise SystemExit(f"{name} failed:\n{process.communicate()[1]}")
                time.sleep(0.2)
            pid = Path(go + ".ready").read_text()
            subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
            Path(go).touch()
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
        keep = os.environ.get("HP_KEEP")  # each callgrind.out kept there, for callgrind_annotate
        if keep:
            shutil.copy(out, os.path.join(keep, f"{name}-{n}.out"))
        for line in Path(out).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1]) / KEYS
    raise SystemExit(f"no totals in callgrind's output for {name}")


# -- time (bench_speed's loop shape, _harness.interleaved) -----------------------------------


def time_child(sizes: list[int], names: list[str], repeats: int, min_time: float) -> None:
    """Time every subject interleaved, per N; print ns per step (median, fastest round) as JSON."""
    import _harness
    from bench_speed import _select_release

    result: dict[str, dict[str, list[float]]] = {}
    for n in sizes:
        cases: dict[str, Any] = {"noop": _harness.method_call_floor()}
        for name in names:
            if name != "noop":
                cases[name] = _select_release(make(name, n), None)
        measured = _harness.interleaved(cases, repeats=repeats, min_time=min_time)
        result[str(n)] = {name: [m.median, m.fastest] for name, m in measured.items()}
    print(json.dumps(result))


def timed(args: argparse.Namespace, names: list[str]) -> list[dict[str, dict[str, list[float]]]]:
    runs = []
    for number in range(args.passes):
        print(f"time: pass {number + 1}/{args.passes}", file=sys.stderr, flush=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--time-child"]
        command += ["--sizes", *map(str, args.sizes), "--subjects", *names]
        command += ["--repeats", str(args.repeats), "--min-time", str(args.min_time)]
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"timing child failed:\n{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--cg-child":
        cg_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=SUBJECTS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--passes", type=int, default=5, help="timing child runs (median)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds per child")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per batch")
    parser.add_argument("--no-time", action="store_true", help="instructions only")
    parser.add_argument("--no-count", action="store_true", help="time only")
    parser.add_argument("--time-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = list(dict.fromkeys(["noop", *args.subjects]))
    if args.time_child:
        time_child(args.sizes, names, args.repeats, args.min_time)
        return
    build()
    checked = subprocess.run(
        [sys.executable, "-c", f"import bench_floors as b\nfor s in {names!r}: b.self_check(s)"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if checked.returncode != 0:
        raise SystemExit(f"a floor breaks the contract:\n{checked.stderr}")
    print(f"built in {BUILD}; every subject kept the contract (self-check)\n")
    instructions: dict[int, dict[str, float]] = {}
    if not args.no_count:
        for n in args.sizes:
            empty = count("empty", n)
            instructions[n] = {}
            for name in names:
                instructions[n][name] = count(name, n) - empty
                print(f"callgrind N={n} {name}: {instructions[n][name]:,.0f}", file=sys.stderr)
    runs = [] if args.no_time else timed(args, names)
    header = ["subject"]
    for n in args.sizes:
        header += [f"Ir N={n:,}", f"Ir x no-op N={n:,}"] if instructions else []
        header += [f"ns N={n:,}", f"time x no-op N={n:,}", "(fastest)"] if runs else []
    print("| " + " | ".join(header) + " |")
    print("|---|" + "--:|" * (len(header) - 1))
    for name in names:
        row = [name]
        for n in args.sizes:
            if instructions:
                figure = instructions[n][name]
                row += [f"{figure:,.0f}", f"{figure / instructions[n]['noop']:.2f}"]
            if runs:
                key = str(n)
                ns = statistics.median(run[key][name][0] for run in runs)
                ratio = statistics.median(run[key][name][0] / run[key]["noop"][0] for run in runs)
                best = statistics.median(run[key][name][1] / run[key]["noop"][1] for run in runs)
                row += [f"{ns:,.1f}", f"{ratio:.2f}", f"{best:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"\n{sys.version.split()[0]} {sysconfig.get_platform()}; passes={args.passes}")


if __name__ == "__main__":
    main()
