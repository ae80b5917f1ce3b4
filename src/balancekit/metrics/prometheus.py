"""balancekit metrics as a ``prometheus_client`` collector (``pip install balancekit[prometheus]``).

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> import balancekit as bk
>>> from balancekit.metrics import Source
>>> from balancekit.metrics.prometheus import PrometheusCollector
>>> lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80"])
>>> registry = CollectorRegistry()
>>> registry.register(PrometheusCollector(Source(lb, target="payments")))
>>> lb.release(lb.select(), ok=False)
>>> text = generate_latest(registry).decode()
>>> 'balancekit_lb_requests_total{outcome="failed",target="payments"} 1.0' in text
True

A custom collector (``prometheus_client.registry.Collector``): each scrape calls
:meth:`PrometheusCollector.collect`, which reads every source once and builds the metric
families; nothing is recorded on the request path. Counters are exposed with ``_total``,
units are in the names (``_seconds``), and gRFC A78's ``endpoint_weights`` is a real
histogram. Register it on a registry (``prometheus_client.REGISTRY`` for the default
``/metrics``), or serve it with ``prometheus_client.start_http_server``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - depends on the environment
    from .._errors import missing_extra

    raise missing_extra(
        "balancekit.metrics.prometheus", "prometheus_client", "prometheus", "prometheus_client"
    ) from error

from .._errors import InvalidOption
from .._options import describe
from ._catalog import CATALOG
from ._catalog import Metric as Spec
from ._read import Point, Source

__all__ = ["PrometheusCollector"]


def _family(spec: Spec) -> Metric:
    labels = ["target", *spec.labels]
    if spec.kind == "counter":
        return CounterMetricFamily(spec.prometheus, spec.description, labels=labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.prometheus, spec.description, labels=labels)
    return HistogramMetricFamily(spec.prometheus, spec.description, labels=labels)


def _add(family: Metric, point: Point) -> None:
    values = [value for _, value in point.labels]
    if isinstance(family, HistogramMetricFamily):
        buckets = [("+Inf" if bound == float("inf") else repr(bound), count)
                   for bound, count in point.buckets]  # fmt: skip
        family.add_metric(values, buckets, point.value)
    else:
        assert isinstance(family, CounterMetricFamily | GaugeMetricFamily)
        family.add_metric(values, point.value)


class PrometheusCollector(Collector):
    """Exports balancekit :class:`~balancekit.metrics.Source` objects at each scrape.

    Sources can be added and removed at any time (thread-safe); two with the same ``target``
    would make duplicate series, so :meth:`add` refuses that with :class:`InvalidOption`.
    A scrape costs O(n) per source of n endpoints (one read under its lock, as ``stats()``).
    Register one per registry and add every source to it: its :meth:`describe` names all the
    families, so the registry refuses a second one (``ValueError: Duplicated timeseries``).
    """

    def __init__(self, *sources: Source) -> None:
        self._lock = threading.Lock()
        self._sources: list[Source] = []
        for source in sources:
            self.add(source)

    def add(self, source: Source) -> None:
        """Export ``source`` too (from the next scrape on)."""
        if not isinstance(source, Source):
            raise InvalidOption(f"expected a balancekit.metrics.Source, not {describe(source)}")
        with self._lock:
            if any(known.target == source.target for known in self._sources):
                raise InvalidOption(f"a source with target {source.target!r} is exported already")
            self._sources.append(source)

    def remove(self, source: Source) -> None:
        """Stop exporting ``source`` (no error if it was not exported)."""
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets a registry check names without reading."""
        for spec in CATALOG:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        """Read every source once and yield the families that have samples."""
        with self._lock:
            sources = list(self._sources)
        families = {spec.name: _family(spec) for spec in CATALOG}
        for source in sources:
            for point in source.read():
                _add(families[point.metric.name], point)
        for family in families.values():
            if family.samples:
                yield family
