"""The HTTP API (FastAPI): the same routes locally (uvicorn) and on AWS (Mangum).

Routes translate HTTP into service calls and back; errors become `{"error": {code, message}}`
with a 4xx for a client's mistake (one table, `_status_for`). What differs between local and
AWS, how upload URLs and rendition links are made and served, is the `Links` object passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgpipe import __version__
from imgpipe.core import signing
from imgpipe.core.errors import (
    IdempotencyKeyReusedError,
    ImageError,
    ImgpipeError,
    InvalidRequestError,
    NotFoundError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    RequestError,
    TransientError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UploadExistsError,
)
from imgpipe.core.formats import CONTENT_TYPES
from imgpipe.core.keys import (
    idempotent_prefix,
    image_id_for,
    is_image_id,
    new_upload_key,
    validate_key,
)
from imgpipe.core.links import Links, RenditionRedirect, SignedUploads
from imgpipe.core.model import (
    ErrorInfo,
    ImageRecord,
    PublicRecord,
    Rendition,
    Status,
)
from imgpipe.entrypoints import multipart
from imgpipe.entrypoints.asgi_errors import send_json_error
from imgpipe.service import UseCases

log = logging.getLogger("imgpipe.api")

UPLOAD_CONTENT_TYPES = frozenset(
    {*CONTENT_TYPES.values(), "image/heic", "image/heic-sequence", "image/heif-sequence"}
)
MULTIPART_SLACK = 64 * 1024
# A rendition served from elsewhere (S3) is a temporary redirect: its URL expires.
REDIRECT_STATUS = 307


@dataclass
class ApiContext:
    service: UseCases
    links: Links
    backend: str
    max_bytes: int  # the largest original an upload takes
    max_json_bytes: int  # the largest body of every other route
    max_distance: int  # GET /similar's default and largest maxDistance
    api_token: str | None = None
    max_list_limit: int = 100
    metrics_exposition: Callable[[], bytes] | None = None
    on_enqueued: Callable[[], None] = field(default=lambda: None)
    extra_routes: Callable[[FastAPI], None] | None = None
    # Makes Idempotency-Key's upload ids unguessable (local: the data folder's signing key).
    idempotency_secret: bytes = b""
    # The degraded parts of this server and why (local: its HealthBoard); None: always ok.
    problems: Callable[[], dict[str, str]] | None = None
    # Set where the API takes the uploads its upload URLs point at (local: PUT /upload/{key}).
    signed_uploads: SignedUploads | None = None


# -- request and response bodies --------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class UploadRequest(_Body):
    # Shortened for the key (core.keys.safe_filename), as a multipart upload's file name is.
    filename: str = Field(min_length=1, max_length=16 * 1024)
    content_type: str = Field(alias="contentType", min_length=1, max_length=255)
    size: int | None = Field(default=None, ge=0)


class UploadResponse(BaseModel):
    image_id: str = Field(serialization_alias="imageId")
    key: str
    upload_url: str = Field(serialization_alias="uploadUrl")
    method: Literal["PUT", "POST"]
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: str = Field(serialization_alias="expiresAt")


class ProcessRequest(_Body):
    key: str = Field(min_length=1, max_length=4096)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    backend: str
    problems: dict[str, str] = Field(
        default_factory=dict, description="degraded parts and why (503); empty when ok"
    )


class ErrorResponse(BaseModel):
    error: ErrorInfo


# What the routes answer, for /openapi.json only: handlers return the dicts these describe
# (ImageRecord.public() plus rendition URLs), and the schemathesis tests hold them to it.


class RenditionView(Rendition):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    url: str = Field(description="where to fetch it: signed when the API wants a token")


class UploadedImageView(PublicRecord):
    """A record without its renditions (the answer to a signed upload)."""

    # Every field is in every answer, null or not: the schema says so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ImageView(UploadedImageView):
    """An image record as the API shows it."""

    renditions: list[RenditionView]


class ImagePage(BaseModel):
    items: list[ImageView]
    next_cursor: str | None = Field(alias="nextCursor", description="null on the last page")


class SimilarImageView(ImageView):
    """A similar image: its record, and how close it is."""

    distance: int = Field(description="pHash Hamming distance (0-64) to the image asked about")
    same_bytes: bool = Field(alias="sameBytes", description="the same sha256: identical files")


class SimilarImages(BaseModel):
    image_id: str = Field(alias="imageId", description="the image asked about")
    max_distance: int = Field(alias="maxDistance", description="the distance searched")
    items: list[SimilarImageView] = Field(
        description="closest first; at equal distance the same bytes, then the earliest upload"
    )


# Every route may answer these; 422 is an image that cannot be processed (ImageError).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 415, 422, 429, 503)
}


def _answers(
    status: int,
    model: type[BaseModel],
    description: str,
    *,
    also: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Route options declaring the body of a handler that answers with a JSONResponse of a
    plain dict (and, in `also`, other statuses this route answers differently from ERRORS).
    The dicts are JSON-ready (model_dump(mode="json")), so FastAPI's jsonable_encoder, which
    walks them again, is skipped: it doubled the cost of a page of records (docs/benchmarks.md,
    local end to end)."""
    return {
        "status_code": status,
        "response_model": None,
        "responses": {status: {"model": model, "description": description}, **(also or {})},
    }


# -- errors -----------------------------------------------------------------------------------


def _status_for(exc: ImgpipeError) -> int:
    """The one table from exception types to HTTP statuses."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, ObjectNotFoundError):
        return 404  # an object (a rendition, say) vanished from the store: not the image's fault
    if isinstance(exc, TransientError):
        return 503
    if isinstance(exc, ImageError):
        return 422
    return 500


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImgpipeError)
    async def _imgpipe(_: Request, exc: ImgpipeError) -> JSONResponse:
        status = _status_for(exc)
        if status >= 500:
            log.error("request failed", exc_info=exc)
        headers = {"Retry-After": "5"} if status == 503 else None
        return error_response(status, exc.code, str(exc) or exc.code, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg')}"
            for err in exc.errors()[:5]
        )
        return error_response(400, "bad_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(
            exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return error_response(500, "internal", "internal error; see the server log")


class BodyLimitMiddleware:
    """Caps request bodies while they stream: 413 without buffering the whole body."""

    def __init__(self, app: ASGIApp, max_body: Callable[[Scope], int | None]) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        seen = 0
        overflow = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal seen, overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Stop reading: the app sees a disconnect, and whatever it answers to
                    # that (a parse error, say) is replaced by the 413 below.
                    overflow = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not overflow:
                await send(message)
            elif not answered:
                answered = True
                await _send_413(send, limit)

        await self.app(scope, limited_receive, guarded_send)
        if overflow and not answered:
            await _send_413(send, limit)


async def _send_413(send: Send, limit: int) -> None:
    await send_json_error(
        send,
        413,
        "too_large",
        f"the body is larger than {limit} bytes",
        [(b"connection", b"close")],
    )


# -- the app ----------------------------------------------------------------------------------


def caller(request: Request) -> str:
    """Who is calling, as far as the deployment knows: on AWS the principal API Gateway
    authenticated (IAM or JWT), from the event Mangum hands over; locally "" (one token)."""
    event = request.scope.get("aws.event")
    if not isinstance(event, dict):
        return ""
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    return str(iam.get("userArn") or claims.get("sub") or "")


class TokenGuard:
    """A dependency that wants `Authorization: Bearer <api_token>`, when a token is set."""

    def __init__(self, api_token: str | None) -> None:
        self.api_token = api_token

    async def __call__(self, request: Request) -> None:
        if self.api_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not signing.constant_time_equal(token, self.api_token):
            raise UnauthorizedError("missing or wrong bearer token")


def token_guard(api_token: str | None) -> TokenGuard:
    return TokenGuard(api_token)


class AuthFirstRoute(APIRoute):
    """A route whose TokenGuard runs before its body is read. FastAPI reads and parses a JSON
    body before it runs any dependency, so without this a wrong token costs a whole body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [d.dependency for d in self.dependencies if isinstance(d.dependency, TokenGuard)]
        if not guards or self.body_field is None:
            return handler

        async def guarded(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            return await handler(request)

        return guarded


def create_app(ctx: ApiContext) -> FastAPI:
    service = ctx.service
    app = FastAPI(
        title="imgpipe",
        version=__version__,
        description="Upload images; get metadata and renditions back.",
        responses=ERRORS,
    )
    app.router.route_class = AuthFirstRoute
    _install_error_handlers(app)

    def max_body(scope: Scope) -> int:
        path: str = scope.get("path", "")
        if scope.get("method") == "PUT" and path.startswith("/upload/"):
            return ctx.max_bytes
        if scope.get("method") == "POST" and path == "/images":
            return ctx.max_bytes + MULTIPART_SLACK
        return ctx.max_json_bytes  # JSON, or no body at all

    app.add_middleware(BodyLimitMiddleware, max_body=max_body)

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    require_token = token_guard(ctx.api_token)
    authed = [Depends(require_token)]

    def present(record: ImageRecord, request: Request) -> dict[str, Any]:
        body = record.public()
        for r in body["renditions"]:
            filename = r["key"].rsplit("/", 1)[-1]
            r["url"] = ctx.links.rendition_url(
                record.image_id, r["key"], filename, base_url(request)
            )
        return body

    def retry_prefix(request: Request, route: str, idempotency_key: str | None) -> str | None:
        """The `uploads/{id}/` an Idempotency-Key names for this caller and route."""
        if idempotency_key is None:
            return None
        return idempotent_prefix(ctx.idempotency_secret, caller(request), route, idempotency_key)

    def known_id(image_id: str) -> str:
        if not is_image_id(image_id):
            raise NotFoundError(f"no image {image_id}")
        return image_id

    @app.get(
        "/health",
        tags=["ops"],
        **_answers(
            200,
            Health,
            "ok",
            also={503: {"model": Health, "description": "degraded: `problems` says why"}},
        ),
    )
    def health() -> JSONResponse:
        problems = ctx.problems() if ctx.problems is not None else {}
        body = Health(
            status="degraded" if problems else "ok",
            version=__version__,
            backend=ctx.backend,
            problems=problems,
        )
        headers = {"Retry-After": "5"} if problems else None
        content = body.model_dump(mode="json", exclude_defaults=True)  # no `problems` when ok
        return JSONResponse(content, 503 if problems else 200, headers)

    @app.post(
        "/uploads",
        response_model=UploadResponse,
        status_code=201,
        dependencies=authed,
        tags=["upload"],
        response_model_by_alias=True,
    )
    def presign_upload(
        body: UploadRequest,
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> UploadResponse:
        content_type = body.content_type.split(";")[0].strip().lower()
        if content_type not in UPLOAD_CONTENT_TYPES:
            raise UnsupportedMediaTypeError(
                f"{content_type!r} is not an image type imgpipe accepts "
                f"({', '.join(sorted(UPLOAD_CONTENT_TYPES))})"
            )
        if body.size is not None and body.size > ctx.max_bytes:
            raise PayloadTooLargeError(f"{body.size} bytes; the limit is {ctx.max_bytes}")
        if body.size == 0:
            raise InvalidRequestError("size: an upload has at least one byte")
        prefix = retry_prefix(request, "uploads", idempotency_key)
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

    @app.post(
        "/images",
        dependencies=authed,
        tags=["upload"],
        openapi_extra=multipart.OPENAPI_BODY,
        **_answers(202, ImageView, "stored and queued: the PENDING record"),
    )
    async def upload_image(
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        prefix = retry_prefix(request, "images", idempotency_key)
        with service.ingest.spool() as spool:
            part = await multipart.receive_file(request, spool, ctx.max_bytes)
            spool.seek(0)
            content_type = (part.content_type or "application/octet-stream").lower()
            filename = part.filename or "image"
            record = await _run_sync(
                lambda: service.ingest.upload(filename, spool, content_type, retry_prefix=prefix)
            )
        ctx.on_enqueued()
        return JSONResponse(present(record, request), 202)

    @app.post(
        "/process-image",
        dependencies=authed,
        tags=["images"],
        **_answers(
            200,
            ImageView,
            "processed: the PROCESSED record",
            also={422: {"model": ImageView, "description": "not a valid image: the FAILED record"}},
        ),
    )
    def process_image(body: ProcessRequest, request: Request) -> JSONResponse:
        validate_key(body.key)
        record = service.processing.process_key_now(body.key)
        status = 422 if record.status is Status.FAILED else 200
        return JSONResponse(present(record, request), status)

    @app.get(
        "/images",
        dependencies=authed,
        tags=["images"],
        **_answers(200, ImagePage, "a page of records, newest upload first"),
    )
    def list_images(
        request: Request,
        status: Annotated[Status | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> JSONResponse:
        if limit > ctx.max_list_limit:
            raise InvalidRequestError(f"limit must be at most {ctx.max_list_limit}")
        page = service.queries.list(status, limit, cursor or None)
        items = [present(r, request) for r in page.items]
        return JSONResponse({"items": items, "nextCursor": page.next_cursor})

    @app.get(
        "/images/{image_id}",
        dependencies=authed,
        tags=["images"],
        **_answers(200, ImageView, "the record"),
    )
    def get_image(image_id: str, request: Request) -> JSONResponse:
        return JSONResponse(present(service.queries.get(known_id(image_id)), request))

    @app.get(
        "/images/{image_id}/similar",
        dependencies=authed,
        tags=["images"],
        **_answers(
            200,
            SimilarImages,
            "images with the same bytes or a pHash within maxDistance; 409 until processed",
        ),
    )
    def similar_images(
        image_id: str,
        request: Request,
        max_distance: Annotated[int | None, Query(alias="maxDistance", ge=0, le=64)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> JSONResponse:
        distance = ctx.max_distance if max_distance is None else max_distance
        matches = service.queries.similar(known_id(image_id), distance, limit)
        items = [
            {**present(m.record, request), "distance": m.distance, "sameBytes": m.same_bytes}
            for m in matches
        ]
        return JSONResponse({"imageId": image_id, "maxDistance": distance, "items": items})

    @app.post(
        "/images/{image_id}/reprocess",
        dependencies=authed,
        tags=["images"],
        **_answers(202, ImageView, "queued again: the record as it is now"),
    )
    def reprocess(image_id: str, request: Request) -> JSONResponse:
        record = service.processing.reprocess(known_id(image_id))
        ctx.on_enqueued()
        return JSONResponse(present(record, request), 202)

    @app.delete("/images/{image_id}", status_code=204, dependencies=authed, tags=["images"])
    def delete_image(image_id: str) -> Response:
        service.maintenance.delete(known_id(image_id))
        return Response(status_code=204)

    @app.get(
        "/images/{image_id}/renditions/{filename}",
        tags=["images"],
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}},
    )
    async def rendition(
        image_id: str,
        filename: str,
        request: Request,
        expires: Annotated[int | None, Query()] = None,
        signature: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        record = service.queries.get(known_id(image_id))
        match = next((r for r in record.renditions if r.key.endswith("/" + filename)), None)
        if match is None:
            raise NotFoundError(f"image {image_id} has no rendition {filename}")
        signed = (
            expires is not None
            and signature is not None
            and ctx.links.verify_rendition(match.key, expires, signature)
        )
        if not signed:
            await require_token(request)
        answer = ctx.links.rendition_answer(match.key)
        if isinstance(answer, RenditionRedirect):
            return RedirectResponse(answer.url, REDIRECT_STATUS, answer.headers)
        return Response(answer.body, media_type=CONTENT_TYPES[match.format], headers=answer.headers)

    if ctx.metrics_exposition is not None:
        exposition = ctx.metrics_exposition

        @app.get("/metrics", dependencies=authed, tags=["ops"], response_class=Response)
        def metrics() -> Response:
            return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if ctx.signed_uploads is not None:
        add_local_upload_route(app, ctx, ctx.signed_uploads)
    if ctx.extra_routes is not None:
        ctx.extra_routes(app)
    return app


def add_local_upload_route(app: FastAPI, ctx: ApiContext, links: SignedUploads) -> None:
    """`PUT /upload/{key}`: where a signed upload URL points on the local server."""
    service = ctx.service

    @app.put(
        "/upload/{key:path}",
        tags=["upload"],
        **_answers(201, UploadedImageView, "stored and queued: the PENDING record"),
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
        if not links.verify_upload(key, content_type, max_bytes, expires, signature, size):
            raise UnauthorizedError("the upload URL is invalid or has expired")
        sent_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if sent_type != content_type:
            raise UnsupportedMediaTypeError(
                f"Content-Type must be {content_type!r} as signed, not {sent_type!r}"
            )
        if await run_in_threadpool(service.ingest.exists, key):
            raise UploadExistsError("this upload URL has been used: ask for a new one")
        with service.ingest.spool() as spool:
            await _receive_upload(request, spool, min(max_bytes, ctx.max_bytes), size)
            spool.seek(0)
            record = await _run_sync(
                lambda: service.ingest.upload_to(key, spool, content_type, if_absent=True)
            )
        ctx.on_enqueued()
        body = record.public()
        body.pop("renditions", None)
        return JSONResponse(body, 201)


async def _receive_upload(request: Request, spool: BinaryIO, cap: int, size: int | None) -> None:
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


async def _run_sync(fn: Callable[[], ImageRecord]) -> ImageRecord:
    return await run_in_threadpool(fn)
