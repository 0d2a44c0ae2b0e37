"""Signing in and out of the console."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from snapkeep.errors import AuthenticationError, NotFoundError, TryLater
from snapkeep.services.identity import auth
from snapkeep.services.identity.throttle import SignInThrottle
from snapkeep.web.render import SECURITY_HEADERS, guarded, render
from snapkeep.web.session import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    ContextFactory,
    clear_session_cookie,
    safe_next,
    set_project_cookie,
    set_session_cookie,
    set_signin_cookie,
    signed_in,
    signin_token,
)

# One message for every failure: it must not tell which emails have accounts.
SIGNIN_FAILED = "Wrong email or password. Check both and try again."


def add_routes(router: APIRouter, ctx_factory: ContextFactory,
               throttle: SignInThrottle) -> None:
    def signin_form(request: Request, next_: str, email: str = "", error: str | None = None,
                    status_code: int = 200) -> Response:
        token = signin_token(request)
        response = render(request, "signin.html", status_code=status_code, console=None,
                          next=safe_next(next_), email=email, error=error, signin_token=token)
        set_signin_cookie(response, request, token)
        return response

    @router.get("/signin", include_in_schema=False)
    @guarded
    def signin_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query
        try:
            signed_in(request, ctx_factory)
        except AuthenticationError:
            return signin_form(request, next)
        return RedirectResponse(safe_next(next), status_code=303)  # already signed in

    @router.post("/signin", include_in_schema=False)
    @guarded
    def signin(request: Request, email: str = Form(""), password: str = Form(""),
               csrf_token: str | None = Form(None), next: str = Form("/")) -> Response:  # noqa: A002
        auth.check_csrf(request.cookies.get(SIGNIN_COOKIE) or "", csrf_token)
        ctx = ctx_factory()
        try:
            actor = auth.authenticate_password(
                ctx, email, password, throttle=throttle,
                address=request.client.host if request.client else None)
        except AuthenticationError:
            return signin_form(request, next, email=email, error=SIGNIN_FAILED,
                               status_code=401)
        except TryLater as e:  # throttled (429) or too many hashes at once (503)
            response = signin_form(request, next, email=email, status_code=e.http_status,
                                   error=e.message[:1].upper() + e.message[1:] + ".")
            response.headers["Retry-After"] = str(e.retry_after)
            return response
        assert actor.email is not None  # a password belongs to a user, who has an email
        cookie, _csrf = auth.create_web_session(ctx, actor.email)
        response = RedirectResponse(safe_next(next), status_code=303,
                                    headers=SECURITY_HEADERS)
        set_session_cookie(response, request, cookie)
        response.delete_cookie(SIGNIN_COOKIE, path="/")
        return response

    @router.post("/project", include_in_schema=False)
    @guarded
    def switch_project(request: Request, project: str = Form(""),
                       csrf_token: str | None = Form(None)) -> Response:
        """The project switcher (a server of several projects): show ``project`` next."""
        console = signed_in(request, ctx_factory)
        auth.check_csrf(console.csrf, csrf_token)
        if project not in console.projects:
            raise NotFoundError(f"you have no role in a project {project!r} served here; "
                                "pick one of the list")
        response = RedirectResponse("/", status_code=303)
        set_project_cookie(response, request, project)
        return response

    @router.post("/signout", include_in_schema=False)
    @guarded
    def signout(request: Request, csrf_token: str | None = Form(None)) -> Response:
        try:
            console = signed_in(request, ctx_factory)
        except AuthenticationError:  # already signed out: nothing to end
            response = RedirectResponse("/signin", status_code=303)
            clear_session_cookie(response, request)
            return response
        auth.check_csrf(console.csrf, csrf_token)
        auth.end_web_session(console.ctx, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/signin", status_code=303)
        clear_session_cookie(response, request)
        return response

