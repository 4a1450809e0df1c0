"""The monthly AWS bill of a workload (`imgpipe cost`): pure arithmetic, no I/O.

Per image, what the deployed stack (infra/template.yaml) does and what each step costs:

- upload: one S3 PUT (or presigned POST) of the original, and S3 sends one SQS message;
- worker Lambda (arm64, batches of `batch_size` SQS messages): per image HEAD + GET of the
  original, `renditions_per_image` PUTs, one strongly consistent record read, the record
  writes (PENDING, PROCESSING, PROCESSED; each also writes the GSIs, see `INDEXES`), an EMF
  log blob per invocation; per batch one Lambda request, one SQS receive and one delete;
- API: `api_calls_per_image` calls (e.g. POST /uploads + GET /images/{id} + a rendition),
  each an HTTP API request, an API Lambda invocation, a record read and an access-log line;
- storage: originals + renditions in S3, the record in the table and each GSI, PITR;
- fixed: custom metrics, alarms and the dashboard, the SQS poller's idle long polls;
- events: the events function (arm64, batches of up to `EVENTS_BATCH_SIZE` finished images
  from the table's stream; its filter keeps the other writes from invoking it) and one
  EventBridge event per finished image; Lambda's reads of the stream are free;
- X-Ray traces by Lambda's default sampling.

Prices are imgpipe.prices'. A month is 30 days; the free tier is ignored; KB is 1000 bytes,
GB is 2**30 bytes (AWS's GB-month), Lambda's GB-s is MB / 1024.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imgpipe import prices

DAYS_PER_MONTH = 30
SECONDS_PER_MONTH = DAYS_PER_MONTH * 86_400
GB = 2**30
KB = 1000

# -- measured per image (`make bench`, docs/benchmarks.md's "Lambda" section) --------------------
# The median per-image render time of imgpipe.engine.render_unhashed() on one core (x86
# standing in for Graviton), 12 MP photos: 284 ms in the run of 2026-11-23 07:36 UTC, 270 to
# 284 ms over the last runs (270 at 11:13); the highest is kept, so the estimate errs high.
# The worker's render() also hashes the original (sha256 through OpenSSL: 2.5 to 2.8 ms for
# the corpus' 3.1 MB here), about 1% more, not added.
MEASURED_RENDER_MS = 284.0
# The 24 corpus photos' mean size (bench/corpus.py; the doc rounds it to "3.1 MB").
MEASURED_ORIGINAL_KB = 3069.0
# "Per rendition": imgpipe's six default renditions, 254.5 + 184.7 + 70.6 + 51.6 + 10.0 + 7.8.
MEASURED_RENDITIONS_KB = 579.2
# The DynamoDB item (dynamodb_store.to_item: doc JSON + revision + GSI keys) of each status,
# median of 8 corpus photos through ImageService, measured 2026-11-22: EXIF, hashes, blurhash
# and six renditions make the PROCESSED item 3 write units, the others 1.
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


Projection = Literal["ALL", "KEYS_ONLY", "INCLUDE"]


@dataclass(frozen=True)
class IndexModel:
    """A GSI as the cost of writing and storing it sees it.

    `keyed_by_status`: its key holds the status, so every status change moves the entry (a
    delete and a put: two index writes). `sparse`: only a PROCESSED record carries its key
    attributes (a PENDING or PROCESSING record is in none). `entry_bytes`: the size of one
    entry of a KEYS_ONLY or INCLUDE index, its 100 bytes of overhead included; an ALL index's
    entry is the item."""

    name: str
    projection: Projection
    keyed_by_status: bool = False
    sparse: bool = False
    entry_bytes: int = 0

    def present(self, status: str) -> bool:
        return not self.sparse or status == "PROCESSED"

    def entry(self, item_bytes: int) -> int:
        return item_bytes if self.projection == "ALL" else self.entry_bytes


# adapters/aws/dynamodb_store.py: byStatus (gsi1pk "{status}#{shard}") and byUpload
# (gsi2pk "all#{shard}"), both ALL, on every item; the near-duplicate indexes, sparse:
# bySha256 (KEYS_ONLY: imageId, sha256, gsi2sk) and byPhash0..3 (a 4-hex-digit band of the
# pHash, INCLUDE phash), which a status change alone never rewrites.
INDEXES = (
    IndexModel("byStatus", "ALL", keyed_by_status=True),
    IndexModel("byUpload", "ALL"),
    IndexModel("bySha256", "KEYS_ONLY", sparse=True, entry_bytes=262),
    *(IndexModel(f"byPhash{band}", "INCLUDE", sparse=True, entry_bytes=162) for band in range(4)),
)

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

Scaling = Literal["per_image", "fixed", "sampled"]


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

    def __post_init__(self) -> None:
        if self.images_per_day < 0:
            raise ValueError("images per day cannot be negative")
        if self.months < 1 or self.batch_size < 1:
            raise ValueError("months and batch size must be at least 1")

    @property
    def images_per_month(self) -> float:
        return self.images_per_day * DAYS_PER_MONTH

    @property
    def images_stored(self) -> float:
        """Images in storage on average during month `months`: every earlier month's uploads
        and, on average over the month, half of this month's."""
        return self.images_per_month * (self.months - 0.5)


@dataclass(frozen=True)
class LineItem:
    key: str  # stable name of the line, e.g. "s3.put"
    service: str
    item: str
    quantity: float  # per month
    unit: str  # what quantity counts
    price: float  # USD per `per` units
    per: float = 1.0
    scaling: Scaling = "per_image"

    @property
    def monthly_usd(self) -> float:
        return self.quantity / self.per * self.price


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    lines: tuple[LineItem, ...]
    notes: tuple[str, ...]

    @property
    def total_usd(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def per_million_images_usd(self) -> float:
        """The whole month's bill over the images it processed, per million."""
        images = self.workload.images_per_month
        return self.total_usd / images * 1_000_000 if images else 0.0

    def to_dict(self) -> dict[str, Any]:
        w = self.workload
        return {
            "region": prices.REGION,
            "pricesChecked": prices.PRICES_CHECKED,
            "imagesPerDay": w.images_per_day,
            "imagesPerMonth": w.images_per_month,
            "daysPerMonth": DAYS_PER_MONTH,
            "workload": {
                "durationMs": w.duration_ms,
                "memoryMb": w.memory_mb,
                "originalKb": w.original_kb,
                "renditionsKb": w.renditions_kb,
                "renditionsPerImage": w.renditions_per_image,
                "apiCallsPerImage": w.api_calls_per_image,
                "apiDurationMs": w.api_duration_ms,
                "apiMemoryMb": w.api_memory_mb,
                "getsPerImage": w.gets_per_image,
                "months": w.months,
                "batchSize": w.batch_size,
                "pendingWrite": w.pending_write,
                "events": w.events,
                "customMetrics": w.custom_metrics,
            },
            "lines": [
                {
                    "key": line.key,
                    "service": line.service,
                    "item": line.item,
                    "quantity": line.quantity,
                    "unit": line.unit,
                    "unitPrice": line.price,
                    "unitPricePer": line.per,
                    "scaling": line.scaling,
                    "monthlyUsd": round(line.monthly_usd, 6),
                }
                for line in self.lines
            ],
            "totalUsd": round(self.total_usd, 6),
            "perMillionImagesUsd": round(self.per_million_images_usd, 6),
            "notes": list(self.notes),
        }


# -- the parts ---------------------------------------------------------------------------------


def write_units(size_bytes: int) -> int:
    """On-demand write request units of one write of an item: 1 per KB (1024 bytes) begun."""
    return max(1, math.ceil(size_bytes / 1024))


Step = tuple[str | None, str]  # a put of the record: (status before or None, status after)


def index_write_units(index: IndexModel, before: int | None, after: int, step: Step) -> int:
    """WRUs one put of the record costs in one GSI (sizes are the table item's)."""
    was = step[0] is not None and index.present(step[0])
    now = index.present(step[1])
    if not was:
        return write_units(index.entry(after)) if now else 0
    old = index.entry(before or 0)
    if not now:
        return write_units(old)  # the entry is deleted
    if index.keyed_by_status:
        return write_units(old) + write_units(index.entry(after))
    if index.projection == "ALL":
        return write_units(max(old, index.entry(after)))
    return 0  # neither its keys nor its projected attributes changed


def record_write_units(
    step: Step, sizes: Mapping[str, int], indexes: tuple[IndexModel, ...] = INDEXES
) -> int:
    """WRUs of one put that changes the record's status: the table (a replacement costs the
    larger of the old and the new item) plus every GSI it touches."""
    before = sizes[step[0]] if step[0] is not None else None
    after = sizes[step[1]]
    units = write_units(max(before or 0, after))
    return units + sum(index_write_units(index, before, after, step) for index in indexes)


def record_steps(workload: Workload) -> list[Step]:
    """The puts of one image's record: PENDING (unless the upload was presigned: then the
    worker's first put inserts the record as PROCESSING), PROCESSING, PROCESSED."""
    if workload.pending_write:
        return [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "PROCESSED")]
    return [(None, "PROCESSING"), ("PROCESSING", "PROCESSED")]


def record_writes_per_image(workload: Workload, indexes: tuple[IndexModel, ...] = INDEXES) -> int:
    steps = record_steps(workload)
    return sum(record_write_units(step, workload.record_bytes, indexes) for step in steps)


def stored_bytes_per_image(workload: Workload, indexes: tuple[IndexModel, ...] = INDEXES) -> int:
    """A PROCESSED record in the table and its GSIs, DynamoDB's 100 bytes per item included."""
    item = workload.record_bytes["PROCESSED"] + 100
    return item + sum(index.entry(item) for index in indexes if index.present("PROCESSED"))


def sampled_traces(invocations: float) -> float:
    """Traces recorded in a month of `invocations` spread evenly, by the default sampling."""
    reservoir = XRAY_RESERVOIR_PER_S * SECONDS_PER_MONTH
    return min(invocations, reservoir) + XRAY_FIXED_RATE * max(0.0, invocations - reservoir)


def emf_metric_series(labels_by_metric: Mapping[str, tuple[str, ...]]) -> int:
    """Custom metrics the EMF adapter makes: each metric without labels, plus one series per
    value of its labels (LABEL_VALUES assumed seen in a month)."""
    series = 0
    for labels in labels_by_metric.values():
        series += 1
        if labels:
            series += math.prod(LABEL_VALUES.get(label, 1) for label in labels)
    return series


# -- the estimate ------------------------------------------------------------------------------


def estimate(w: Workload) -> Estimate:
    images = w.images_per_month
    batches = images / w.batch_size
    api_calls = images * w.api_calls_per_image
    stored = w.images_stored
    item_bytes = w.record_bytes["PROCESSED"] + 100  # DynamoDB adds 100 bytes per item
    puts = len(record_steps(w))
    worker_log = (EMF_BYTES_PER_INVOCATION + PLATFORM_LOG_BYTES) / w.batch_size
    worker_log += EMF_BYTES_PER_IMAGE
    api_log = ACCESS_LOG_BYTES + PLATFORM_LOG_BYTES
    # Full batches, as for the worker: below ~10 finished images a second the 1 s batching
    # window closes them early and there are more invocations (the note on batches says so).
    event_batches = images / EVENTS_BATCH_SIZE if w.events else 0.0
    events_log = event_batches * (PLATFORM_LOG_BYTES + EVENTS_LOG_BYTES)
    m = 1_000_000

    lines = [
        LineItem(
            "lambda.worker_compute",
            "Lambda",
            f"worker compute ({w.duration_ms:g} ms x {w.memory_mb} MB {ARCHITECTURE})",
            images * w.duration_ms / 1000 * w.memory_mb / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "lambda.worker_requests",
            "Lambda",
            f"worker requests (1 per batch of {w.batch_size})",
            batches,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            m,
        ),
        LineItem(
            "lambda.api_compute",
            "Lambda",
            f"API compute ({w.api_duration_ms:g} ms x {w.api_memory_mb} MB per call)",
            api_calls * w.api_duration_ms / 1000 * w.api_memory_mb / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "lambda.api_requests",
            "Lambda",
            f"API requests ({w.api_calls_per_image:g} per image)",
            api_calls,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            m,
        ),
        LineItem(
            "apigateway.requests",
            "API Gateway",
            "HTTP API requests",
            api_calls,
            "requests",
            prices.HTTP_API_PER_MILLION_REQUESTS,
            m,
        ),
        LineItem(
            "s3.put",
            "S3",
            f"PUT: original + {w.renditions_per_image} renditions",
            images * (1 + w.renditions_per_image),
            "requests",
            prices.S3_PUT_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "s3.get",
            "S3",
            f"GET: worker HEAD + GET, {w.gets_per_image:g} served",
            images * (2 + w.gets_per_image),
            "requests",
            prices.S3_GET_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "s3.storage",
            "S3",
            f"storage: originals + renditions (month {w.months})",
            stored * (w.original_kb + w.renditions_kb) * KB / GB,
            "GB-month",
            prices.S3_STANDARD_PER_GB_MONTH,
        ),
        LineItem(
            "dynamodb.writes",
            "DynamoDB",
            f"writes: {puts} puts of the record + its GSIs",
            images * record_writes_per_image(w),
            "WRU",
            prices.DYNAMODB_PER_MILLION_WRU,
            m,
        ),
        LineItem(
            "dynamodb.reads",
            "DynamoDB",
            "reads: worker + 1 per API call",
            images * (1 + w.api_calls_per_image),
            "RRU",
            prices.DYNAMODB_PER_MILLION_RRU,
            m,
        ),
        LineItem(
            "dynamodb.storage",
            "DynamoDB",
            f"storage: table + {len(INDEXES)} GSIs",
            stored * stored_bytes_per_image(w) / GB,
            "GB-month",
            prices.DYNAMODB_PER_GB_MONTH,
        ),
        LineItem(
            "dynamodb.pitr",
            "DynamoDB",
            "point-in-time recovery",
            stored * item_bytes / GB,
            "GB-month",
            prices.DYNAMODB_PITR_PER_GB_MONTH,
        ),
        LineItem(
            "sqs.requests",
            "SQS",
            "S3 send + receive and delete per batch",
            images + 2 * batches,
            "requests",
            prices.SQS_PER_MILLION_REQUESTS,
            m,
        ),
        LineItem(
            "sqs.idle_polls",
            "SQS",
            f"Lambda's idle long polls ({SQS_IDLE_POLLERS} pollers)",
            SQS_IDLE_POLLERS * SECONDS_PER_MONTH / SQS_LONG_POLL_S,
            "requests",
            prices.SQS_PER_MILLION_REQUESTS,
            m,
            "fixed",
        ),
        LineItem(
            "cloudwatch.logs",
            "CloudWatch",
            "logs: EMF + Lambda + API access logs",
            (images * worker_log + api_calls * api_log + events_log) / GB,
            "GB",
            prices.CLOUDWATCH_LOGS_PER_GB,
        ),
        LineItem(
            "cloudwatch.metrics",
            "CloudWatch",
            "custom metrics (EMF)",
            w.custom_metrics,
            "metrics",
            prices.CLOUDWATCH_PER_METRIC_MONTH,
            scaling="fixed",
        ),
        LineItem(
            "cloudwatch.alarms",
            "CloudWatch",
            "alarms",
            ALARMS,
            "alarms",
            prices.CLOUDWATCH_PER_ALARM_MONTH,
            scaling="fixed",
        ),
        LineItem(
            "cloudwatch.dashboard",
            "CloudWatch",
            "dashboard",
            DASHBOARDS,
            "dashboards",
            prices.CLOUDWATCH_PER_DASHBOARD_MONTH,
            scaling="fixed",
        ),
        LineItem(
            "xray.traces",
            "X-Ray",
            "traces (1/s + 5% sampled, per function)",
            sampled_traces(batches) + sampled_traces(api_calls) + sampled_traces(event_batches),
            "traces",
            prices.XRAY_PER_MILLION_TRACES,
            m,
            "sampled",
        ),
    ]
    if w.events:
        lines.extend(event_lines(images, event_batches))
    return Estimate(w, tuple(lines), notes(w))


def event_lines(images: float, batches: float) -> list[LineItem]:
    """The events function (fed by the table's stream: Lambda's stream reads are free) and
    the events it puts on the bus."""
    return [
        LineItem(
            "lambda.events_compute",
            "Lambda",
            f"events compute ({EVENTS_INVOCATION_MS:g} ms x {EVENTS_MEMORY_MB} MB per batch)",
            batches * EVENTS_INVOCATION_MS / 1000 * EVENTS_MEMORY_MB / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "lambda.events_requests",
            "Lambda",
            f"events requests (1 per {EVENTS_BATCH_SIZE} finished images)",
            batches,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            1_000_000,
        ),
        LineItem(
            "eventbridge.events",
            "EventBridge",
            "PutEvents: 1 per finished image",
            images,
            "events",
            prices.EVENTBRIDGE_PER_MILLION_EVENTS,
            1_000_000,
        ),
    ]


def notes(w: Workload) -> tuple[str, ...]:
    found = [
        f"List prices of {prices.REGION}, checked {prices.PRICES_CHECKED} from published "
        "pricing guides (src/imgpipe/prices.py): check them against AWS's pricing pages.",
        f"A month is {DAYS_PER_MONTH} days; the free tier is ignored.",
        f"Storage is month {w.months}'s: the uploads of the months before it plus half of "
        "this month's, nothing deleted.",
        "Not included: data transfer out, KMS requests (the bucket key makes them rare), "
        "cold starts, retries, CloudWatch Logs storage, S3 access-log objects, taxes.",
    ]
    if w.events:
        found.append(
            "DynamoDB Streams: nothing for the events function's reads (Lambda's are free)."
        )
    if w.batch_size > 1 and w.images_per_day / 86_400 < w.batch_size:
        found.append(
            f"Batches of {w.batch_size}: below ~{w.batch_size} images/s the 1 s batching "
            "window closes batches early; --batch-size 1 is the upper bound (the events "
            "function's batches of 10 likewise)."
        )
    if w.renditions_per_image != 6 and w.renditions_kb == MEASURED_RENDITIONS_KB:
        found.append(
            f"--renditions-kb is the measured size of the 6 default renditions; this "
            f"configuration writes {w.renditions_per_image}: pass their size."
        )
    return tuple(found)


# -- presentation (pure: strings for the CLI's table) -------------------------------------------


def format_usd(value: float) -> str:
    if 0 < value < 0.005:
        return "<$0.01"
    return f"${value:,.2f}"


def format_quantity(line: LineItem) -> str:
    q = line.quantity
    text = f"{q:,.0f}" if q >= 100 else f"{q:,.2f}".rstrip("0").rstrip(".")
    unit = line.unit
    if q == 1 and unit.endswith("s") and not unit.startswith("GB"):
        unit = unit[:-1]  # 1 dashboard
    return f"{text} {unit}"


def format_price(line: LineItem) -> str:
    text = f"{line.price:.10f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{line.price:.2f}"
    per = {1: "", 1000: "1K ", 1_000_000: "1M "}.get(int(line.per), f"{line.per:g} ")
    unit = line.unit
    if line.scaling == "fixed" and line.per == 1 and unit.endswith("s"):
        unit = unit[:-1]  # $0.30 / metric (a month)
    return f"${text} / {per}{unit}"
