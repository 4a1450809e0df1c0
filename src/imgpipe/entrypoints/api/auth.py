"""Who may call the API: the bearer-token guard, the route class that runs it before a body is
read, and who the caller is as far as the deployment knows.

Locally one API token guards every data route (none set: the server listens on loopback only);
on AWS API Gateway authenticates and the app runs without a token.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from imgpipe.core import signing
from imgpipe.core.errors import UnauthorizedError


def caller(request: Request) -> str:
    """Who is calling, as far as the deployment knows: on AWS the principal API Gateway
    authenticated (IAM or JWT), from the event Mangum hands over; locally "" (one token)."""
    event = request.scope.get("aws.event")
    if not isinstance(event, dict):
        return ""
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    return str(iam.get("userArn") or claims.get("sub") or "")


class TokenGuard:
    """A dependency that wants `Authorization: Bearer <api_token>`, when a token is set."""

    def __init__(self, api_token: str | None) -> None:
        self.api_token = api_token

    async def __call__(self, request: Request) -> None:
        if self.api_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not signing.constant_time_equal(token, self.api_token):
            raise UnauthorizedError("missing or wrong bearer token")


def token_guard(api_token: str | None) -> TokenGuard:
    return TokenGuard(api_token)


def authed(guard: TokenGuard) -> list[Any]:
    """The `dependencies` of a route that wants the token."""
    return [Depends(guard)]


class AuthFirstRoute(APIRoute):
    """A route whose TokenGuard runs before its body is read. FastAPI reads and parses a JSON
    body before it runs any dependency, so without this a wrong token costs a whole body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [d.dependency for d in self.dependencies if isinstance(d.dependency, TokenGuard)]
        if not guards or self.body_field is None:
            return handler

        async def guarded(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            return await handler(request)

        return guarded
