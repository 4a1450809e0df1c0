"""The API Lambda: the same FastAPI app as `imgpipe serve`, behind API Gateway through Mangum.

API Gateway authenticates (IAM by default, or a JWT authorizer), so the app runs without a
bearer token; upload URLs and rendition links are presigned S3 POSTs and GETs (S3Links).
There is no /metrics route: metrics go to CloudWatch as EMF. Mangum takes REST API (v1) and
HTTP API (v2) proxy events alike. The app is built on the first invocation; pyvips is
imported only when a request renders (POST /process-image).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from mangum import Mangum

from imgpipe.adapters.aws.links import S3Links
from imgpipe.bootstrap import lambda_app
from imgpipe.entrypoints.api import ApiContext, create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from imgpipe.bootstrap import AwsApp


# The AWS wiring, built on the first invocation and kept for the life of the process.
app = lambda_app


def create_aws_app(runtime: AwsApp) -> FastAPI:
    settings = runtime.settings
    return create_app(
        ApiContext(
            service=runtime.service,
            links=S3Links(runtime.objects, settings.aws.presign_ttl_s),
            backend="aws",
            api_token=None,  # API Gateway does the authentication
            max_list_limit=settings.server.max_list_limit,
        )
    )


@functools.cache
def asgi() -> Mangum:
    return Mangum(create_aws_app(app()), lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = app()
    try:
        response: dict[str, Any] = asgi()(event, context)
        return response
    finally:
        runtime.metrics.flush()
