"""The workload a bill is for, what it amounts to in a month, and the figures its defaults and
the line items take: measured, read from infra/template.yaml, or estimated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

DAYS_PER_MONTH = 30
SECONDS_PER_MONTH = DAYS_PER_MONTH * 86_400
GB = 2**30
KB = 1000

# -- measured per image (`make bench`, docs/benchmarks.md's "Lambda" section) --------------------
# The median per-image render time of imgpipe.engine.render_unhashed() on one core (x86
# standing in for Graviton), 12 MP photos: the highest of the recent runs, so that the
# estimate errs high. The worker's render() also hashes the original (sha256 through
# OpenSSL), about 1% more, not added.
MEASURED_RENDER_MS = 284.0
# The 24 corpus photos' mean size (bench/corpus.py; the doc rounds it to "3.1 MB").
MEASURED_ORIGINAL_KB = 3069.0
# "Per rendition": imgpipe's six default renditions, 254.5 + 184.7 + 70.6 + 51.6 + 10.0 + 7.8.
MEASURED_RENDITIONS_KB = 579.2
# The DynamoDB item (dynamodb_store.to_item: doc JSON + revision + GSI keys) of each status,
# median of 8 corpus photos through ImageService: EXIF, hashes, blurhash and six renditions
# make the PROCESSED item 3 write units, the others 1.
RECORD_BYTES = {"PENDING": 870, "PROCESSING": 898, "PROCESSED": 2296}

# -- from infra/template.yaml (tests/unit/test_cost.py checks these against it) -------------
WORKER_MEMORY_MB = 2048  # WorkerMemorySize default
API_MEMORY_MB = 2048  # ApiMemorySize default
BATCH_SIZE = 10  # the worker's SQS event source BatchSize
ALARMS = 9  # AWS::CloudWatch::Alarm resources
DASHBOARDS = 1  # AWS::CloudWatch::Dashboard resources
ARCHITECTURE = "arm64"
EVENTS_MEMORY_MB = 256  # EventsFunction MemorySize
EVENTS_BATCH_SIZE = 10  # its DynamoDB stream event source BatchSize

# -- estimates (not measured; each a flag or a field of Workload) --------------------------
API_CALLS_PER_IMAGE = 3.0  # POST /uploads, GET /images/{id}, one rendition redirect
API_CALL_MS = 50.0  # one small API call: a record read, presigned URLs, FastAPI via Mangum
# Lambda's START, END and REPORT lines (+ the XRAY line) of one invocation, LogFormat Text.
PLATFORM_LOG_BYTES = 360
# Powertools' EMF blob, measured: 455 bytes for one image's metrics, 751 for ten.
EMF_BYTES_PER_INVOCATION = 422
EMF_BYTES_PER_IMAGE = 33
ACCESS_LOG_BYTES = 350  # one line of the template's API access-log format
# One events invocation: parse up to 10 stream records, one PutEvents round trip; not measured.
EVENTS_INVOCATION_MS = 60.0
EVENTS_LOG_BYTES = 420  # its "events put" line (Powertools JSON with the Lambda context)
# Lambda polls an SQS queue with 5 long polls (20 s each) at a time even when it is idle.
SQS_IDLE_POLLERS = 5
SQS_LONG_POLL_S = 20
# Lambda's X-Ray sampling: the first request each second, then 5% of the rest (per function).
XRAY_RESERVOIR_PER_S = 1
XRAY_FIXED_RATE = 0.05
# Labelled EMF series: the error codes a month sees (images_failed by code), skip reasons.
LABEL_VALUES = {"code": 4, "reason": 2}
# Without the aws extra (the CLI counts adapters/aws/emf_metrics.py's table when it can):
DEFAULT_CUSTOM_METRICS = 17  # 11 metrics without labels + 4 codes + 2 reasons
# Views: the share the CDN answers from its cache (an operator's estimate: long TTLs and
# versioned URLs make a popular image a hit after each edge's first view), and the API
# function's time for an /img answer from derived/ (signature, HEAD + GET of the result).
CDN_HIT_RATE = 0.9
IMG_CACHED_MS = 50.0


@dataclass(frozen=True)
class Workload:
    images_per_day: float
    duration_ms: float = MEASURED_RENDER_MS
    memory_mb: int = WORKER_MEMORY_MB
    original_kb: float = MEASURED_ORIGINAL_KB
    renditions_kb: float = MEASURED_RENDITIONS_KB
    renditions_per_image: int = 6
    api_calls_per_image: float = API_CALLS_PER_IMAGE
    api_duration_ms: float = API_CALL_MS
    api_memory_mb: int = API_MEMORY_MB
    gets_per_image: float = 0.0  # S3 GETs of renditions served (presigned URLs)
    months: int = 1  # whose bill: storage holds the uploads of every month up to this one
    batch_size: int = BATCH_SIZE
    pending_write: bool = True  # POST /images and backfill write PENDING; presigned uploads not
    # The template always deploys the events function (EventBusName, default "default"):
    # one image.processed or image.failed event per finished image.
    events: bool = True
    custom_metrics: int = DEFAULT_CUSTOM_METRICS
    record_bytes: Mapping[str, int] = field(default_factory=lambda: dict(RECORD_BYTES))
    # Views a month per image uploaded in it: of eager renditions, and of `/img` results.
    views_per_image: float = 0.0
    transforms_per_image: float = 0.0
    cdn: bool = True  # the template's CdnEnabled default: CloudFront in front of both
    cdn_hit_rate: float = CDN_HIT_RATE
    view_kb: float | None = None  # bytes of one view; None: the mean rendition
    img_duration_ms: float = IMG_CACHED_MS

    def __post_init__(self) -> None:
        if self.images_per_day < 0:
            raise ValueError("images per day cannot be negative")
        if self.months < 1 or self.batch_size < 1:
            raise ValueError("months and batch size must be at least 1")
        if self.views_per_image < 0 or self.transforms_per_image < 0:
            raise ValueError("views per image cannot be negative")
        if not 0 <= self.cdn_hit_rate <= 1:
            raise ValueError("the hit rate is a share: from 0 to 1")

    @property
    def mean_view_kb(self) -> float:
        """What one view sends: `view_kb`, or the mean of the image's renditions."""
        if self.view_kb is not None:
            return self.view_kb
        return self.renditions_kb / self.renditions_per_image if self.renditions_per_image else 0

    @property
    def images_per_month(self) -> float:
        return self.images_per_day * DAYS_PER_MONTH

    @property
    def images_stored(self) -> float:
        """Images in storage on average during month `months`: every earlier month's uploads
        and, on average over the month, half of this month's."""
        return self.images_per_month * (self.months - 0.5)


class Volumes(NamedTuple):
    """What a month of the workload amounts to, counted once for every service's lines."""

    images: float
    batches: float  # worker invocations, one per SQS batch
    api_calls: float
    stored: float  # images in storage on average (Workload.images_stored)
    event_batches: float  # events function invocations (none without events)
    views: float = 0.0  # of eager renditions
    transforms: float = 0.0  # `/img` views

    @classmethod
    def of(cls, w: Workload) -> Volumes:
        images = w.images_per_month
        # Full batches, as for the worker: below ~10 finished images a second the 1 s batching
        # window closes them early and there are more invocations (the note on batches says so).
        event_batches = images / EVENTS_BATCH_SIZE if w.events else 0.0
        return cls(
            images,
            images / w.batch_size,
            images * w.api_calls_per_image,
            w.images_stored,
            event_batches,
            images * w.views_per_image,
            images * w.transforms_per_image,
        )
