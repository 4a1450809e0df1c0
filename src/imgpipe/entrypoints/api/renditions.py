"""GET /images/{id}/renditions/{filename}: one rendition, to whoever holds a link the
deployment signed for it, or the token.

What the answer is, the deployment's Links decide (core.links.RenditionAnswer): the bytes
(locally) or a redirect to a presigned S3 GET (on AWS). This router only turns that into HTTP.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from imgpipe.core.errors import NotFoundError
from imgpipe.core.formats import CONTENT_TYPES
from imgpipe.core.links import RenditionAnswer, RenditionRedirect
from imgpipe.core.model import ImageRecord, Rendition
from imgpipe.entrypoints.api.auth import AuthFirstRoute, token_guard
from imgpipe.entrypoints.api.context import ApiContext, known_id

# Temporary, and the client asks again the same way: the URL redirected to expires.
REDIRECT_STATUS = 307


def router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute)
    # Not a route dependency: a signed link is enough without the token.
    require_token = token_guard(ctx.api_token)

    @router.get(
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
        match = rendition_named(ctx.service.queries.get(known_id(image_id)), filename)
        signed = (
            expires is not None
            and signature is not None
            and ctx.links.verify_rendition(match.key, expires, signature)
        )
        if not signed:
            await require_token(request)
        answer = ctx.links.rendition_answer(match.key)
        return http_answer(answer, CONTENT_TYPES[match.format])

    return router


def rendition_named(record: ImageRecord, filename: str) -> Rendition:
    """The record's rendition whose key ends in `filename`, or NotFoundError (404)."""
    match = next((r for r in record.renditions if r.key.endswith("/" + filename)), None)
    if match is None:
        raise NotFoundError(f"image {record.image_id} has no rendition {filename}")
    return match


def http_answer(answer: RenditionAnswer, content_type: str) -> Response:
    """The Response for a RenditionAnswer: a redirect, or the bytes as `content_type`."""
    if isinstance(answer, RenditionRedirect):
        return RedirectResponse(answer.url, REDIRECT_STATUS, answer.headers)
    return Response(answer.body, media_type=content_type, headers=answer.headers)
