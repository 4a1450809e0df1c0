"""create_app: the FastAPI app of either deployment, from its ApiContext: the error handlers,
the body limits, and the routers in the order /openapi.json lists their paths."""

from __future__ import annotations

from fastapi import FastAPI

from imgpipe import __version__
from imgpipe.entrypoints.api import images, img, ops, renditions, transform_urls, uploads
from imgpipe.entrypoints.api.auth import AuthFirstRoute
from imgpipe.entrypoints.api.bodies import ERRORS
from imgpipe.entrypoints.api.context import ApiContext
from imgpipe.entrypoints.api.errors import install_error_handlers
from imgpipe.entrypoints.api.img_hits import ImgHits
from imgpipe.entrypoints.api.limits import BodyLimitMiddleware, body_limits


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="imgpipe",
        version=__version__,
        description="Upload images; get metadata and renditions back.",
        responses=ERRORS,
    )
    # Routes the deployment adds itself (extra_routes) want the token before the body too.
    app.router.route_class = AuthFirstRoute
    install_error_handlers(app)
    # Innermost of the middlewares: the server's rate limit and the body limits still apply.
    app.add_middleware(ImgHits, delivery=ctx.service.delivery)
    app.add_middleware(BodyLimitMiddleware, max_body=body_limits(ctx.max_bytes, ctx.max_json_bytes))
    app.include_router(ops.health_router(ctx))
    app.include_router(uploads.router(ctx))
    app.include_router(images.router(ctx))
    app.include_router(renditions.router(ctx))
    app.include_router(transform_urls.router(ctx))
    app.include_router(img.router(ctx))
    if ctx.metrics_exposition is not None:
        app.include_router(ops.metrics_router(ctx, ctx.metrics_exposition))
    if ctx.signed_uploads is not None:
        app.include_router(uploads.signed_upload_router(ctx, ctx.signed_uploads))
    if ctx.extra_routes is not None:
        ctx.extra_routes(app)
    return app
