"""The local API's token bucket: a burst, then the sustained rate, per client."""

from __future__ import annotations

from imgpipe.entrypoints.ratelimit import TokenBuckets


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_per_client() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token refills in 1/rate seconds
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 10  # refills up to the burst, no further
    assert [buckets.take("a") for _ in range(4)][-1] > 0
