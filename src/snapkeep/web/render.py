"""Rendering console pages: the Jinja2 templates, their filters, and error pages.

Every page handler is wrapped in ``guarded``: a request without a valid session is sent
to the sign-in page, a ``SnapkeepError`` becomes a readable page with its message (a 403
one says which role is needed, as the service's message does) — never a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from snapkeep.errors import AuthenticationError, NotFoundError, PermissionDenied, SnapkeepError
from snapkeep.services.sizes import human_size
from snapkeep.web.session import Console, signin_redirect

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

# Scripts and styles come from this server only (no inline script, no CDN), and no other
# site may frame the console (a framed "Yes, restore" button could be clickjacked).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

log = logging.getLogger("snapkeep.web")


def when(dt: datetime | None) -> str:
    """A time as people read it in the console: UTC, to the second."""
    if dt is None:
        return "—"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d") if dt else "—"


def iso(dt: datetime | None) -> str:
    return dt.isoformat(timespec="seconds") if dt else ""


def size(n: int | None) -> str:
    return "—" if n is None else human_size(n)


def path_part(value: str) -> str:
    """A name quoted for a URL path (an environment may be named like a branch, a/b)."""
    return quote(value, safe="/")


def to_activity(activity_id: str) -> Response:
    """After a form that started or changed an activity: to that activity's page."""
    return RedirectResponse(f"/activities/{path_part(activity_id)}", status_code=303,
                            headers=SECURITY_HEADERS)


_env = Environment(loader=FileSystemLoader(TEMPLATES_DIR),
                   autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)
_env.filters.update(when=when, day=day, iso=iso, size=size, path=path_part)


def render(request: Request, template: str, status_code: int = 200,
           **values: Any) -> HTMLResponse:
    """A page; ``console`` (who is signed in) comes from the request when not given."""
    values.setdefault("console", getattr(request.state, "console", None))
    values.setdefault("page", template.removesuffix(".html"))
    html = _env.get_template(template).render(request=request, **values)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(request: Request, e: SnapkeepError) -> HTMLResponse:
    if isinstance(e, PermissionDenied):
        title = "You need a different role"
    elif isinstance(e, NotFoundError):
        title = "Not found"
    else:
        title = "That did not work"
    return render(request, "error.html", status_code=e.http_status, title=title,
                  message=e.message, error=e)


P = ParamSpec("P")


def guarded(handler: Callable[P, Response]) -> Callable[P, Response]:
    """Wrap a page handler (its ``request`` passed by keyword) so that 401 redirects to
    sign-in and other refusals render as pages."""
    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request)
        try:
            return handler(*args, **kwargs)
        except AuthenticationError:
            return signin_redirect(request)
        except SnapkeepError as e:
            return error_page(request, e)
        except Exception:  # a bug: log it for the operator, show the person a plain page
            log.exception("console page %s %s failed", request.method, request.url.path)
            return render(request, "error.html", status_code=500, title="Something went wrong",
                          message="The server hit an unexpected error and logged it; try "
                                  "again, and tell your administrator if it keeps happening.",
                          error=None)
    return wrapper


def guarded_json(handler: Callable[P, Response]) -> Callable[P, Response]:
    """Like ``guarded``, for the console's small JSON endpoints: ``{"error": message}``."""
    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return handler(*args, **kwargs)
        except SnapkeepError as e:
            return JSONResponse({"error": e.message}, status_code=e.http_status,
                                headers={"Cache-Control": "no-store"})
    return wrapper


def console_of(request: Request) -> Console | None:
    return getattr(request.state, "console", None)
