"""Shared timing helpers for the benchmark scripts: interleaved repeats, medians, ratios, tables.

Method (the one every script here should use, so figures are comparable):

- A *case* is a function ``run(n) -> (elapsed_ns, ops)`` that performs about ``n`` operations in a
  tight loop and says how many it did; per-op time is ``elapsed_ns / ops``. Bind methods to locals
  before the loop so attribute lookups are not timed, and build every input (keys, endpoints)
  beforehand.
- Each case's batch size is calibrated once so a batch lasts about ``min_time`` seconds.
- Cases are then run *interleaved*: round 1 runs A, B, C; round 2 runs A, B, C; ... so that
  drift on a shared, noisy machine (other tenants, frequency changes) hits every case alike.
- A case's figure is the median of its per-round samples; the quartiles show the spread.
- The garbage collector is off while a batch runs (as :mod:`timeit` does).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TypeVar

__all__ = [
    "Case",
    "Measurement",
    "calibrate",
    "interleaved",
    "machine",
    "markdown_table",
    "method_call_floor",
    "timed_build",
]

#: ``run(n)`` performs about ``n`` operations and returns ``(elapsed_ns, ops_done)``.
Case = Callable[[int], tuple[int, int]]

_now = time.perf_counter_ns
_T = TypeVar("_T")


@dataclass(frozen=True)
class Measurement:
    """The per-operation time of one case: median and quartiles of its rounds, in ns."""

    median: float
    q1: float
    q3: float
    rounds: int
    batch: int  # operations per round
    fastest: float = 0.0  # the best round: least disturbed by other load (for A/B comparisons)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = the middle half within 5 %)."""
        return (self.q3 - self.q1) / self.median if self.median else 0.0


class _Noop:
    __slots__ = ()

    def call(self) -> None:
        return None


def method_call_floor() -> Case:
    """The floor: a loop calling a bound no-op method, ``obj.call()``, with the same loop shape."""
    call = _Noop().call

    def run(n: int) -> tuple[int, int]:
        start = _now()
        for _ in repeat(None, n):
            call()
        return _now() - start, n

    return run


def _timed(case: Case, n: int) -> tuple[int, int]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return case(n)
    finally:
        if enabled:
            gc.enable()


def calibrate(case: Case, min_time: float, *, limit: int = 1 << 24) -> int:
    """A batch size ``n`` for which ``case(n)`` lasts ``min_time`` s or more (or ``limit``)."""
    target = int(min_time * 1e9)
    n = 1
    _timed(case, 1)  # warm up: first-call costs, lazy imports, caches
    while True:
        elapsed, ops = _timed(case, n)
        if elapsed >= target or n >= limit:
            return max(n, ops)
        # Jump close to the target, at most 10x at a time, at least doubling.
        grow = target / max(elapsed, 1)
        n = min(limit, max(n * 2, int(n * min(grow * 1.1, 10.0))))


def interleaved(
    cases: Mapping[str, Case],
    *,
    repeats: int,
    min_time: float,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Measurement]:
    """Measure every case ``repeats`` times, interleaved (A, B, C, A, B, C, ...): ns/op medians."""
    batches = {name: calibrate(case, min_time) for name, case in cases.items()}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_number in range(repeats):
        for name, case in cases.items():
            elapsed, ops = _timed(case, batches[name])
            samples[name].append(elapsed / ops)
        if progress is not None:
            progress(f"round {round_number + 1}/{repeats}")
    result = {}
    for name, values in samples.items():
        if len(values) >= 2:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        result[name] = Measurement(
            statistics.median(values), q1, q3, len(values), batches[name], min(values)
        )
    return result


def timed_build(build: Callable[[], _T], *, repeats: int, budget: float) -> tuple[float, _T]:
    """Median build time in ms over up to ``repeats`` builds (fewer past ``budget`` seconds).

    Returns the median and the last object built, so the caller can benchmark it.
    """
    times: list[float] = []
    built: list[_T] = []
    spent = 0.0
    for _ in range(max(1, repeats)):
        built.clear()  # let the previous one go before timing the next
        gc.collect()
        start = _now()
        built.append(build())
        elapsed = (_now() - start) / 1e9
        times.append(elapsed * 1000.0)
        spent += elapsed
        if spent > budget:
            break
    return statistics.median(times), built[0]


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers right-aligned."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        bool(body) and all(_looks_numeric(row[i]) for row in body if row[i])
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (widths[i] + 1) + ":") if numeric[i] else ("-" * (widths[i] + 2))
            for i in range(len(headers))
        )
        + "|"
    )
    return "\n".join([line(list(headers)), rule, *(line(row) for row in body)])


def _looks_numeric(cell: str) -> bool:
    text = cell.replace(",", "").replace("x", "").replace("%", "").replace("±", "").strip()
    if text in ("", "-", "—"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
