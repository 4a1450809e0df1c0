"""Prometheus metrics for the local server: the Metrics port plus gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from imgpipe.core.model import Status
from imgpipe.core.ports import QueueStats

NAMESPACE = "imgpipe"

# One table of every metric the core may name: a typo is an error, not a silent new series.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "images_processed": ("Images that ended PROCESSED", ()),
    "images_failed": ("Images that ended FAILED, by error code", ("code",)),
    "images_deleted": ("Records deleted with their renditions", ()),
    "attempts": ("Processing attempts started", ()),
    "dead_letters": ("Jobs given up after their last attempt", ()),
    "events_skipped": ("Jobs that did no work (stale, duplicate, up to date)", ("reason",)),
    "results_discarded": ("Results dropped because another worker took the image over", ()),
    "bytes_in": ("Bytes of originals processed", ()),
    "bytes_out": ("Bytes of renditions written", ()),
    "uploads": ("Originals accepted through the API", ()),
    "events_failed": ("Events that could not be published (logged, never retried)", ()),
    "webhook_deliveries": ("Webhook delivery attempts by outcome", ("outcome",)),
    "degraded": ("Times a part of the server became degraded (GET /health), by part", ("part",)),
    "worker_restarts": ("Job threads that ended unexpectedly and were replaced", ()),
    "transforms": (
        "On-request results (/img) answered, by how: hit (read from the derived cache),"
        " miss (rendered), shared (waited for an identical render in flight)",
        ("result",),
    ),
    "derived_evicted": ("Cached on-request results removed to keep to the budget", ()),
}
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "processing_seconds": (
        "Time from claiming an image to its final record",
        (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0),
    ),
}


class _StateCollector(Collector):
    def __init__(
        self,
        queue_stats: Callable[[], QueueStats],
        status_counts: Callable[[], dict[Status, int]],
    ) -> None:
        self._queue_stats = queue_stats
        self._status_counts = status_counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        stats = self._queue_stats()
        depth = GaugeMetricFamily(
            f"{NAMESPACE}_queue_messages", "Jobs in the queue by state", labels=["state"]
        )
        depth.add_metric(["visible"], stats.visible)
        depth.add_metric(["in_flight"], stats.in_flight)
        depth.add_metric(["dead"], stats.dead)
        yield depth
        yield GaugeMetricFamily(
            f"{NAMESPACE}_queue_oldest_age_seconds",
            "Age of the oldest waiting job",
            value=stats.oldest_age_s,
        )
        images = GaugeMetricFamily(f"{NAMESPACE}_images", "Records by status", labels=["status"])
        for status, count in self._status_counts().items():
            images.add_metric([status.value], count)
        yield images


class _OutboxCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        outbox = GaugeMetricFamily(
            f"{NAMESPACE}_webhook_outbox",
            "Webhook deliveries waiting (pending) or given up (dead: `imgpipe redrive`)",
            labels=["state"],
        )
        for state, count in sorted(self._counts().items()):
            outbox.add_metric([state], count)
        yield outbox


class _HealthCollector(Collector):
    def __init__(self, problems: Callable[[], dict[str, str]], parts: Iterable[str]) -> None:
        self._problems = problems
        self._parts = tuple(parts)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        degraded = GaugeMetricFamily(
            f"{NAMESPACE}_degraded", "1 while a part is degraded (GET /health)", labels=["part"]
        )
        problems = self._problems()
        for part in sorted({*self._parts, *problems}):
            degraded.add_metric([part], 1.0 if part in problems else 0.0)
        yield degraded


class PrometheusMetrics:
    """The Metrics port over a registry of its own (tests get a clean one each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._counters = {
            name: Counter(f"{NAMESPACE}_{name}", doc, labels, registry=self.registry)
            for name, (doc, labels) in COUNTERS.items()
        }
        self._histograms = {
            name: Histogram(f"{NAMESPACE}_{name}", doc, buckets=buckets, registry=self.registry)
            for name, (doc, buckets) in HISTOGRAMS.items()
        }

    def incr(self, name: str, value: float = 1.0, **labels: str) -> None:
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(value)

    def timing(self, name: str, seconds: float, **labels: str) -> None:
        histogram = self._histograms[name]
        (histogram.labels(**labels) if labels else histogram).observe(seconds)

    def watch_state(
        self,
        queue_stats: Callable[[], QueueStats],
        status_counts: Callable[[], dict[Status, int]],
    ) -> None:
        self.registry.register(_StateCollector(queue_stats, status_counts))

    def watch_webhook_outbox(self, counts: Callable[[], dict[str, int]]) -> None:
        """Gauges of the webhook outbox by state, read at scrape time."""
        self.registry.register(_OutboxCollector(counts))

    def watch_health(self, problems: Callable[[], dict[str, str]], parts: Iterable[str]) -> None:
        """A 0/1 gauge per part of the server that can be degraded, read at scrape time."""
        self.registry.register(_HealthCollector(problems, parts))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
