"""Every encode of a render, longest first, on the render's own thread and, while the machine
has an idle core, a helper thread.

Pillow 13 releases the GIL while libwebp encodes (its JPEG encoder does not), as libvips does,
so an image rendering alone (the only upload, the last of a batch) uses two cores. Under full
load the helper waits instead: an always-on second thread per render cost up to 3.5% of
throughput there (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import RenderPreset
from imgpipe.engine.cpu import runnable_threads, usable_cores
from imgpipe.engine.vips import VipsImage
from imgpipe.engine.writers import PillowPixels, pillow_encodes, write

# WebP (method 4) costs ~6x a baseline JPEG of the same pixels; AVIF and PNG more still.
_ENCODE_WEIGHT: dict[str, float] = {"jpeg": 1.0, "webp": 6.0, "png": 4.0, "avif": 20.0}
# How often a waiting helper looks again for an idle core.
_RECHECK_S = 0.01
# False: every encode in the render's own thread (bench/run.py measures the helper's effect).
ENCODE_HELPER = True


class EncodeJob(NamedTuple):
    """One rendition in one format: its preset, its pixels, and their Pillow copy."""

    spec: RenderPreset
    format: OutputFormat
    image: VipsImage
    as_pillow: PillowPixels

    @property
    def cost(self) -> float:
        """A rough relative CPU cost, only to start the longest encodes first."""
        return float(self.image.width * self.image.height) * _ENCODE_WEIGHT.get(self.format, 1.0)


def encode_jobs(
    presets: tuple[RenderPreset, ...],
    images: list[VipsImage],
    keep: int,
    background: tuple[int, int, int],
) -> list[EncodeJob]:
    """Each preset's image in each of its formats (a format listed twice is written once)."""
    jobs: list[EncodeJob] = []
    for spec, image in zip(presets, images, strict=True):
        formats = list(dict.fromkeys(spec.formats))
        uses = sum(pillow_encodes(spec, fmt, keep) for fmt in formats)
        as_pillow = PillowPixels(image, background, uses)
        jobs += [EncodeJob(spec, fmt, image, as_pillow) for fmt in formats]
    return jobs


def encode_all(jobs: list[EncodeJob], keep: int, background: tuple[int, int, int]) -> list[bytes]:
    """Every encode, returned in `jobs`' order. They start longest first, and a helper thread
    takes encodes from the same list while the machine has a core to spare."""

    def run(job: EncodeJob) -> bytes:
        return write(job.image, job.format, job.spec, keep, background, job.as_pillow)

    if len(jobs) < 2 or usable_cores() < 2 or not ENCODE_HELPER:
        return [run(job) for job in jobs]
    order = deque(sorted(range(len(jobs)), key=lambda n: -jobs[n].cost))
    blobs: list[bytes] = [b""] * len(jobs)
    finished = threading.Event()

    def help_out() -> None:
        while not finished.is_set():
            # This thread and the render's own count among the runnable ones.
            if runnable_threads() > usable_cores():
                finished.wait(_RECHECK_S)
                continue
            try:
                n = order.popleft()
            except IndexError:
                return
            blobs[n] = run(jobs[n])

    longest = order.popleft()  # the render's own thread takes it, before the helper starts
    helper = helper_pool().submit(help_out)
    try:
        n = longest
        while True:
            blobs[n] = run(jobs[n])
            try:
                n = order.popleft()
            except IndexError:  # the helper may take the last one between a look and a pop
                break
    finally:
        finished.set()
    # A helper still queued (every pool thread busy with other renders: more in-process
    # renders than cores) has nothing left to do; only one that started is waited for.
    if not helper.cancel():
        helper.result()
    return blobs


# One pool per process id: a forked child must not use its parent's (threadless) pool.
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def helper_pool() -> ThreadPoolExecutor:
    """The process' helper threads (one per render at most), made on first use (and again
    in a forked child)."""
    with _pools_lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = ThreadPoolExecutor(
                usable_cores(), thread_name_prefix="imgpipe-encode"
            )
        return pool
