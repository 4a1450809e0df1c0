"""The upload-URL routes: POST /uploads hands out where to send an original (the deployment's
Links decide: the local server's own signed PUT, or a presigned S3 PUT or POST), and, where
the API takes such uploads itself (locally), PUT /upload/{key} receives one."""

from __future__ import annotations

from typing import Annotated, BinaryIO

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from imgpipe.core.errors import (
    IdempotencyKeyReusedError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UploadExistsError,
)
from imgpipe.core.formats import CONTENT_TYPES
from imgpipe.core.keys import image_id_for, new_upload_key
from imgpipe.core.links import SignedUploads
from imgpipe.entrypoints.api.auth import AuthFirstRoute, authed, token_guard
from imgpipe.entrypoints.api.bodies import (
    UploadedImageView,
    UploadRequest,
    UploadResponse,
    answers,
)
from imgpipe.entrypoints.api.context import ApiContext, base_url

UPLOAD_CONTENT_TYPES = frozenset(
    {*CONTENT_TYPES.values(), "image/heic", "image/heic-sequence", "image/heif-sequence"}
)


def router(ctx: ApiContext) -> APIRouter:
    """POST /uploads."""
    service = ctx.service
    router = APIRouter(route_class=AuthFirstRoute)

    @router.post(
        "/uploads",
        response_model=UploadResponse,
        status_code=201,
        dependencies=authed(token_guard(ctx.api_token)),
        tags=["upload"],
        response_model_by_alias=True,
    )
    def presign_upload(
        body: UploadRequest,
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> UploadResponse:
        content_type = accepted_upload(body, ctx.max_bytes)
        prefix = ctx.retry_prefix(request, "uploads", idempotency_key)
        key = new_upload_key(body.filename, prefix)
        if prefix is not None:
            taken = service.ingest.stored_under(prefix)
            if taken is not None and taken != key:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was used for another upload: send a new key"
                )
        target = ctx.links.upload_target(
            key, content_type, ctx.max_bytes, base_url(request), body.size
        )
        return UploadResponse(
            image_id=image_id_for(key),
            key=key,
            upload_url=target.url,
            method=target.method,
            fields=target.fields,
            headers=target.headers,
            expires_at=target.expires_at,
        )

    return router


def accepted_upload(body: UploadRequest, max_bytes: int) -> str:
    """The upload's content type, lowercased without parameters; 415, 413 or 400 when the
    request asks for an upload that would be refused anyway."""
    content_type = body.content_type.split(";")[0].strip().lower()
    if content_type not in UPLOAD_CONTENT_TYPES:
        raise UnsupportedMediaTypeError(
            f"{content_type!r} is not an image type imgpipe accepts "
            f"({', '.join(sorted(UPLOAD_CONTENT_TYPES))})"
        )
    if body.size is not None and body.size > max_bytes:
        raise PayloadTooLargeError(f"{body.size} bytes; the limit is {max_bytes}")
    if body.size == 0:
        raise InvalidRequestError("size: an upload has at least one byte")
    return content_type


def signed_upload_router(ctx: ApiContext, uploads: SignedUploads) -> APIRouter:
    """`PUT /upload/{key}`: where a signed upload URL points on the local server."""
    service = ctx.service
    router = APIRouter(route_class=AuthFirstRoute)

    @router.put(
        "/upload/{key:path}",
        tags=["upload"],
        **answers(201, UploadedImageView, "stored and queued: the PENDING record"),
    )
    async def signed_upload(
        key: str,
        request: Request,
        expires: Annotated[int, Query()],
        signature: Annotated[str, Query(max_length=128)],
        content_type: Annotated[str, Query(alias="contentType")],
        max_bytes: Annotated[int, Query(alias="maxBytes")],
        size: Annotated[int | None, Query(ge=1)] = None,
    ) -> JSONResponse:
        if not uploads.verify_upload(key, content_type, max_bytes, expires, signature, size):
            raise UnauthorizedError("the upload URL is invalid or has expired")
        sent_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if sent_type != content_type:
            raise UnsupportedMediaTypeError(
                f"Content-Type must be {content_type!r} as signed, not {sent_type!r}"
            )
        if await run_in_threadpool(service.ingest.exists, key):
            raise UploadExistsError("this upload URL has been used: ask for a new one")
        with service.ingest.spool() as spool:
            await receive_upload(request, spool, min(max_bytes, ctx.max_bytes), size)
            spool.seek(0)
            record = await run_in_threadpool(
                lambda: service.ingest.upload_to(key, spool, content_type, if_absent=True)
            )
        ctx.on_enqueued()
        body = record.public()
        body.pop("renditions", None)
        return JSONResponse(body, 201)

    return router


async def receive_upload(request: Request, spool: BinaryIO, cap: int, size: int | None) -> None:
    """Stream a signed upload's body into `spool`: at most `cap` bytes, and exactly `size`
    when the URL was signed for a declared size."""
    limit = cap if size is None else min(cap, size)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the upload is larger than {limit} bytes")
    if size is not None and declared.isdigit() and int(declared) != size:
        raise InvalidRequestError(f"the upload URL was signed for exactly {size} bytes")
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(f"the upload is larger than {limit} bytes")
            spool.write(chunk)
    except ClientDisconnect as exc:
        # a real disconnect, or BodyLimitMiddleware cut the body off (it answers 413)
        raise InvalidRequestError("the upload was cut off") from exc
    if received == 0:
        raise InvalidRequestError("the upload is empty")
    if size is not None and received != size:
        raise InvalidRequestError(
            f"the upload is {received} bytes; its URL was signed for exactly {size}"
        )
