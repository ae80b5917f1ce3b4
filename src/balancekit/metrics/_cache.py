"""One read of each source per collection, however many instruments ask (OpenTelemetry).

The OpenTelemetry SDK calls each observable instrument's callback once per collection, and
the API gives a callback no collection id. So each source's points are read afresh when an
instrument asks whose points were already served from the last read: the first callback of a
collection re-reads, the others reuse it, in whatever order the SDK calls them.
"""

from __future__ import annotations

import threading

from ._read import Point, Source

__all__ = ["ReadCache"]


class ReadCache:
    """Points by metric name for each source, re-read when a metric is asked for twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: dict[int, dict[str, list[Point]]] = {}
        self._served: dict[int, set[str]] = {}

    def points(self, source: Source, metric: str) -> list[Point]:
        """``source``'s points of ``metric`` from a read no instrument of ``metric`` saw yet."""
        key = id(source)
        with self._lock:
            served = self._served.get(key)
            if served is None or metric in served:
                by_name: dict[str, list[Point]] = {}
                for point in source.read():
                    by_name.setdefault(point.metric.name, []).append(point)
                self._points[key] = by_name
                served = self._served[key] = set()
            served.add(metric)
            return self._points[key].get(metric, [])

    def forget(self, source: Source) -> None:
        """Drop what is kept for ``source`` (it is no longer exported)."""
        with self._lock:
            self._points.pop(id(source), None)
            self._served.pop(id(source), None)
