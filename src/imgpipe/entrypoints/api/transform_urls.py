"""POST /images/{id}/transform-url: a signed /img URL for an image, for the dashboard's URL
builder, so that the signing key stays on the server. It wants the token, as /images does.

The path and its signature are the core's (core.img_links), with the keys, unsafe mode and
limits the /img route verifies with (service.delivery's options); this router only validates
the body, checks that the image exists and answers the path with its absolute URL.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imgpipe.core.img_links import ImgSigner, LinkOptions, img_link
from imgpipe.entrypoints.api.auth import AuthFirstRoute, authed, token_guard
from imgpipe.entrypoints.api.bodies import TransformUrl, TransformUrlRequest, answers
from imgpipe.entrypoints.api.context import ApiContext, base_url, known_id


def router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute, dependencies=authed(token_guard(ctx.api_token)))

    @router.post(
        "/images/{image_id}/transform-url",
        tags=["images"],
        **answers(
            200,
            TransformUrl,
            "the signed /img path; 409 signing_key_required where no key signs them",
        ),
    )
    def transform_url(image_id: str, body: TransformUrlRequest, request: Request) -> JSONResponse:
        record = ctx.service.queries.get(known_id(image_id))
        # The /img route's own keys, unsafe mode and limits: what it signs, the route takes.
        options = ctx.service.delivery.options
        signer = ImgSigner(options.keys, options.signature_size, options.unsafe)
        path = img_link(record.image_id, link_options(body), signer, options.limits)
        return JSONResponse(
            {
                "path": path,
                "url": base_url(request) + path,
                "signed": bool(signer.keys),
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
