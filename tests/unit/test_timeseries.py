"""The dashboard's last-hour series: buckets, percentiles, queue depth."""

from __future__ import annotations

from imgpipe.adapters.local.timeseries import TeeMetrics, TimeSeries, percentile
from imgpipe.core.ports import QueueStats


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


def test_counts_and_latency_land_in_their_bucket() -> None:
    clock = Clock()
    depth = [7]
    series = TimeSeries(lambda: QueueStats(visible=depth[0], in_flight=1, dead=0), clock=clock)
    series.incr("images_processed")
    series.incr("images_processed")
    series.incr("images_failed", code="corrupt_image")
    series.incr("bytes_out", 1000)  # not charted
    for seconds in (0.2, 0.4, 1.0):
        series.timing("processing_seconds", seconds)
    clock.now += 25  # two buckets later
    depth[0] = 2
    series.incr("images_processed")
    points = series.snapshot()["points"]
    assert len(points) == 360
    assert [p["t"] for p in points] == sorted(p["t"] for p in points)
    first, last = points[-3], points[-1]
    assert (first["processed"], first["failed"], first["p50"], first["p95"]) == (2, 1, 0.4, 1.0)
    assert (last["processed"], last["p50"], last["queueDepth"]) == (1, None, 3)
    assert points[-2]["processed"] == 0


def test_window_keeps_one_hour() -> None:
    clock = Clock()
    series = TimeSeries(clock=clock)
    series.incr("images_processed")
    clock.now += 3600
    assert sum(p["processed"] for p in series.snapshot()["points"]) == 0


def test_tee_forwards_to_every_sink() -> None:
    a, b = TimeSeries(clock=Clock()), TimeSeries(clock=Clock())
    TeeMetrics(a, b).incr("images_processed")
    assert a.snapshot()["points"][-1]["processed"] == b.snapshot()["points"][-1]["processed"] == 1
