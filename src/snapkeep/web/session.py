"""Who is signed in to the console: the session cookie, its CSRF token, and a Context
that acts as that person.

The cookie holds a random secret (only its hash is in the catalog, services/identity/auth.py);
it is HttpOnly, SameSite=Lax, and Secure when the console is served over https (behind
a reverse proxy, uvicorn's ``--proxy-headers`` makes the scheme the proxy's).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from snapkeep.errors import AuthenticationError
from snapkeep.policy import Actor
from snapkeep.services import projects
from snapkeep.services.context import Context
from snapkeep.services.identity import auth

SESSION_COOKIE = "snapkeep_session"
# A double-submit token for the sign-in form, which has no session yet: it stops another
# site from signing a browser in to an account of its choosing (login CSRF).
SIGNIN_COOKIE = "snapkeep_signin"
# The project the console shows, on a server of several (a view choice, not a secret).
PROJECT_COOKIE = "snapkeep_project"

ContextFactory = Callable[[], Context]


@dataclass(frozen=True)
class Console:
    """A signed-in request: a Context acting as ``actor``, and the session's CSRF token."""

    ctx: Context
    actor: Actor
    csrf: str
    # On a server of several projects, those the person may switch between (in the
    # server's order); empty on a server of one.
    projects: tuple[str, ...] = ()


def signed_in(request: Request, ctx_factory: ContextFactory) -> Console:
    """The request's Console; AuthenticationError when there is no valid session.

    On a server of several projects (``app.state.projects``) it acts in the project the
    browser chose (``PROJECT_COOKIE``), or else the first the person has a role in, with
    their roles there; its CSRF token names that project, so a form shown in one project
    is refused once the browser has switched to another (same-named environments must
    not be confused)."""
    ctx = ctx_factory()
    actor, csrf = auth.session_actor(ctx, request.cookies.get(SESSION_COOKIE))
    choices: tuple[str, ...] = ()
    served: dict[str, Context] = getattr(request.app.state, "projects", None) or {}
    if len(served) > 1:
        mine = projects.visible(ctx, actor)
        choices = tuple(pid for pid in served if pid in mine)
        wanted = request.cookies.get(PROJECT_COOKIE)
        pid = wanted if wanted in choices else (choices[0] if choices else ctx.config.id)
        if served[pid] is not ctx:
            ctx = served[pid]
            actor = projects.actor_in(ctx, actor)
        csrf = f"{csrf}.{pid}"
    console = Console(ctx.for_actor(actor), actor, csrf, choices)
    request.state.console = console  # so an error page can still show who is signed in
    return console


NO_SESSION_NEEDED = frozenset({"/signin", "/signout"})


def before_body(request: Request, ctx_factory: ContextFactory) -> Response | None:
    """For the API's RequestGate: a console form posted without a valid session goes to
    the sign-in page before its body is read; None lets it through."""
    if request.url.path in NO_SESSION_NEEDED:
        return None
    try:
        signed_in(request, ctx_factory)
    except AuthenticationError:
        return signin_redirect(request)
    return None


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, secret: str) -> None:
    response.set_cookie(SESSION_COOKIE, secret, max_age=int(auth.SESSION_TTL.total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=is_https(request))


def set_project_cookie(response: Response, request: Request, project: str) -> None:
    response.set_cookie(PROJECT_COOKIE, project, max_age=int(auth.SESSION_TTL.total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=is_https(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=is_https(request))


def signin_token(request: Request) -> str:
    """The sign-in form's token: the one in the browser's cookie, or a new one."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def set_signin_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path="/", httponly=True,
                        samesite="lax", secure=is_https(request))


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in; anything else (another host, a
    scheme) becomes ``/``, so the sign-in page cannot be used as an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


def signin_redirect(request: Request) -> RedirectResponse:
    """Send the browser to the sign-in page, coming back here (a GET) afterwards."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form post: back to the page the form was on
        referer = urlsplit(request.headers.get("referer", ""))
        back = referer.path if referer.netloc == request.url.netloc else "/"
    return RedirectResponse(f"/signin?next={quote(safe_next(back), safe='/')}", status_code=303)
