"""balancekit metrics as OpenTelemetry observable instruments (``pip install balancekit[otel]``).

>>> from opentelemetry.sdk.metrics import MeterProvider
>>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
>>> import balancekit as bk
>>> from balancekit.metrics import Source
>>> from balancekit.metrics.otel import OtelMetrics
>>> reader = InMemoryMetricReader()
>>> provider = MeterProvider(metric_readers=[reader])
>>> lb = bk.RoundRobin(["10.0.0.1:80", "10.0.0.2:80"])
>>> metrics = OtelMetrics(Source(lb, target="payments"), meter_provider=provider)
>>> lb.release(lb.select())
>>> data = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
>>> [m.data.data_points[0].value for m in data if m.name == "balancekit.lb.picks"]
[1.0]

Every metric of :data:`balancekit.metrics.CATALOG` becomes one asynchronous instrument
(counters: ``ObservableCounter``; gauges that add up across series, such as in-flight
requests and endpoint counts: ``ObservableUpDownCounter``; other gauges: ``ObservableGauge``)
whose callback reads the
sources when the SDK collects, so nothing runs on the request path. Each source is read once
per collection (:class:`~balancekit.metrics._cache.ReadCache`). OpenTelemetry has no
asynchronous histogram, so gRFC A78's ``endpoint_weights`` histogram is exported as an
``ObservableCounter`` of cumulative bucket counts with an ``le`` attribute (the upper bound,
``+Inf`` for the total), the shape Prometheus stores a histogram in.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Meter,
        MeterProvider,
        Observation,
        get_meter_provider,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    from .._errors import missing_extra

    raise missing_extra(
        "balancekit.metrics.otel", "opentelemetry-api", "otel", "opentelemetry"
    ) from error

from .._errors import InvalidOption
from .._options import describe
from ._cache import ReadCache
from ._catalog import CATALOG, Metric
from ._read import Point, Source

__all__ = ["OtelMetrics"]

#: The instrumentation scope the instruments are created in.
SCOPE = "balancekit"

# The OtelMetrics made on each provider: the SDK keeps the first instrument of a name and
# silently drops the callbacks of a second one, so a second OtelMetrics would export nothing.
_MADE: weakref.WeakKeyDictionary[MeterProvider, OtelMetrics] = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


def _bound(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


class OtelMetrics:
    """Observable instruments for balancekit :class:`~balancekit.metrics.Source` objects.

    Creates the instruments once, on ``meter_provider`` (default: the global one, from
    ``opentelemetry.metrics.get_meter_provider()``), under the scope ``balancekit``. Sources
    can be added and removed at any time (thread-safe); two sources with the same ``target``
    would make duplicate series, so :meth:`add` refuses that with :class:`InvalidOption`.
    Make one per provider (a second one raises :class:`InvalidOption`: the SDK would drop its
    instruments' callbacks, as they duplicate the first one's names); add every source to it.
    """

    def __init__(self, *sources: Source, meter_provider: MeterProvider | None = None) -> None:
        if meter_provider is None:
            meter_provider = get_meter_provider()
        elif not isinstance(meter_provider, MeterProvider):
            raise InvalidOption(
                f"meter_provider must be an OpenTelemetry MeterProvider, not"
                f" {describe(meter_provider)}"
            )
        from .. import __version__

        self._lock = threading.Lock()
        self._sources: list[Source] = []
        self._cache = ReadCache()
        for source in sources:
            self.add(source)
        with _MADE_LOCK:
            if meter_provider in _MADE:
                raise InvalidOption(
                    f"this MeterProvider has balancekit instruments already: add sources to its"
                    f" OtelMetrics ({_MADE[meter_provider]!r}) instead of making another"
                )
            _MADE[meter_provider] = self
        meter: Meter = meter_provider.get_meter(SCOPE, __version__)
        for metric in CATALOG:
            callbacks = [self._callback(metric)]
            if metric.additive:  # in-flight requests, endpoint counts: they add up
                meter.create_observable_up_down_counter(
                    metric.name, callbacks, unit=metric.unit, description=metric.description
                )
            elif metric.kind == "gauge":
                meter.create_observable_gauge(
                    metric.name, callbacks, unit=metric.unit, description=metric.description
                )
            else:  # counters, and the histogram as cumulative bucket counters
                meter.create_observable_counter(
                    metric.name, callbacks, unit=metric.unit, description=metric.description
                )

    def __repr__(self) -> str:
        with self._lock:
            return f"OtelMetrics({', '.join(map(repr, self._sources))})"

    def add(self, source: Source) -> None:
        """Export ``source`` too (from the next collection on)."""
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
        self._cache.forget(source)

    def _callback(self, metric: Metric) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                sources = list(self._sources)
            observations = []
            for source in sources:
                for point in self._cache.points(source, metric.name):
                    observations.extend(_observations(point))
            return observations

        return observe


def _observations(point: Point) -> list[Observation]:
    attributes = dict(point.labels)
    if not point.buckets:
        return [Observation(point.value, attributes)]
    return [
        Observation(count, {**attributes, "le": _bound(bound)}) for bound, count in point.buckets
    ]
