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

Prices are imgpipe.ops.prices'. A month is 30 days; the free tier is ignored; KB is 1000 bytes,
GB is 2**30 bytes (AWS's GB-month), Lambda's GB-s is MB / 1024.

    workload    the figures (measured, from the template, estimated), Workload, Volumes
    bill        estimate(workload): every line in order, and the notes
    delivery    the views: CloudFront's lines or straight to S3 and the API, and the saving
    dynamodb    the record's writes and storage in the table and its GSIs; DynamoDB's lines
    services    the other services' lines: Lambda, API Gateway, S3, SQS, CloudWatch, X-Ray,
                the events function and EventBridge
    result      LineItem and Estimate (its JSON document)
    table       the strings of the CLI's table
"""

from imgpipe.ops.cost.bill import estimate, notes
from imgpipe.ops.cost.delivery import cdn_lines, delivery, direct_lines, view_lines
from imgpipe.ops.cost.dynamodb import (
    INDEXES,
    IndexModel,
    Projection,
    Step,
    index_write_units,
    record_steps,
    record_write_units,
    record_writes_per_image,
    stored_bytes_per_image,
    write_units,
)
from imgpipe.ops.cost.result import Delivery, Estimate, LineItem, Scaling
from imgpipe.ops.cost.services import emf_metric_series, event_lines, sampled_traces
from imgpipe.ops.cost.table import format_price, format_quantity, format_usd
from imgpipe.ops.cost.workload import (
    ACCESS_LOG_BYTES,
    ALARMS,
    API_CALL_MS,
    API_CALLS_PER_IMAGE,
    API_MEMORY_MB,
    ARCHITECTURE,
    BATCH_SIZE,
    CDN_HIT_RATE,
    DASHBOARDS,
    DAYS_PER_MONTH,
    DEFAULT_CUSTOM_METRICS,
    EMF_BYTES_PER_IMAGE,
    EMF_BYTES_PER_INVOCATION,
    EVENTS_BATCH_SIZE,
    EVENTS_INVOCATION_MS,
    EVENTS_LOG_BYTES,
    EVENTS_MEMORY_MB,
    GB,
    IMG_CACHED_MS,
    KB,
    LABEL_VALUES,
    MEASURED_ORIGINAL_KB,
    MEASURED_RENDER_MS,
    MEASURED_RENDITIONS_KB,
    PLATFORM_LOG_BYTES,
    RECORD_BYTES,
    SECONDS_PER_MONTH,
    SQS_IDLE_POLLERS,
    SQS_LONG_POLL_S,
    WORKER_MEMORY_MB,
    XRAY_FIXED_RATE,
    XRAY_RESERVOIR_PER_S,
    Volumes,
    Workload,
)

__all__ = [
    "ACCESS_LOG_BYTES",
    "ALARMS",
    "API_CALLS_PER_IMAGE",
    "API_CALL_MS",
    "API_MEMORY_MB",
    "ARCHITECTURE",
    "BATCH_SIZE",
    "CDN_HIT_RATE",
    "DASHBOARDS",
    "DAYS_PER_MONTH",
    "DEFAULT_CUSTOM_METRICS",
    "EMF_BYTES_PER_IMAGE",
    "EMF_BYTES_PER_INVOCATION",
    "EVENTS_BATCH_SIZE",
    "EVENTS_INVOCATION_MS",
    "EVENTS_LOG_BYTES",
    "EVENTS_MEMORY_MB",
    "GB",
    "IMG_CACHED_MS",
    "INDEXES",
    "KB",
    "LABEL_VALUES",
    "MEASURED_ORIGINAL_KB",
    "MEASURED_RENDER_MS",
    "MEASURED_RENDITIONS_KB",
    "PLATFORM_LOG_BYTES",
    "RECORD_BYTES",
    "SECONDS_PER_MONTH",
    "SQS_IDLE_POLLERS",
    "SQS_LONG_POLL_S",
    "WORKER_MEMORY_MB",
    "XRAY_FIXED_RATE",
    "XRAY_RESERVOIR_PER_S",
    "Delivery",
    "Estimate",
    "IndexModel",
    "LineItem",
    "Projection",
    "Scaling",
    "Step",
    "Volumes",
    "Workload",
    "cdn_lines",
    "delivery",
    "direct_lines",
    "emf_metric_series",
    "estimate",
    "event_lines",
    "format_price",
    "format_quantity",
    "format_usd",
    "index_write_units",
    "notes",
    "record_steps",
    "record_write_units",
    "record_writes_per_image",
    "sampled_traces",
    "stored_bytes_per_image",
    "view_lines",
    "write_units",
]
