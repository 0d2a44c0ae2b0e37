"""The web console: server-rendered pages over the same services as the CLI and API.

``create_router(ctx_factory)`` returns the console's routes (``/``, ``/signin``,
``/environments/…``, ``/activities…``, and its files under ``/console/static/``);
``snapkeep serve`` mounts them next to the API with ``install``. ``ctx_factory()`` is
called once per request; it may return one shared, already opened Context (as ``snapkeep
serve`` does): each request acts through its own ``for_actor`` copy of it.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response

from snapkeep.errors import NotFoundError
from snapkeep.services.identity import auth
from snapkeep.services.identity.throttle import SignInThrottle
from snapkeep.web import activity_pages, backups, signin
from snapkeep.web.render import STATIC_DIR, TEMPLATES_DIR, guarded_json
from snapkeep.web.session import ContextFactory, before_body

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "create_router", "install"]

STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript",
                "favicon.svg": "image/svg+xml"}


def create_router(ctx_factory: ContextFactory,
                  throttle: SignInThrottle | None = None) -> APIRouter:
    """The console's routes; ``throttle`` (default: from SNAPKEEP_SIGNIN_*) limits failed
    sign-ins."""
    router = APIRouter()

    @router.get("/console/static/{name}", include_in_schema=False)
    @guarded_json
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise NotFoundError(f"the console has no file {name!r}")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    @router.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # Browsers ask for it on pages that name no icon (the API's, a file's): same icon.
        return RedirectResponse("/console/static/favicon.svg", status_code=301)

    auth.hash_gate()  # its settings (SNAPKEEP_HASH_*) are checked at start, not at sign-in
    signin.add_routes(router, ctx_factory, throttle or SignInThrottle.from_env())
    activity_pages.add_routes(router, ctx_factory)
    backups.add_routes(router, ctx_factory)
    return router


def install(app: FastAPI, ctx_factory: ContextFactory) -> None:
    """Mount the console on the API's ``app``; its RequestGate then checks the session of
    a posted form before reading the form."""
    app.include_router(create_router(ctx_factory))
    app.state.before_body = functools.partial(before_body, ctx_factory=ctx_factory)
