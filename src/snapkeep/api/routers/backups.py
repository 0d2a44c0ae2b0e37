"""``…/environments/{env}/backups``: list, take, read, restore and delete snapshots.

Taking, restoring and deleting queue an activity (run by the server's workers) and
answer ``202 Accepted`` with it; follow it at its ``links.log``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from snapkeep.api.deps import ProjectContext, environment
from snapkeep.api.schemas import (
    ActivityOut,
    BackupRequest,
    ErrorOut,
    RestoreRequest,
    SnapshotDetailOut,
    SnapshotOut,
    VerifyRequest,
)
from snapkeep.services.activities import operations
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots import restore
from snapkeep.services.snapshots.restore_scope import RestoreScope

router = APIRouter(prefix="/api/projects/{project}/environments/{env}/backups",
                   tags=["backups"],
                   responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                              404: {"model": ErrorOut}})

MAX_PAGE = 500

_QUEUED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "the environment is inactive, busy, or the rule "
          "forbids it (Pro staging/production, expired snapshot)"},
    422: {"model": ErrorOut}}


def _accepted(response: Response, activity: ActivityOut) -> ActivityOut:
    response.headers["Location"] = activity.links["self"]
    return activity


@router.get("", response_model=list[SnapshotOut])
def list_backups(env: str, ctx: ProjectContext,
                 limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
                 offset: Annotated[int, Query(ge=0)] = 0) -> list[SnapshotOut]:
    """The environment's snapshots, newest first (needs Viewer): all of them, or a page
    of ``limit`` after the first ``offset``."""
    items = snapshots.list_snapshots(ctx, environment(ctx, env), limit=limit, offset=offset)
    return [SnapshotOut.of(s, ctx.config.id) for s in items]


@router.post("", response_model=ActivityOut, status_code=status.HTTP_202_ACCEPTED,
             responses=_QUEUED)
def create_backup(env: str, ctx: ProjectContext, response: Response,
                  body: BackupRequest | None = Body(None)) -> ActivityOut:  # noqa: B008
    """Queue a backup (needs Admin on the environment); answers the pending activity."""
    req = body or BackupRequest()
    a = operations.start_backup(ctx, environment(ctx, env), live=not req.safe,
                                threads=req.threads, queue=True)
    return _accepted(response, ActivityOut.of(a, ctx.config.id))


@router.post("/pull/{replica}", response_model=ActivityOut | None,
             status_code=status.HTTP_202_ACCEPTED, responses=_QUEUED)
def pull_backups(env: str, replica: str, ctx: ProjectContext,
                 response: Response) -> ActivityOut | None:
    """Queue a copy of every snapshot of the environment that replica ``replica`` (one of
    this server's ``[replicas.NAME]``) does not hold yet (needs Admin): how the shop's host
    tells an off-site server, after a snapshot, to pull it (docs/offsite.md). Answers the
    pending activity, or 200 with ``null`` when the replica holds them all."""
    a = operations.start_copy(ctx, environment(ctx, env), replica, None, queue=True)
    if a is None:
        response.status_code = status.HTTP_200_OK
        return None
    return _accepted(response, ActivityOut.of(a, ctx.config.id))


@router.get("/{backup_id}", response_model=SnapshotDetailOut)
def get_backup(env: str, backup_id: str, ctx: ProjectContext) -> SnapshotDetailOut:
    """One snapshot, with what a restore of it would replace (needs Viewer)."""
    e = environment(ctx, env)
    snap = snapshots.get_snapshot(ctx, e, backup_id)
    manifest = snapshots.load_manifest(ctx, snap.id)
    return SnapshotDetailOut(**SnapshotOut.of(snap, ctx.config.id).model_dump(),
                             mounts=list(manifest.mounts),
                             database="database" in manifest.services,
                             code_note=restore.code_note(e, manifest))


@router.post("/{backup_id}/restore", response_model=ActivityOut,
             status_code=status.HTTP_202_ACCEPTED, responses=_QUEUED)
def restore_backup(env: str, backup_id: str, ctx: ProjectContext, response: Response,
                   body: RestoreRequest | None = Body(None)) -> ActivityOut:  # noqa: B008
    """Queue a restore of the snapshot (needs Admin on the environment restored into:
    ``target``, default this one); answers the pending activity. ``only``, ``mounts`` and
    ``tables`` restore part of it. ``at`` (a time or a GTID): the database as of that point,
    this backup as the base (``auto``: the latest one before it); refused outside the
    recoverable window."""
    req = body or RestoreRequest()
    scope = RestoreScope.parse(req.only, req.mounts or (), req.tables or ())
    base = None if req.at is not None and backup_id == "auto" else backup_id
    a = operations.start_restore(ctx, environment(ctx, env), base, threads=req.threads,
                                 queue=True, scope=scope, at=req.at,
                                 target=environment(ctx, req.target) if req.target else None)
    return _accepted(response, ActivityOut.of(a, ctx.config.id))


@router.post("/{backup_id}/verify", response_model=ActivityOut,
             status_code=status.HTTP_202_ACCEPTED, responses=_QUEUED)
def verify_backup(env: str, backup_id: str, ctx: ProjectContext, response: Response,
                  body: VerifyRequest | None = Body(None)) -> ActivityOut:  # noqa: B008
    """Queue a restore drill of the snapshot (needs Admin): restored into a scratch
    database and directory, compared with its digests, removed; the outcome becomes the
    snapshot's ``verified_ok``/``verified_at``. The live data is never touched."""
    req = body or VerifyRequest()
    a = operations.start_drill(ctx, environment(ctx, env), backup_id, threads=req.threads,
                               queue=True)
    return _accepted(response, ActivityOut.of(a, ctx.config.id))


@router.delete("/{backup_id}", response_model=ActivityOut,
               status_code=status.HTTP_202_ACCEPTED, responses=_QUEUED)
def delete_backup(env: str, backup_id: str, ctx: ProjectContext,
                  response: Response) -> ActivityOut:
    """Queue the deletion of the snapshot (needs Admin); answers the pending activity.
    Its space is reclaimed by ``snapkeep repository:prune``."""
    a = operations.delete_snapshot(ctx, environment(ctx, env), backup_id, queue=True)
    return _accepted(response, ActivityOut.of(a, ctx.config.id))
