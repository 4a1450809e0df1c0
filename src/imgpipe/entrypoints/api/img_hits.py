"""ImgHits: the ASGI fast path of `GET /img/...` for a result answered before, straight from
the use case's memory (Delivery.hit), without FastAPI's routing, its request objects or a
hop to a worker thread; anything else goes on to the app unchanged.

A hit is a dictionary lookup and the record's stamp (MetadataStore.stamp: locally a WAL read
of one row, which does not wait for writers), so it runs on the event loop: the hop to a
thread would cost more than the hit. The answer is the route's (img.py): the same headers, a
304 to a matching If-None-Match, HEAD without the body (uvicorn drops it).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgpipe.core.errors import TransientError
from imgpipe.entrypoints.api.img import CACHE_CONTROL, PREFIX, matches, sent_path
from imgpipe.service.delivery import Delivery, Hit


class ImgHits:
    """Answers the hits Delivery.hit knows; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, delivery: Delivery) -> None:
        self.app = app
        self.delivery = delivery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not scope["path"].startswith(PREFIX + "/")
            or not self.delivery.memory
        ):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        try:
            hit = self.delivery.hit(sent_path(scope), headers.get(b"accept"))
        except TransientError:
            hit = None  # the long way says what is wrong, off the event loop
        if hit is None:
            await self.app(scope, receive, send)
            return
        for message in answer(hit, headers.get(b"if-none-match")):
            await send(message)


def answer(hit: Hit, if_none_match: str | None) -> list[Message]:
    """The route's answer to `hit`, as ASGI messages."""
    done = hit.delivered
    assert done.body is not None  # only results answered inline are remembered
    headers = [(b"cache-control", CACHE_CONTROL.encode()), (b"etag", done.etag.encode())]
    if hit.negotiated:
        headers.append((b"vary", b"Accept"))
    if matches(if_none_match, done.etag):
        return [
            {"type": "http.response.start", "status": 304, "headers": headers},
            {"type": "http.response.body", "body": b""},
        ]
    headers.append((b"content-type", done.content_type.encode()))
    headers.append((b"content-length", str(done.length).encode()))
    return [
        {"type": "http.response.start", "status": 200, "headers": headers},
        {"type": "http.response.body", "body": done.body},
    ]


def _headers(scope: Scope) -> dict[bytes, str]:
    """The two request headers a hit reads (ASGI gives names in lower case)."""
    wanted = (b"accept", b"if-none-match")
    return {k: v.decode("latin-1") for k, v in scope["headers"] if k in wanted}
