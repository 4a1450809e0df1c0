"""`imgpipe serve`: the local API, its workers and the uploads watcher in one process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from imgpipe.bootstrap import LocalApp, build_local, is_loopback
from imgpipe.config import Settings
from imgpipe.entrypoints.api import ApiContext, create_app, token_guard
from imgpipe.entrypoints.ratelimit import RateLimitMiddleware, TokenBuckets

log = logging.getLogger("imgpipe.serve")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class UnsafeBindError(ValueError):
    """Binding off loopback without an API token would publish every image."""


def check_bind(settings: Settings) -> None:
    if not is_loopback(settings.server.host) and not settings.server.api_token:
        raise UnsafeBindError(
            f"refusing to listen on {settings.server.host} without an API token: set "
            "IMGPIPE_SERVER__API_TOKEN (or server.api_token in the config file)"
        )


def create_local_app(local: LocalApp) -> FastAPI:
    """The FastAPI app over a built LocalApp; starting the app starts the workers."""
    settings = local.settings
    ctx = ApiContext(
        service=local.service,
        links=local.links,
        backend="local",
        max_bytes=settings.limits.max_bytes,
        max_json_bytes=settings.server.max_json_bytes,
        max_distance=settings.similarity.max_distance,
        api_token=settings.server.api_token,
        max_list_limit=settings.server.max_list_limit,
        metrics_exposition=local.metrics.exposition,
        on_enqueued=local.wake,
        problems=local.health.problems,
        idempotency_secret=local.signing_key,
        signed_uploads=local.links,
        miss_rate_per_s=settings.transform.miss_rate_per_s,
        miss_burst=settings.transform.miss_burst,
        extra_routes=lambda app: add_dashboard_routes(app, local),
    )
    app = create_app(ctx)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        local.start()
        try:
            yield
        finally:
            local.stop()

    app.router.lifespan_context = lifespan
    if settings.server.rate_limit_per_s > 0:
        app.add_middleware(
            RateLimitMiddleware,
            buckets=TokenBuckets(
                settings.server.rate_limit_per_s, settings.server.rate_limit_burst
            ),
        )
    return app


def add_dashboard_routes(app: FastAPI, local: LocalApp) -> None:
    """`GET /` (the page), `/static/*` (its assets, shipped in the package: no CDN) and
    `GET /stats` (what the page charts). The page and assets hold no data, so they are public;
    `/stats` wants the token like every data route."""
    require_token = token_guard(local.settings.server.api_token)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/stats", dependencies=[Depends(require_token)], tags=["ops"])
    def stats() -> dict[str, Any]:
        queue = local.queue.stats()
        return {
            "counts": {s.value: n for s, n in local.records.count_by_status().items()},
            "queue": {
                "visible": queue.visible,
                "inFlight": queue.in_flight,
                "dead": queue.dead,
                "oldestAgeSeconds": round(queue.oldest_age_s, 1),
            },
            "workers": local.settings.server.workers,
            "series": local.series.snapshot(),
            # deliveries waiting or retrying, and dead letters; null without webhooks
            "webhooks": local.webhooks.counts() if local.webhooks is not None else None,
        }


def serve(settings: Settings) -> None:
    import uvicorn

    from imgpipe.entrypoints.http_edge import EdgeLimits, connection_cap, edge_protocol

    check_bind(settings)
    server = settings.server
    local = build_local(settings)
    app = create_local_app(local)
    max_connections = connection_cap(server.max_connections)
    log.info(
        "imgpipe serving",
        extra={
            "url": f"http://{server.host}:{server.port}",
            "dataDir": str(settings.local.data_dir.resolve()),
            "maxConnections": max_connections,
        },
    )
    limits = EdgeLimits(
        server.max_header_bytes, server.max_headers, server.header_timeout_s, max_connections
    )
    uvicorn.run(
        app,
        host=server.host,
        port=server.port,
        http=edge_protocol(limits),
        timeout_keep_alive=server.idle_timeout_s,
        # Without trusted proxies the client is the socket's peer: uvicorn would otherwise
        # believe X-Forwarded-For from 127.0.0.1, and any local process could pick its own
        # address for each request and so its own rate-limit bucket.
        proxy_headers=bool(server.trusted_proxies),
        forwarded_allow_ips=server.trusted_proxies,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
