"""Metrics read at scrape time: an OpenTelemetry meter and a Prometheus collector.

Wrap each balancer in a :class:`Source` (with the ``target`` label naming its service, and
optionally its :class:`~balancekit.Retry`), then hand the sources to one of the adapters:

- :class:`balancekit.metrics.otel.OtelMetrics` (``pip install balancekit[otel]``): observable
  instruments whose callbacks read the sources when the SDK collects;
- :class:`balancekit.metrics.prometheus.PrometheusCollector` (``pip install
  balancekit[prometheus]``): a ``prometheus_client`` custom collector read at each scrape.

Neither adds work to ``select`` or ``release``: values come from the counters the library
keeps anyway (see :mod:`balancekit.metrics._read`). The names, units and labels are in
:data:`CATALOG` and docs/observability.md.
"""

from ._catalog import CATALOG, Metric
from ._read import Point, Source

__all__ = ["CATALOG", "Metric", "Point", "Source"]
