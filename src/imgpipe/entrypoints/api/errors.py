"""What the API answers when a request fails: the one table from exception types to HTTP
statuses, and the handlers that turn every error into `{"error": {"code", "message"}}`.

A client's mistake is its RequestError's 4xx; an object gone from the store is 404; a
transient failure (a store that did not answer, a lease held elsewhere) is 503 with
Retry-After; an image that cannot be processed is 422; anything else is a 500 whose cause goes
to the log, never to the client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imgpipe.core.errors import (
    ImageError,
    ImgpipeError,
    ObjectNotFoundError,
    RequestError,
    TransientError,
)

log = logging.getLogger("imgpipe.api")


def status_for(exc: ImgpipeError) -> int:
    """The one table from exception types to HTTP statuses."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, ObjectNotFoundError):
        return 404  # an object (a rendition, say) vanished from the store: not the image's fault
    if isinstance(exc, TransientError):
        return 503
    if isinstance(exc, ImageError):
        return 422
    return 500


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


async def imgpipe_error(_: Request, exc: ImgpipeError) -> JSONResponse:
    status = status_for(exc)
    if status >= 500:
        log.error("request failed", exc_info=exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return error_response(status, exc.code, str(exc) or exc.code, headers)


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg')}"
        for err in exc.errors()[:5]
    )
    return error_response(400, "bad_request", problems or "invalid request")


async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(
        exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None
    )


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=exc)
    return error_response(500, "internal", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.exception_handler(ImgpipeError)(imgpipe_error)
    app.exception_handler(RequestValidationError)(validation_error)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(Exception)(unexpected_error)
