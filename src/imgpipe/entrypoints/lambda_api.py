"""The API Lambda: the same FastAPI app as `imgpipe serve`, behind API Gateway through Mangum.

API Gateway authenticates (IAM by default, or a JWT authorizer), so the app runs without a
bearer token; upload URLs and rendition links are presigned S3 POSTs and GETs (S3Links).
There is no /metrics route: metrics go to CloudWatch as EMF. Mangum takes REST API (v1) and
HTTP API (v2) proxy events alike. The app is built on the first invocation; pyvips is
imported only when a request renders (POST /process-image).

A `POST /images` body reaches the function base64-encoded inside the event, and Lambda refuses
an invocation payload over 6 MB (6,291,456 bytes): the handler answers imgpipe's 413, pointing
at `POST /uploads`, for a body over MAX_IMAGES_BODY before Mangum decodes any of it. Bodies so
large that Lambda refuses the event never reach this code (docs/aws.md, Large uploads).
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from mangum import Mangum

from imgpipe.bootstrap import lambda_app
from imgpipe.entrypoints.api import ApiContext, create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from imgpipe.bootstrap import AwsApp


# The AWS wiring, built on the first invocation and kept for the life of the process.
app = lambda_app

# The largest multipart body POST /images takes on AWS. Base64 makes it 6,000,000 bytes of the
# event, which leaves 291,456 of Lambda's 6 MiB request limit for the rest of the event: headers
# (an HTTP API takes at most 10,240 bytes of request line and headers), the request context and
# any JWT claims, with room to spare for REST API events, which carry the headers twice.
MAX_IMAGES_BODY = 4_500_000


def create_aws_app(runtime: AwsApp) -> FastAPI:
    settings = runtime.settings
    return create_app(
        ApiContext(
            service=runtime.service,
            links=runtime.links,
            backend="aws",
            max_bytes=settings.limits.max_bytes,
            max_json_bytes=settings.server.max_json_bytes,
            max_distance=settings.similarity.max_distance,
            api_token=None,  # API Gateway does the authentication
            max_list_limit=settings.server.max_list_limit,
            miss_rate_per_s=settings.transform.miss_rate_per_s,
            miss_burst=settings.transform.miss_burst,
        )
    )


@functools.cache
def asgi() -> Mangum:
    return Mangum(create_aws_app(app()), lifespan="off")


def body_size(event: dict[str, Any]) -> int:
    """The decoded size of the event's body, from its length alone (no decoding)."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return len(body.encode("utf-8"))
    return len(body) // 4 * 3 - body[-2:].count("=")


def is_images_post(event: dict[str, Any]) -> bool:
    """POST /images in a REST API (v1) or HTTP API (v2) event."""
    http = event.get("requestContext", {}).get("http", {})
    method = http.get("method") or event.get("httpMethod")
    path = event.get("rawPath") or event.get("path") or ""
    return method == "POST" and path.rstrip("/") == "/images"


def too_large(size: int, max_bytes: int) -> dict[str, Any]:
    """imgpipe's 413, in the response shape both API Gateway payload versions take."""
    message = (
        f"the body is {size} bytes; POST /images takes at most {MAX_IMAGES_BODY} bytes on AWS "
        "(Lambda's 6 MB request limit, after base64): use POST /uploads, a presigned S3 POST "
        f"that takes files up to {max_bytes} bytes"
    )
    return {
        "statusCode": 413,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"error": {"code": "too_large", "message": message}}),
        "isBase64Encoded": False,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = app()
    if is_images_post(event) and (size := body_size(event)) > MAX_IMAGES_BODY:
        return too_large(size, runtime.settings.limits.max_bytes)
    try:
        response: dict[str, Any] = asgi()(event, context)
        return response
    finally:
        runtime.metrics.flush()
