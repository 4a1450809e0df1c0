"""The HTTP API (FastAPI): the same routes locally (uvicorn) and on AWS (Mangum).

Routes translate HTTP into service calls and back; errors become `{"error": {code, message}}`
with a 4xx for a client's mistake (one table: errors.status_for). What differs between local
and AWS, how upload URLs and rendition links are made and served, is the `Links` object passed
in (core.links), built by bootstrap.

    app         create_app: the app, its handlers and limits, the routers included in order
    context     ApiContext (what the routers are given) and what several of them share
    images      POST /images, /process-image, GET /images, /images/{id}, /similar,
                POST reprocess, DELETE
    uploads     POST /uploads, and PUT /upload/{key} where the API takes uploads (locally)
    renditions  GET /images/{id}/renditions/{filename}
    transform_urls  POST /images/{id}/transform-url: a signed /img URL for the dashboard
    ops         GET /health, GET /metrics
    bodies      request and response models, and what routes declare in /openapi.json
    errors      the table from exception types to statuses; the error handlers
    limits      the body limit of each route, enforced as the body streams
    auth        the bearer-token guard, the route class that runs it first, the caller
"""

from imgpipe.core.links import Links, UploadTarget
from imgpipe.entrypoints.api.app import create_app
from imgpipe.entrypoints.api.auth import AuthFirstRoute, TokenGuard, caller, token_guard
from imgpipe.entrypoints.api.bodies import (
    ERRORS,
    ErrorResponse,
    Health,
    ImagePage,
    ImageView,
    ProcessRequest,
    RenditionView,
    SimilarImages,
    SimilarImageView,
    UploadedImageView,
    UploadRequest,
    UploadResponse,
)
from imgpipe.entrypoints.api.context import ApiContext
from imgpipe.entrypoints.api.errors import error_response, status_for
from imgpipe.entrypoints.api.limits import MULTIPART_SLACK, BodyLimitMiddleware
from imgpipe.entrypoints.api.uploads import UPLOAD_CONTENT_TYPES

__all__ = [
    "ERRORS",
    "MULTIPART_SLACK",
    "UPLOAD_CONTENT_TYPES",
    "ApiContext",
    "AuthFirstRoute",
    "BodyLimitMiddleware",
    "ErrorResponse",
    "Health",
    "ImagePage",
    "ImageView",
    "Links",
    "ProcessRequest",
    "RenditionView",
    "SimilarImageView",
    "SimilarImages",
    "TokenGuard",
    "UploadRequest",
    "UploadResponse",
    "UploadTarget",
    "UploadedImageView",
    "caller",
    "create_app",
    "error_response",
    "status_for",
    "token_guard",
]
