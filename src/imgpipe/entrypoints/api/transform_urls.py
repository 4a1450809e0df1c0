"""POST /images/{id}/transform-url: a signed /img URL for an image, for the dashboard's URL
builder, so that the signing key stays on the server. It wants the token, as /images does.

The path is the core's (core.img_links), signed by the /img use case (service.delivery) with
the keys, unsafe mode and limits the route verifies with; this router only validates the
body, checks that the image exists and answers the path with its absolute URL.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imgpipe.core.img_links import LinkOptions, link_path
from imgpipe.entrypoints.api.auth import AuthFirstRoute, authed, token_guard
from imgpipe.entrypoints.api.bodies import (
    ErrorResponse,
    TransformUrl,
    TransformUrlRequest,
    answers,
)
from imgpipe.entrypoints.api.context import ApiContext, base_url, known_id


def router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute, dependencies=authed(token_guard(ctx.api_token)))

    @router.post(
        "/images/{image_id}/transform-url",
        tags=["images"],
        **answers(
            200,
            TransformUrl,
            "the signed /img path",
            also={403: {"model": ErrorResponse, "description": "signing_key_required: no key"}},
        ),
    )
    def transform_url(image_id: str, body: TransformUrlRequest, request: Request) -> JSONResponse:
        record = ctx.service.queries.get(known_id(image_id))
        delivery = ctx.service.delivery
        # The /img route's own limits, keys and unsafe mode: what it signs, the route takes.
        path = link_path(record.image_id, link_options(body), delivery.options.limits)
        signed = "/img" + delivery.signed_path(path)
        return JSONResponse(
            {
                "path": signed,
                "url": ctx.links.img_url(signed, base_url(request)),
                "signed": bool(delivery.options.keys),
            }
        )

    return router


def link_options(body: TransformUrlRequest) -> LinkOptions:
    return LinkOptions(
        width=body.width,
        height=body.height,
        fit=body.fit,
        gravity=body.gravity,
        format=None if body.format == "auto" else body.format,
        quality=body.quality,
        dpr=body.dpr,
    )
