"""The image routes: upload one through the API (POST /images), process one now
(POST /process-image), list, get, find similar, reprocess and delete. Every one wants the token.

Each handler answers a JSONResponse of the record as ApiContext.present shows it (bodies.py
declares its schema); the use cases do the work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.keys import validate_key
from imgpipe.core.model import Status
from imgpipe.entrypoints import multipart
from imgpipe.entrypoints.api.auth import AuthFirstRoute, authed, token_guard
from imgpipe.entrypoints.api.bodies import (
    ImagePage,
    ImageView,
    ProcessRequest,
    SimilarImages,
    answers,
)
from imgpipe.entrypoints.api.context import ApiContext, known_id


def router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute, dependencies=authed(token_guard(ctx.api_token)))
    # In this order, which is the order of /openapi.json's paths.
    for add in (
        _upload_image,
        _process_image,
        _list_images,
        _get_image,
        _similar_images,
        _reprocess,
        _delete_image,
    ):
        add(router, ctx)
    return router


def _upload_image(router: APIRouter, ctx: ApiContext) -> None:
    service = ctx.service

    @router.post(
        "/images",
        tags=["upload"],
        openapi_extra=multipart.OPENAPI_BODY,
        **answers(202, ImageView, "stored and queued: the PENDING record"),
    )
    async def upload_image(
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        prefix = ctx.retry_prefix(request, "images", idempotency_key)
        with service.ingest.spool() as spool:
            part = await multipart.receive_file(request, spool, ctx.max_bytes)
            spool.seek(0)
            content_type = (part.content_type or "application/octet-stream").lower()
            filename = part.filename or "image"
            record = await run_in_threadpool(
                lambda: service.ingest.upload(filename, spool, content_type, retry_prefix=prefix)
            )
        ctx.on_enqueued()
        return JSONResponse(ctx.present(record, request), 202)


def _process_image(router: APIRouter, ctx: ApiContext) -> None:
    @router.post(
        "/process-image",
        tags=["images"],
        **answers(
            200,
            ImageView,
            "processed: the PROCESSED record",
            also={422: {"model": ImageView, "description": "not a valid image: the FAILED record"}},
        ),
    )
    def process_image(body: ProcessRequest, request: Request) -> JSONResponse:
        validate_key(body.key)
        record = ctx.service.processing.process_key_now(body.key)
        status = 422 if record.status is Status.FAILED else 200
        return JSONResponse(ctx.present(record, request), status)


def _list_images(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/images",
        tags=["images"],
        **answers(200, ImagePage, "a page of records, newest upload first"),
    )
    def list_images(
        request: Request,
        status: Annotated[Status | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> JSONResponse:
        if limit > ctx.max_list_limit:
            raise InvalidRequestError(f"limit must be at most {ctx.max_list_limit}")
        page = ctx.service.queries.list(status, limit, cursor or None)
        items = [ctx.present(r, request) for r in page.items]
        return JSONResponse({"items": items, "nextCursor": page.next_cursor})


def _get_image(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/images/{image_id}",
        tags=["images"],
        **answers(200, ImageView, "the record"),
    )
    def get_image(image_id: str, request: Request) -> JSONResponse:
        return JSONResponse(ctx.present(ctx.service.queries.get(known_id(image_id)), request))


def _similar_images(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/images/{image_id}/similar",
        tags=["images"],
        **answers(
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
        matches = ctx.service.queries.similar(known_id(image_id), distance, limit)
        items = [
            {**ctx.present(m.record, request), "distance": m.distance, "sameBytes": m.same_bytes}
            for m in matches
        ]
        return JSONResponse({"imageId": image_id, "maxDistance": distance, "items": items})


def _reprocess(router: APIRouter, ctx: ApiContext) -> None:
    @router.post(
        "/images/{image_id}/reprocess",
        tags=["images"],
        **answers(202, ImageView, "queued again: the record as it is now"),
    )
    def reprocess(image_id: str, request: Request) -> JSONResponse:
        record = ctx.service.processing.reprocess(known_id(image_id))
        ctx.on_enqueued()
        return JSONResponse(ctx.present(record, request), 202)


def _delete_image(router: APIRouter, ctx: ApiContext) -> None:
    @router.delete("/images/{image_id}", status_code=204, tags=["images"])
    def delete_image(image_id: str) -> Response:
        ctx.service.maintenance.delete(known_id(image_id))
        return Response(status_code=204)
