"""The environments list and an environment's Backups view: Backup, Stored, Restore,
Delete."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from snapkeep.api.streaming import download
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import PermissionDenied, UsageError
from snapkeep.policy import Action, require_role
from snapkeep.services import environments
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.listing import SnapshotInfo
from snapkeep.services.snapshots.restore_scope import RestoreScope
from snapkeep.services.transfer import export_import as transfer
from snapkeep.web.render import guarded, render, to_activity
from snapkeep.web.session import Console, ContextFactory, signed_in
from snapkeep.web.views import MAX_PAGE, backups_view, environment_rows, restore_targets

MODES = {"consistent": False, "live": True}  # the form's choice → live


def _scope(part: str, tables: str) -> RestoreScope:
    """The restore form's choice: everything, database (optionally some tables), mounts,
    or ``mount:NAME``."""
    names = [t.strip() for t in tables.split(",") if t.strip()]
    if part == "everything" and not names:
        return RestoreScope()
    if part in ("everything", "database"):
        return RestoreScope.parse("database", tables=names)
    if names:
        raise UsageError("tables can only be picked when restoring the database")
    if part == "mounts":
        return RestoreScope.parse("mounts")
    if part.startswith("mount:"):
        return RestoreScope.parse(mounts=[part.removeprefix("mount:")])
    raise UsageError(f"unknown restore choice {part!r}")


def _at(value: str) -> str | None:
    """The form's "restore to a point in time" field: a ``datetime-local`` value, which
    the form labels UTC (browsers send it without a zone), or empty."""
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?", value):
        return value + "Z"
    return value  # with a zone, or a GTID typed in: as given


def _snapshot_page(console: Console, env: str, snapshot_id: str, action: Action
                   ) -> tuple[Console, EnvironmentConfig, SnapshotInfo]:
    """The environment and snapshot a page is about, once the policy lets the signed-in
    person do ``action`` on the environment (the page is a control for it)."""
    environment = console.ctx.config.environment(env)
    snap = snapshots.get_snapshot(console.ctx, environment, snapshot_id)
    require_role(console.actor, environment.name, action)
    return console, environment, snap


def add_routes(router: APIRouter, ctx_factory: ContextFactory) -> None:
    # Environment names may hold "/" (they are branch names), hence {env:path}; the routes
    # with a longer tail are declared first so that they win.
    _add_restore_routes(router, ctx_factory)
    _add_export_and_delete_routes(router, ctx_factory)
    _add_environment_routes(router, ctx_factory)


def _add_restore_routes(router: APIRouter, ctx_factory: ContextFactory) -> None:
    @router.get("/environments/{env:path}/backups/{snapshot_id}/restore-into",
                include_in_schema=False)
    @guarded
    def restore_into(request: Request, env: str, snapshot_id: str) -> Response:
        """Pick the environment to restore another environment's snapshot into."""
        console, environment, snap = _snapshot_page(
            signed_in(request, ctx_factory), env, snapshot_id,
            Action.SNAPSHOT_RESTORE_ELSEWHERE)
        targets = restore_targets(console.ctx, environment.name)
        if not targets:
            raise PermissionDenied(f"you are not an Admin of any environment other than "
                                   f"{environment.name}: there is nowhere to restore into")
        return render(request, "restore_into.html", env=environment, snap=snap,
                      targets=targets)

    @router.get("/environments/{env:path}/backups/{snapshot_id}/restore",
                include_in_schema=False)
    @guarded
    def restore_confirmation(request: Request, env: str, snapshot_id: str,
                             target: str | None = None) -> Response:
        """The confirmation as a page of its own (what the dialog shows, without JS); with
        ``target``, for restoring into that environment, naming both."""
        console = signed_in(request, ctx_factory)
        environment = console.ctx.config.environment(env)
        into = console.ctx.config.environment(target) if target else environment
        snap = snapshots.get_snapshot(console.ctx, environment, snapshot_id)
        # The page is a control: shown only to whom the policy lets restore (the POST is
        # refused by the service regardless).
        require_role(console.actor, into.name, Action.SNAPSHOT_RESTORE)
        if into.name != environment.name:
            require_role(console.actor, environment.name, Action.SNAPSHOT_RESTORE_ELSEWHERE)
        mounts = list(snapshots.load_manifest(console.ctx, snap.id).mounts)
        return render(request, "confirm.html", action="restore", title="Restore from backup",
                      crumb="Restore", env=environment, snap=snap, target=into,
                      mounts=mounts, pitr=environments.info(console.ctx, environment,
                                                            window=True))

    @router.post("/environments/{env:path}/backups/{snapshot_id}/restore",
                 include_in_schema=False)
    @guarded
    def restore(request: Request, env: str, snapshot_id: str,
                csrf_token: str | None = Form(None), target: str | None = Form(None),
                part: str = Form("everything"), tables: str = Form(""),
                at: str = Form("")) -> Response:
        console = signed_in(request, ctx_factory)
        auth.check_csrf(console.csrf, csrf_token)
        environment = console.ctx.config.environment(env)
        into = console.ctx.config.environment(target) if target else None
        point = _at(at)
        if point and part == "everything":  # the form's default: a point in time is the
            part = "database"               # database's (mounts are not archived)
        activity = operations.start_restore(console.ctx, environment, snapshot_id, queue=True,
                                            target=into, scope=_scope(part, tables),
                                            at=point)
        return to_activity(activity.id)


def _add_export_and_delete_routes(router: APIRouter, ctx_factory: ContextFactory) -> None:
    @router.get("/environments/{env:path}/backups/{snapshot_id}/export/{part:path}",
                include_in_schema=False)
    @guarded
    def export_download(request: Request, env: str, snapshot_id: str, part: str) -> Response:
        """Download one part of a snapshot's export (Admin): its database as SQL for the
        stock client, or one mount as a tar; recorded as an export activity."""
        console = signed_in(request, ctx_factory)
        environment = console.ctx.config.environment(env)
        return download(*transfer.stream_export(console.ctx, environment, snapshot_id, part))
    @router.get("/environments/{env:path}/backups/{snapshot_id}/delete",
                include_in_schema=False)
    @guarded
    def delete_confirmation(request: Request, env: str, snapshot_id: str) -> Response:
        """The deletion's confirmation as a page (what the dialog shows, without JS)."""
        _, environment, snap = _snapshot_page(signed_in(request, ctx_factory), env,
                                              snapshot_id, Action.SNAPSHOT_DELETE)
        return render(request, "confirm.html", action="delete", title="Delete backup",
                      crumb="Delete", env=environment, snap=snap)

    @router.post("/environments/{env:path}/backups/{snapshot_id}/delete",
                 include_in_schema=False)
    @guarded
    def delete(request: Request, env: str, snapshot_id: str,
               csrf_token: str | None = Form(None)) -> Response:
        console = signed_in(request, ctx_factory)
        auth.check_csrf(console.csrf, csrf_token)
        environment = console.ctx.config.environment(env)
        activity = operations.delete_snapshot(console.ctx, environment, snapshot_id,
                                              queue=True)
        return to_activity(activity.id)


def _add_environment_routes(router: APIRouter, ctx_factory: ContextFactory) -> None:
    @router.get("/", include_in_schema=False)
    @guarded
    def environments_page(request: Request) -> Response:
        console = signed_in(request, ctx_factory)
        return render(request, "environments.html", rows=environment_rows(console.ctx),
                      project=console.ctx.config)

    @router.post("/environments/{env:path}/backups", include_in_schema=False)
    @guarded
    def backup(request: Request, env: str, csrf_token: str | None = Form(None),
               mode: str = Form("consistent")) -> Response:
        console = signed_in(request, ctx_factory)
        auth.check_csrf(console.csrf, csrf_token)
        if mode not in MODES:
            raise UsageError(f"unknown backup mode {mode!r}; choose consistent or live")
        environment = console.ctx.config.environment(env)
        activity = operations.start_backup(console.ctx, environment, live=MODES[mode],
                                           queue=True)
        return to_activity(activity.id)

    @router.get("/environments/{env:path}", include_in_schema=False)
    @guarded
    def backups_page(request: Request, env: str,
                     page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> Response:
        console = signed_in(request, ctx_factory)
        view = backups_view(console.ctx, console.ctx.config.environment(env), page)
        return render(request, "backups.html", view=view)
