"""GET /images/{id}/renditions/{filename}: one rendition, to whoever holds a link the
deployment signed for it, or the token. A filename without an extension (`thumb`) is the
preset's name: its format is negotiated from Accept (core.negotiate), with Vary: Accept.

What the answer is, the deployment's Links decide (core.links.RenditionAnswer): the bytes
(locally) or a redirect to a presigned S3 GET (on AWS), or to the rendition's versioned CDN
URL where a CloudFront distribution is in front. This router only turns that into HTTP.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from imgpipe.core import negotiate
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
        candidates = renditions_named(ctx.service.queries.get(known_id(image_id)), filename)
        negotiated = len(candidates) > 1 or "." not in filename
        match = candidates[0]
        if negotiated:
            accept_variant = negotiate.variant(request.headers.get("accept"))
            chosen = negotiate.choose_among([r.format for r in candidates], accept_variant)
            match = next(r for r in candidates if r.format == chosen)
        signed = (
            expires is not None
            and signature is not None
            and any(ctx.links.verify_rendition(r.key, expires, signature) for r in candidates)
        )
        if not signed:
            await require_token(request)
        answer = ctx.links.rendition_answer(match.key, match.version_id)
        if negotiated:
            answer = dataclasses.replace(answer, headers={**answer.headers, "Vary": "Accept"})
        return http_answer(answer, CONTENT_TYPES[match.format])

    return router


def renditions_named(record: ImageRecord, filename: str) -> list[Rendition]:
    """The record's rendition whose key ends in `filename`, or, for a name without an
    extension, every format of the preset of that name; NotFoundError (404) for none."""
    found = [r for r in record.renditions if r.key.endswith("/" + filename)]
    if not found and "." not in filename:
        found = [r for r in record.renditions if r.name == filename]
    if not found:
        raise NotFoundError(f"image {record.image_id} has no rendition {filename}")
    return found


def http_answer(answer: RenditionAnswer, content_type: str) -> Response:
    """The Response for a RenditionAnswer: a redirect, or the bytes as `content_type`."""
    if isinstance(answer, RenditionRedirect):
        return RedirectResponse(answer.url, REDIRECT_STATUS, answer.headers)
    return Response(answer.body, media_type=content_type, headers=answer.headers)
