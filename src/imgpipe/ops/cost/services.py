"""The line items of every service but DynamoDB: Lambda (the worker and the API), API Gateway,
S3, SQS, CloudWatch, X-Ray, and the events function with its EventBridge events."""

from __future__ import annotations

import math
from collections.abc import Mapping

from imgpipe.ops import prices
from imgpipe.ops.cost.result import LineItem
from imgpipe.ops.cost.workload import (
    ACCESS_LOG_BYTES,
    ALARMS,
    ARCHITECTURE,
    DASHBOARDS,
    EMF_BYTES_PER_IMAGE,
    EMF_BYTES_PER_INVOCATION,
    EVENTS_BATCH_SIZE,
    EVENTS_INVOCATION_MS,
    EVENTS_LOG_BYTES,
    EVENTS_MEMORY_MB,
    GB,
    KB,
    LABEL_VALUES,
    PLATFORM_LOG_BYTES,
    SECONDS_PER_MONTH,
    SQS_IDLE_POLLERS,
    SQS_LONG_POLL_S,
    XRAY_FIXED_RATE,
    XRAY_RESERVOIR_PER_S,
    Volumes,
    Workload,
)


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


def lambda_lines(w: Workload, v: Volumes) -> list[LineItem]:
    """The worker's and the API function's compute and requests."""
    return [
        LineItem(
            "lambda.worker_compute",
            "Lambda",
            f"worker compute ({w.duration_ms:g} ms x {w.memory_mb} MB {ARCHITECTURE})",
            v.images * w.duration_ms / 1000 * w.memory_mb / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "lambda.worker_requests",
            "Lambda",
            f"worker requests (1 per batch of {w.batch_size})",
            v.batches,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            1_000_000,
        ),
        LineItem(
            "lambda.api_compute",
            "Lambda",
            f"API compute ({w.api_duration_ms:g} ms x {w.api_memory_mb} MB per call)",
            v.api_calls * w.api_duration_ms / 1000 * w.api_memory_mb / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "lambda.api_requests",
            "Lambda",
            f"API requests ({w.api_calls_per_image:g} per image)",
            v.api_calls,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            1_000_000,
        ),
    ]


def api_gateway_lines(v: Volumes) -> list[LineItem]:
    return [
        LineItem(
            "apigateway.requests",
            "API Gateway",
            "HTTP API requests",
            v.api_calls,
            "requests",
            prices.HTTP_API_PER_MILLION_REQUESTS,
            1_000_000,
        ),
    ]


def s3_lines(w: Workload, v: Volumes) -> list[LineItem]:
    """The original's and the renditions' PUTs, the worker's reads and those served, storage."""
    return [
        LineItem(
            "s3.put",
            "S3",
            f"PUT: original + {w.renditions_per_image} renditions",
            v.images * (1 + w.renditions_per_image),
            "requests",
            prices.S3_PUT_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "s3.get",
            "S3",
            f"GET: worker HEAD + GET, {w.gets_per_image:g} served",
            v.images * (2 + w.gets_per_image),
            "requests",
            prices.S3_GET_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "s3.storage",
            "S3",
            f"storage: originals + renditions (month {w.months})",
            v.stored * (w.original_kb + w.renditions_kb) * KB / GB,
            "GB-month",
            prices.S3_STANDARD_PER_GB_MONTH,
        ),
    ]


def sqs_lines(v: Volumes) -> list[LineItem]:
    """S3's sends and the worker's receives and deletes; the idle long polls, whatever the load."""
    return [
        LineItem(
            "sqs.requests",
            "SQS",
            "S3 send + receive and delete per batch",
            v.images + 2 * v.batches,
            "requests",
            prices.SQS_PER_MILLION_REQUESTS,
            1_000_000,
        ),
        LineItem(
            "sqs.idle_polls",
            "SQS",
            f"Lambda's idle long polls ({SQS_IDLE_POLLERS} pollers)",
            SQS_IDLE_POLLERS * SECONDS_PER_MONTH / SQS_LONG_POLL_S,
            "requests",
            prices.SQS_PER_MILLION_REQUESTS,
            1_000_000,
            "fixed",
        ),
    ]


def _log_bytes(w: Workload, v: Volumes) -> float:
    """What the functions log in a month: the worker's EMF and platform lines (per batch, and
    its metrics per image), the API's access and platform lines, the events function's."""
    worker_log = (EMF_BYTES_PER_INVOCATION + PLATFORM_LOG_BYTES) / w.batch_size
    worker_log += EMF_BYTES_PER_IMAGE
    api_log = ACCESS_LOG_BYTES + PLATFORM_LOG_BYTES
    events_log = v.event_batches * (PLATFORM_LOG_BYTES + EVENTS_LOG_BYTES)
    return v.images * worker_log + v.api_calls * api_log + events_log


def cloudwatch_lines(w: Workload, v: Volumes) -> list[LineItem]:
    """Logs ingested, and the fixed part: custom metrics, alarms, the dashboard."""
    return [
        LineItem(
            "cloudwatch.logs",
            "CloudWatch",
            "logs: EMF + Lambda + API access logs",
            _log_bytes(w, v) / GB,
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
    ]


def xray_lines(v: Volumes) -> list[LineItem]:
    """Each function is sampled on its own: the worker, the API, the events function."""
    traces = (
        sampled_traces(v.batches) + sampled_traces(v.api_calls) + sampled_traces(v.event_batches)
    )
    return [
        LineItem(
            "xray.traces",
            "X-Ray",
            "traces (1/s + 5% sampled, per function)",
            traces,
            "traces",
            prices.XRAY_PER_MILLION_TRACES,
            1_000_000,
            "sampled",
        ),
    ]


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
