"""The FastAPI application: routers, error envelope, OpenAPI at ``/api/openapi.json``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request

from snapkeep import __version__
from snapkeep.api.deps import TokenContext, install_error_handlers
from snapkeep.api.gate import RequestGate
from snapkeep.api.routers import (
    activities,
    backups,
    environments,
    imports,
    metrics,
    transfers,
)
from snapkeep.api.schemas import ApiInfoOut, ErrorOut, ProjectOut, project_path
from snapkeep.services import projects
from snapkeep.services.context import Context

DESCRIPTION = """\
Snapshots of application environments (database and mounts), over HTTP.

Authenticate with an API token: `Authorization: Bearer sk_…` (create one with
`snapkeep auth:token:create --user EMAIL`). Taking, restoring and deleting a backup
answers `202 Accepted` with a queued activity; follow it at its `links.log`
(JSON lines). Every error is `{"error": {"status", "type", "message"}}`.
"""


DOCS_ENV = "SNAPKEEP_API_DOCS"  # "1": serve the browsable Swagger UI at /api/docs


def docs_wanted() -> bool:
    return os.environ.get(DOCS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def create_app(base_ctx_factory: Callable[[], Context | Sequence[Context]], *,
               stop: threading.Event | None = None, docs: bool | None = None) -> FastAPI:
    """The API over the project(s) ``base_ctx_factory()`` loads (called once, now: their
    catalog and repositories are opened here so a bad config fails at start and every
    request shares them); several projects share one catalog (services/projects.py), the
    first is the one ``GET /api`` describes. Setting ``stop`` ends the log streams (the
    server is shutting down). ``docs`` (default: SNAPKEEP_API_DOCS) serves Swagger UI at
    /api/docs; it is off by default as that page makes browsers load its scripts from a
    CDN."""
    loaded = base_ctx_factory()
    served = [loaded] if isinstance(loaded, Context) else list(loaded)
    base = served[0]
    for ctx in served:
        ctx.catalog  # noqa: B018 - open now: fail at start, and share it
        ctx.repository  # noqa: B018
    app = FastAPI(title="snapkeep", version=__version__, description=DESCRIPTION,
                  openapi_url="/api/openapi.json",
                  docs_url="/api/docs" if (docs_wanted() if docs is None else docs) else None,
                  redoc_url=None)
    app.state.base_context = base
    app.state.projects = {ctx.config.id: ctx for ctx in served}
    app.state.stop = stop or threading.Event()
    install_error_handlers(app)
    # tokens before bodies, and bodies bounded (the upload streams and bounds its own)
    app.add_middleware(RequestGate, streamed=[imports.UPLOAD_PATH])

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        """Whether the server answers (no token needed): for load balancers and systemd."""
        return {"status": "ok"}

    @app.get("/api", response_model=ApiInfoOut, tags=["server"],
             responses={401: {"model": ErrorOut}})
    def api_info(ctx: TokenContext, request: Request) -> ApiInfoOut:
        """The project this server serves (of several: the first the token's user has a
        role in; the rest at /api/projects), and who the token belongs to, with their
        roles there."""
        served: dict[str, Context] = request.app.state.projects
        if len(served) > 1:
            mine = projects.visible(ctx, ctx.actor)
            pid = next((pid for pid in served if pid in mine), ctx.config.id)
            ctx = served[pid].for_actor(projects.actor_in(served[pid], ctx.actor))
        a = ctx.actor
        p = project_path(ctx.config.id)
        return ApiInfoOut(project=ctx.config.id, version=__version__,
                          actor={"name": a.name, "email": a.email,
                                 "project_role": a.project_role,
                                 "environment_roles": dict(a.environment_roles)},
                          links={"environments": f"{p}/environments",
                                 "activities": f"{p}/activities",
                                 "projects": "/api/projects",
                                 "openapi": "/api/openapi.json"})

    @app.get("/api/projects", response_model=list[ProjectOut], tags=["server"],
             responses={401: {"model": ErrorOut}})
    def list_projects(ctx: TokenContext, request: Request) -> list[ProjectOut]:
        """The projects this server serves that the token's user has a role in."""
        out = []
        for pid, pctx in request.app.state.projects.items():
            actor = projects.actor_in(pctx, ctx.actor)
            if projects.may_see(actor):
                p = project_path(pid)
                out.append(ProjectOut(id=pid, plan=pctx.config.plan,
                                      project_role=actor.project_role,
                                      environment_roles=dict(actor.environment_roles),
                                      links={"self": p, "environments": f"{p}/environments",
                                             "activities": f"{p}/activities"}))
        return out

    for module in (environments, backups, transfers, imports, activities, metrics):
        app.include_router(module.router)
    return app
