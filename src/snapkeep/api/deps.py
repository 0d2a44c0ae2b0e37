"""Who asks (bearer tokens → a request's Context) and the one place errors become HTTP.

Every refusal is ``{"error": {"status": n, "type": "…", "message": "…"}}`` with the status
of the SnapkeepError raised (``http_status``): 401 no valid token, 403 a role that may
not, 404 nothing there, 409 inactive or busy, 422 a bad request. FastAPI's own
validation errors and unknown routes are reshaped to the same envelope.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import NotFoundError, SnapkeepError, TryLater
from snapkeep.policy import Actor
from snapkeep.services import projects
from snapkeep.services.context import Context
from snapkeep.services.identity import auth

log = logging.getLogger("snapkeep.api")

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token (`sk_…`) from "
                                "`snapkeep auth:token:create --user EMAIL`.")


def base_context(request: Request) -> Context:
    """The server's shared Context (catalog and repository opened once)."""
    return request.app.state.base_context


def _actor(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Actor:
    """The token's Actor: the one ``gate.RequestGate`` found before the body was read, or
    (an app without the gate) the token's own."""
    actor = getattr(request.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    return auth.actor_for_token(base_context(request),
                                credentials.credentials if credentials else None)


def request_context(project: str, request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Depends(bearer)]) -> Context:
    """The Context of this request: the token's Actor, with their roles there, on the
    project in the path.

    Authenticates first (401), then checks the project in the path (404), so a caller
    without a token learns nothing about the server.
    """
    base = base_context(request)
    actor = _actor(request, credentials)
    served: dict[str, Context] = getattr(request.app.state, "projects", None) or \
        {base.config.id: base}
    ctx = served.get(project)
    if ctx is None:
        if len(served) == 1:
            raise NotFoundError(f"project {project!r} is not served here: this server "
                                f"serves project {base.config.id!r}; use "
                                f"/api/projects/{base.config.id}/…")
        raise NotFoundError(f"project {project!r} is not served here: this server serves "
                            f"{', '.join(sorted(served))}; see GET /api/projects")
    if ctx is not base:  # the gate found the actor's roles in the first project
        actor = projects.actor_in(ctx, actor)
    return ctx.for_actor(actor)


def token_context(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(bearer)]) -> Context:
    """Like ``request_context`` for paths without a project (``GET /api``)."""
    return base_context(request).for_actor(_actor(request, credentials))


ProjectContext = Annotated[Context, Depends(request_context)]
TokenContext = Annotated[Context, Depends(token_context)]


def environment(ctx: Context, name: str) -> EnvironmentConfig:
    """The environment named in the path, or 404 (the CLI's unknown environment is a
    config error; over HTTP it is a missing resource)."""
    env = ctx.config.environments.get(name)
    if env is None:
        known = ", ".join(sorted(ctx.config.environments)) or "none"
        raise NotFoundError(f"environment {name!r} does not exist in project "
                            f"{ctx.config.id!r} (environments: {known}); see GET "
                            f"/api/projects/{ctx.config.id}/environments")
    return env


# -- errors ------------------------------------------------------------------------------------

def error_response(status: int, type_: str, message: str, *,
                   retry_after: int | None = None, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"error": {"status": status, "type": type_, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def is_api(request: Request) -> bool:
    # The console shares the app; its pages get plain answers, not the API's JSON.
    return request.url.path == "/api" or request.url.path.startswith("/api/")


async def _snapkeep_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SnapkeepError)
    retry_after = exc.retry_after if isinstance(exc, TryLater) else None
    if not is_api(request):
        return PlainTextResponse(exc.message, status_code=exc.http_status, headers=(
            {"Retry-After": str(retry_after)} if retry_after is not None else None))
    return error_response(exc.http_status, type(exc).__name__, exc.message,
                          retry_after=retry_after)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    kind, *rest = [str(p) for p in loc] or ["body"]
    field = ".".join(rest)
    if kind == "body":
        return f"field {field!r}" if field else "the body"
    if kind == "query":
        return f"query parameter {field!r}"
    return f"{kind} {field!r}" if field else kind


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not is_api(request):
        return await request_validation_exception_handler(request, exc)
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
            continue
        what = "is not a known field" if err.get("type") == "extra_forbidden" else \
            err.get("msg", "is invalid")
        problems.append(f"{_where(err.get('loc', ()))}: {what}")
    hint = ' (a backup takes a JSON body such as {"safe": true})' \
        if request.url.path.endswith("/backups") else ""
    message = ("the request was not understood: " + "; ".join(problems) +
               f". Fix it and send it again{hint}; the API is described at /api/openapi.json.")
    return error_response(422, "UsageError", message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not is_api(request):
        return await http_exception_handler(request, exc)
    if exc.status_code == 404:
        message = (f"there is no {request.url.path} here; the API lives under "
                   "/api/projects/PROJECT/… (see /api/openapi.json)")
        return error_response(404, "NotFoundError", message)
    if exc.status_code == 405:
        message = (f"{request.method} is not allowed on {request.url.path}; see /api/openapi.json "
                   "for the methods each path takes")
        return error_response(405, "UsageError", message)
    if exc.status_code == 413:  # gate.RequestGate: a body over its limit
        response = error_response(413, "BodyTooLarge", str(exc.detail))
        response.headers.update(exc.headers or {})  # Connection: close, the rest unread
        return response
    return error_response(exc.status_code, "HTTPError", str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    if not is_api(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return error_response(500, "InternalError",
                          f"internal error: {type(exc).__name__}; the server's log has "
                          "the details, please report it")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SnapkeepError, _snapkeep_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
