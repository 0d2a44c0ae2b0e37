"""What is settled before the app reads a request's body: who asks, and how much they send.

FastAPI reads a route's JSON body before it resolves the route's dependencies, so a token
checked in a dependency came after the whole body had arrived (a 200 MB body without a
token was read, and held, before its 401). ``RequestGate`` is ASGI middleware in front of
the app:

- every ``/api`` path but the public ones (health, the OpenAPI document and its page)
  needs a valid bearer token, checked before the app runs; the token's Actor is kept in
  the request's state for ``deps``;
- elsewhere (the console), a request with a body goes first through the check the app
  keeps in ``app.state.before_body`` (the console's: a valid session), if any;
- a body is at most ``limit`` bytes (1 MiB): a larger Content-Length is refused at once,
  and a chunked body is counted as it is read; either way 413. Routes that stream a body
  of their own and bound it themselves (an import's upload) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapkeep.api.deps import error_response, is_api
from snapkeep.errors import AuthenticationError
from snapkeep.services.identity import auth

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_LIMIT = 1 << 20  # bytes: a JSON body or a console form is a few fields
PUBLIC = frozenset({"/api/health", "/api/openapi.json", "/api/docs",
                    "/api/docs/oauth2-redirect"})


def too_large(limit: int) -> str:
    return (f"the request body is larger than {limit >> 10} KiB, the most this server takes "
            "for a JSON body or a form; send only the fields the request needs (see "
            "/api/openapi.json)")


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (None for any other scheme)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _unread(response: Response) -> Response:
    """``response`` to a request whose body stays unread: the connection is closed after
    it, as the server would otherwise read (and discard) the body to reuse it."""
    response.headers["Connection"] = "close"
    return response


class RequestGate:
    """ASGI middleware: token before body, and a bounded body (module docstring)."""

    def __init__(self, app: ASGIApp, *, limit: int = BODY_LIMIT,
                 streamed: Iterable[re.Pattern[str]] = ()) -> None:
        self.app = app
        self.limit = limit
        self.streamed = tuple(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)  # reads no body
        if is_api(request) and request.url.path not in PUBLIC:
            try:
                actor = await anyio.to_thread.run_sync(
                    auth.actor_for_token, request.app.state.base_context,
                    bearer_token(request))
            except AuthenticationError as e:
                await _unread(error_response(401, "AuthenticationError", e.message))(
                    scope, receive, send)
                return
            scope.setdefault("state", {})["actor"] = actor
        elif request.method in BODY_METHODS:
            check = getattr(request.app.state, "before_body", None)
            refusal = await anyio.to_thread.run_sync(check, request) if check else None
            if refusal is not None:
                await _unread(refusal)(scope, receive, send)
                return
        if not any(p.fullmatch(request.url.path) for p in self.streamed):
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.limit:
                await _unread(self._refuse(request))(scope, receive, send)
                return
            receive = self._counted(receive)
        await self.app(scope, receive, send)

    def _refuse(self, request: Request) -> Response:
        message = too_large(self.limit)
        if is_api(request):
            return error_response(413, "BodyTooLarge", message)
        return PlainTextResponse(message, status_code=413)

    def _counted(self, receive: Receive) -> Receive:
        """``receive`` that raises 413 once more than ``limit`` bytes of body arrived (the
        app's error handlers answer it)."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, detail=too_large(self.limit),
                                        headers={"Connection": "close"})
            return message
        return counted
