"""What the use cases share: their options, the ports, and the machinery of one process (the
render gate and the count of jobs running here).

The options are plain values that the edge (bootstrap.service_options) takes from the
settings: no use case reads Settings.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from imgpipe.core import jobs, lifecycle
from imgpipe.core.errors import ImageBusyError, NotFoundError
from imgpipe.core.img_url import FULL_SIGNATURE
from imgpipe.core.model import ImageRecord, ObjectEvent, utcnow
from imgpipe.core.ports import (
    DerivedCache,
    EventPublisher,
    JobQueue,
    MetadataStore,
    Metrics,
    NullDerivedCache,
    NullEvents,
    ObjectStore,
    Renderer,
)
from imgpipe.core.rendering import RenderOptions, RenderPreset
from imgpipe.core.transform import TransformLimits

# Compare-and-set writes of a record tried before the image counts as busy.
CAS_RETRIES = 5


@dataclass(frozen=True)
class DeliveryOptions:
    """The settings of the `/img` route (service/delivery.py), as plain values (config's
    [transform] section)."""

    encoder: RenderPreset  # the encoder settings and default qualities of every result
    keys: tuple[tuple[bytes, bytes], ...] = ()  # (key, salt) pairs that may sign a URL
    unsafe: bool = False  # "insecure" and "_" accepted as a signature
    signature_size: int = FULL_SIGNATURE
    limits: TransformLimits = field(default_factory=TransformLimits)
    # A result over it is answered by a redirect to the stored object (AWS: Lambda's 6 MB
    # response limit); None: always inline.
    inline_limit_bytes: int | None = None
    # Small results kept in memory for cached hits (service.hits); 0: none.
    memory_budget_bytes: int = 0
    # JPEGs decoded at the scale that just covers the result (engine.decode: sharp off).
    fast_shrink_on_load: bool = False
    # A JPEG's 1/8 decode kept beside its results and read by its next renders (engine.twin).
    twins: bool = False


@dataclass(frozen=True)
class ServiceOptions:
    """The settings the use cases act on, as plain values."""

    render: RenderOptions
    # What this worker's settings make: each preset's specHash, the record's renditionHash.
    presets: tuple[lifecycle.Preset, ...]
    rendition_hash: str
    # A lease outlives the slowest allowed render, so it only lapses when a worker died.
    lease_s: float
    max_bytes: int  # an original over it is not read: its record ends FAILED (too_large)
    max_distance: int  # the most (and the default) maxDistance of a similarity query
    # On S3 the bucket's own event notification queues every new object; locally we do.
    store_notifies: bool = False
    # How many images may be leased and rendering at one time, the renderer's process count
    # (None: no limit). The local pool runs more job threads than that, so that one thread
    # writes its renditions and record while another's image is already rendering; the gate
    # keeps the extra threads from leasing an image before a rendering process is free (the
    # lease and durationMs would count the wait).
    renders_at_once: int | None = None
    # The /img route's options; None: this service makes no on-request results.
    delivery: DeliveryOptions | None = None


class RunningJobs:
    """The keys whose job runs in this process now, by count (a second job of a key may be
    finding it busy): lease recovery leaves their leases alone."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def of(self, key: str) -> Iterator[None]:
        with self._lock:
            self._counts[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[key] -= 1
                if self._counts[key] <= 0:
                    del self._counts[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._counts


@dataclass
class ServiceContext:
    """The ports and options every use case of one service works with, and the machinery
    they must share to be one service: one render gate, one count of running jobs."""

    objects: ObjectStore
    records: MetadataStore
    queue: JobQueue
    renderer: Renderer
    metrics: Metrics
    options: ServiceOptions
    events: EventPublisher = field(default_factory=NullEvents)
    clock: Callable[[], datetime] = utcnow
    derived: DerivedCache = field(default_factory=NullDerivedCache)
    gate: contextlib.AbstractContextManager[object] = field(init=False, repr=False)
    running: RunningJobs = field(init=False, repr=False, default_factory=RunningJobs)

    def __post_init__(self) -> None:
        at_once = self.options.renders_at_once
        self.gate = (
            threading.BoundedSemaphore(at_once) if at_once is not None else contextlib.nullcontext()
        )

    def send(self, job: jobs.Job, cost: int = 0) -> None:
        """Queue `job` under its dedup id; `cost` is what it weighs (an original's bytes)."""
        self.queue.send(job.body(), dedup_id=job.dedup_id, cost=cost)

    def queue_processing(self, event: ObjectEvent) -> None:
        self.send(jobs.Created(event), cost=event.size or 0)

    def record(self, image_id: str) -> ImageRecord:
        """The record of `image_id`; NotFoundError when there is none."""
        record = self.records.get(image_id)
        if record is None:
            raise NotFoundError(f"no image {image_id}")
        return record

    def busy(self, lease_until: str) -> ImageBusyError:
        """The error for an image another worker holds until `lease_until`."""
        wait = (datetime.fromisoformat(lease_until) - self.clock()).total_seconds()
        return ImageBusyError(
            f"another worker holds this image until {lease_until}", retry_after_s=max(wait, 0.0)
        )
