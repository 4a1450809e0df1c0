"""How large a request body each route takes, enforced while the body streams in.

An upload route takes an original of up to max_bytes (a multipart one, a little more for its
part headers); every other route takes a small JSON body or none. A body over its limit is
answered 413 as soon as it is known to be over (from Content-Length, or once that many bytes
have arrived), without buffering it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgpipe.entrypoints.asgi_errors import send_json_error

# What a multipart POST /images may carry beyond the file itself: boundaries and part headers.
MULTIPART_SLACK = 64 * 1024


def body_limits(max_bytes: int, max_json_bytes: int) -> Callable[[Scope], int]:
    """The largest body a request may send, by its method and path."""

    def max_body(scope: Scope) -> int:
        path: str = scope.get("path", "")
        if scope.get("method") == "PUT" and path.startswith("/upload/"):
            return max_bytes
        if scope.get("method") == "POST" and path == "/images":
            return max_bytes + MULTIPART_SLACK
        return max_json_bytes  # JSON, or no body at all

    return max_body


class BodyLimitMiddleware:
    """Caps request bodies while they stream: 413 without buffering the whole body."""

    def __init__(self, app: ASGIApp, max_body: Callable[[Scope], int | None]) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        seen = 0
        overflow = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal seen, overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Stop reading: the app sees a disconnect, and whatever it answers to
                    # that (a parse error, say) is replaced by the 413 below.
                    overflow = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not overflow:
                await send(message)
            elif not answered:
                answered = True
                await _send_413(send, limit)

        await self.app(scope, limited_receive, guarded_send)
        if overflow and not answered:
            await _send_413(send, limit)


async def _send_413(send: Send, limit: int) -> None:
    await send_json_error(
        send,
        413,
        "too_large",
        f"the body is larger than {limit} bytes",
        [(b"connection", b"close")],
    )
