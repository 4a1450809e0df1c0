"""CloudWatch metrics through Powertools (Embedded Metric Format in the Lambda's log).

The names are the local Prometheus adapter's (a test keeps the two tables equal), in the
namespace POWERTOOLS_METRICS_NAMESPACE (default `imgpipe`) with the `service` dimension.
Every metric is emitted without labels (for alarms and totals); one with labels is emitted
again through `single_metric` with the labels as dimensions (`code`, `reason`: a handful of
values each, never an imageId or a key).
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

DEFAULT_NAMESPACE = "imgpipe"

COUNTERS: dict[str, tuple[MetricUnit, tuple[str, ...]]] = {
    "images_processed": (MetricUnit.Count, ()),
    "images_failed": (MetricUnit.Count, ("code",)),
    "images_deleted": (MetricUnit.Count, ()),
    "attempts": (MetricUnit.Count, ()),
    "dead_letters": (MetricUnit.Count, ()),
    "events_skipped": (MetricUnit.Count, ("reason",)),
    "results_discarded": (MetricUnit.Count, ()),
    "bytes_in": (MetricUnit.Bytes, ()),
    "bytes_out": (MetricUnit.Bytes, ()),
    "uploads": (MetricUnit.Count, ()),
    "events_failed": (MetricUnit.Count, ()),
    "webhook_deliveries": (MetricUnit.Count, ("outcome",)),  # local only; kept equal
    "degraded": (MetricUnit.Count, ("part",)),  # local only (GET /health); kept equal
    "worker_restarts": (MetricUnit.Count, ()),  # local only; kept equal
    "transforms": (MetricUnit.Count, ("result",)),
    "derived_evicted": (MetricUnit.Count, ()),  # local only (S3's lifecycle rule); kept equal
}
TIMINGS: dict[str, tuple[str, ...]] = {"processing_seconds": ()}
MAX_LABEL_CHARS = 64


class EmfMetrics:
    """The Metrics port over Powertools Metrics; `flush()` at the end of each invocation."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        # Powertools reads POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME itself.
        if not self.metrics.namespace:
            self.metrics.namespace = DEFAULT_NAMESPACE
        if not self.metrics.service:
            self.metrics.service = DEFAULT_NAMESPACE

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        unit, allowed = COUNTERS[name]  # a typo is an error, not a silent new metric
        self._emit(name, unit, value, allowed, labels)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        self._emit(name, MetricUnit.Seconds, seconds, TIMINGS[name], labels)

    def _emit(
        self,
        name: str,
        unit: MetricUnit,
        value: float,
        allowed: tuple[str, ...],
        labels: dict[str, str],
    ) -> None:
        if set(labels) - set(allowed):
            raise ValueError(f"metric {name} takes labels {allowed}, not {sorted(labels)}")
        self.metrics.add_metric(name=name, unit=unit, value=value)
        if not labels:
            return
        dimensions = {k: str(v)[:MAX_LABEL_CHARS] for k, v in labels.items()}
        dimensions = {"service": str(self.metrics.service), **dimensions}
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=self.metrics.namespace,
            default_dimensions=dimensions,
        ):
            pass

    def flush(self) -> None:
        """Print what was added since the last flush as one EMF blob (nothing if nothing)."""
        if self.metrics.metric_set:
            self.metrics.flush_metrics()
