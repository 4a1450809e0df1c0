"""What viewers' requests cost: through CloudFront (its requests, transfer and function, and the
origin fetches of its misses), or straight to S3 and the API, and what the CDN saves.

Without the CDN, a rendition view is a presigned S3 GET and its bytes leave S3 for the
internet; an `/img` view is an HTTP API request, an API function invocation that reads the
result from derived/ (a HEAD and a GET), an access-log line, and its bytes leave through API
Gateway. With it, every view is a CloudFront HTTPS request and its bytes leave the edge; an
`/img` view also runs the viewer-request function that normalises `Accept`; only a miss reaches
the origin, and origin fetches from AWS are free of transfer: a rendition miss is an S3 GET, an
`/img` miss all that an `/img` view costs without the CDN but its transfer out. Renders of new
`/img` results are the same either way (derived/ keeps them) and are not priced here.
"""

from __future__ import annotations

from imgpipe.ops import prices
from imgpipe.ops.cost.result import Delivery, LineItem
from imgpipe.ops.cost.workload import (
    ACCESS_LOG_BYTES,
    GB,
    KB,
    PLATFORM_LOG_BYTES,
    Volumes,
    Workload,
)


def delivery(w: Workload, v: Volumes) -> Delivery:
    cdn = sum(line.monthly_usd for line in cdn_lines(w, v))
    direct = sum(line.monthly_usd for line in direct_lines(w, v))
    return Delivery(cdn, direct)


def view_lines(w: Workload, v: Volumes) -> list[LineItem]:
    """The lines of the workload's own choice but those it has nothing for (no /img views,
    say); none when it has no views."""
    if not v.views and not v.transforms:
        return []
    lines = cdn_lines(w, v) if w.cdn else direct_lines(w, v)
    return [line for line in lines if line.quantity]


def cdn_lines(w: Workload, v: Volumes) -> list[LineItem]:
    miss = 1 - w.cdn_hit_rate
    viewed_gb = (v.views + v.transforms) * w.mean_view_kb * KB / GB
    return [
        LineItem(
            "cloudfront.requests",
            "CloudFront",
            f"HTTPS requests: {w.views_per_image:g} views + {w.transforms_per_image:g} /img "
            "per image",
            v.views + v.transforms,
            "requests",
            prices.CLOUDFRONT_HTTPS_PER_TEN_THOUSAND,
            10_000,
        ),
        LineItem(
            "cloudfront.transfer",
            "CloudFront",
            f"transfer out ({w.mean_view_kb:,.1f} KB a view, {prices.CLOUDFRONT_PRICE_CLASS})",
            viewed_gb,
            "GB",
            prices.CLOUDFRONT_TRANSFER_OUT_PER_GB,
        ),
        LineItem(
            "cloudfront.functions",
            "CloudFront",
            "Functions: Accept normalised on /img views",
            v.transforms,
            "invocations",
            prices.CLOUDFRONT_FUNCTIONS_PER_MILLION,
            1_000_000,
        ),
        LineItem(
            "s3.origin_get",
            "S3",
            f"GET: origin fetch of a rendition miss ({miss:.0%} of views)",
            v.views * miss,
            "requests",
            prices.S3_GET_PER_THOUSAND,
            1000,
        ),
        *_img_lines(w, v.transforms * miss, f"/img misses ({miss:.0%})"),
    ]


def direct_lines(w: Workload, v: Volumes) -> list[LineItem]:
    return [
        LineItem(
            "s3.view_get",
            "S3",
            f"GET: presigned, {w.views_per_image:g} views per image",
            v.views,
            "requests",
            prices.S3_GET_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "s3.view_transfer",
            "S3",
            f"transfer out to the internet ({w.mean_view_kb:,.1f} KB a view)",
            v.views * w.mean_view_kb * KB / GB,
            "GB",
            prices.DATA_TRANSFER_OUT_PER_GB,
        ),
        *_img_lines(w, v.transforms, "/img views"),
        LineItem(
            "apigateway.img_transfer",
            "API Gateway",
            "/img transfer out to the internet",
            v.transforms * w.mean_view_kb * KB / GB,
            "GB",
            prices.DATA_TRANSFER_OUT_PER_GB,
        ),
    ]


def _img_lines(w: Workload, answered: float, what: str) -> list[LineItem]:
    """`answered` `/img` requests that reach the API: each an HTTP API request, an invocation
    reading its result from derived/ (HEAD + GET) and an access-log line."""
    return [
        LineItem(
            "apigateway.img_requests",
            "API Gateway",
            f"HTTP API requests: {what}",
            answered,
            "requests",
            prices.HTTP_API_PER_MILLION_REQUESTS,
            1_000_000,
        ),
        LineItem(
            "lambda.img_requests",
            "Lambda",
            f"API requests: {what}",
            answered,
            "requests",
            prices.LAMBDA_PER_MILLION_REQUESTS,
            1_000_000,
        ),
        LineItem(
            "lambda.img_compute",
            "Lambda",
            f"API compute: {what} ({w.img_duration_ms:g} ms x {w.api_memory_mb} MB)",
            answered * w.img_duration_ms / 1000 * w.api_memory_mb / 1024,
            "GB-s",
            prices.LAMBDA_ARM64_PER_GB_S,
        ),
        LineItem(
            "s3.img_get",
            "S3",
            f"GET: HEAD + GET of the result in derived/, {what}",
            2 * answered,
            "requests",
            prices.S3_GET_PER_THOUSAND,
            1000,
        ),
        LineItem(
            "cloudwatch.img_logs",
            "CloudWatch",
            f"logs: access + Lambda lines, {what}",
            answered * (ACCESS_LOG_BYTES + PLATFORM_LOG_BYTES) / GB,
            "GB",
            prices.CLOUDWATCH_LOGS_PER_GB,
        ),
    ]
