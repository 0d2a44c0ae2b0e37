"""``GET /api/projects/{project}/environments[/{env}]``: name, type, status, last backup."""

from __future__ import annotations

from fastapi import APIRouter

from snapkeep.api.deps import ProjectContext, environment
from snapkeep.api.schemas import (
    EnvironmentOut,
    ErrorOut,
    RecoverableWindowOut,
    SnapshotOut,
    project_path,
)
from snapkeep.config import EnvironmentConfig
from snapkeep.policy import Action, may
from snapkeep.services import environments
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing as snapshots

router = APIRouter(prefix="/api/projects/{project}/environments", tags=["environments"],
                   responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})


def _out(ctx: Context, env: EnvironmentConfig) -> EnvironmentOut:
    listed = snapshots.list_snapshots(ctx, env)  # checks the Viewer role first
    info = environments.info(ctx, env, window=True)
    base = f"{project_path(ctx.config.id)}/environments/{env.name}"
    return EnvironmentOut(
        name=info.name, type=info.type, status=info.status, mounts=list(info.mounts),
        running_activity=environments.running_activity(ctx, env),
        point_in_time=info.point_in_time, blocked=info.blocked,
        recoverable=RecoverableWindowOut.model_validate(info.window) if info.window else None,
        last_backup=SnapshotOut.of(listed[0], ctx.config.id) if listed else None,
        links={"self": base, "backups": f"{base}/backups",
               "activities": f"{project_path(ctx.config.id)}/activities?environment="
                             f"{env.name}"})


def _may_read(ctx: Context, env: EnvironmentConfig) -> bool:
    return may(ctx.actor, env.name, Action.SNAPSHOT_READ)


@router.get("", response_model=list[EnvironmentOut])
def list_environments(ctx: ProjectContext) -> list[EnvironmentOut]:
    """The environments the token's user may see (a Viewer role or more), by name."""
    return [_out(ctx, env) for env in sorted(ctx.config.environments.values(),
                                             key=lambda e: e.name) if _may_read(ctx, env)]


@router.get("/{env}", response_model=EnvironmentOut, responses={403: {"model": ErrorOut}})
def get_environment(env: str, ctx: ProjectContext) -> EnvironmentOut:
    """One environment (needs a Viewer role on it)."""
    return _out(ctx, environment(ctx, env))
