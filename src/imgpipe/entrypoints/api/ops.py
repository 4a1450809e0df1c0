"""The operations routes: GET /health (for load balancers and people) and GET /metrics (the
Prometheus exposition, where the deployment has one: locally, not on AWS)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from imgpipe import __version__
from imgpipe.entrypoints.api.auth import AuthFirstRoute, authed, token_guard
from imgpipe.entrypoints.api.bodies import Health, answers
from imgpipe.entrypoints.api.context import ApiContext


def health_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute)

    @router.get(
        "/health",
        tags=["ops"],
        **answers(
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

    return router


def metrics_router(ctx: ApiContext, exposition: Callable[[], bytes]) -> APIRouter:
    router = APIRouter(route_class=AuthFirstRoute)

    @router.get(
        "/metrics",
        dependencies=authed(token_guard(ctx.api_token)),
        tags=["ops"],
        response_class=Response,
    )
    def metrics() -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
