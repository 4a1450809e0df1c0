"""GET /img/{signature}/{options}/{source}: an on-request result, in imgproxy's URL grammar
(docs/api.md: The /img route).

The use case (service.delivery) decides and answers plain values; this router turns them
into HTTP: the cache headers (a strong ETag, immutable for a year, Vary: Accept where the
format was negotiated), 304 to a matching If-None-Match, 429 past the client's rate of
renders (cache misses), and a 307 to the stored object for a result over the deployment's
inline limit. No token: the signature is the permission.
"""

from __future__ import annotations

import math
from typing import NamedTuple
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from imgpipe.entrypoints.api.context import ApiContext
from imgpipe.entrypoints.api.errors import error_response
from imgpipe.entrypoints.ratelimit import TokenBuckets
from imgpipe.service.delivery import Delivered, Found

PREFIX = "/img"
CACHE_CONTROL = "public, max-age=31536000, immutable"
REDIRECT_STATUS = 307


def router(ctx: ApiContext) -> APIRouter:
    router = APIRouter()
    misses = TokenBuckets(ctx.miss_rate_per_s, ctx.miss_burst) if ctx.miss_rate_per_s else None
    delivery = ctx.service.delivery

    def resolve(path: str, request: Request) -> _Outcome:
        """The lookup, the read and the render, in one worker thread: each hand-over between
        the event loop and a thread costs more than a cached read."""
        found = delivery.find(path, _accept(request))
        if found.cached is not None and _matches(request, _quoted(found)):
            delivery.revalidated(found)
            return _Outcome(found, None, 0.0)
        delivered = delivery.read(found)
        if delivered is None:
            client = request.client.host if request.client else "unknown"
            wait = misses.take(client) if misses is not None else 0.0
            if wait > 0:
                return _Outcome(found, None, wait)
            delivered = delivery.render(found)
        return _Outcome(found, delivered, 0.0)

    @router.get(
        PREFIX + "/{path:path}",
        tags=["transforms"],
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, 304: {}, 307: {}},
    )
    async def img(path: str, request: Request) -> Response:
        # A hit answered before from memory never gets here (img_hits.ImgHits answers it).
        found, delivered, wait = await run_in_threadpool(resolve, sent_path(request.scope), request)
        if wait > 0:
            return _rate_limited(wait, ctx.miss_rate_per_s)
        headers = _cache_headers(found.negotiated)
        if delivered is None:
            return Response(status_code=304, headers={**headers, "ETag": _quoted(found)})
        return _answer(ctx, request, delivered, headers)

    # HEAD as GET (uvicorn drops the body): CDNs and link checkers ask for the length and
    # type without the bytes. Left out of the schema, where it would repeat GET's operation.
    router.add_api_route(PREFIX + "/{path:path}", img, methods=["HEAD"], include_in_schema=False)
    return router


class _Outcome(NamedTuple):
    """What resolve() came to: `delivered` None is a 304 (or, with `wait`, a 429)."""

    found: Found
    delivered: Delivered | None
    wait: float  # > 0: past the client's rate of renders, retry after this many seconds


def sent_path(scope: Scope) -> str:
    """The path after /img as the client sent it, still percent-encoded (the signature is
    over that): uvicorn's raw_path; through Mangum, API Gateway's rawPath (or path)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        sent = raw.decode("latin-1")
    else:
        event = scope.get("aws.event")
        given = event.get("rawPath") or event.get("path") if isinstance(event, dict) else None
        sent = str(given) if given else quote(scope["path"], safe="/:@!$&'()*+,;=-._~%")
    start = sent.find(PREFIX + "/")
    return sent[start + len(PREFIX) :] if start >= 0 else sent


def _accept(request: Request) -> str | None:
    return request.headers.get("accept")


def _cache_headers(negotiated: bool) -> dict[str, str]:
    headers = {"Cache-Control": CACHE_CONTROL}
    if negotiated:
        headers["Vary"] = "Accept"
    return headers


def _quoted(found: Found) -> str:
    assert found.cached is not None
    return '"' + found.cached.etag.strip('"') + '"'


def _matches(request: Request, etag: str) -> bool:
    return matches(request.headers.get("if-none-match"), etag)


def matches(header: str | None, etag: str) -> bool:
    """If-None-Match names `etag` (compared weakly, as RFC 9110 says for this header)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _answer(
    ctx: ApiContext, request: Request, done: Delivered, headers: dict[str, str]
) -> Response:
    headers = {**headers, "ETag": done.etag}
    if _matches(request, done.etag):
        return Response(status_code=304, headers=headers)
    if done.body is None:
        url = ctx.links.object_url(done.key, done.content_type)
        return RedirectResponse(url, REDIRECT_STATUS, headers={"Cache-Control": "no-store"})
    return Response(done.body, media_type=done.content_type, headers=headers)


def _rate_limited(wait: float, rate: float) -> Response:
    retry_after = max(1, math.ceil(wait))
    return error_response(
        429,
        "rate_limited",
        f"more than {rate:g} renders a second from this client; retry in {retry_after} s",
        {"Retry-After": str(retry_after)},
    )
