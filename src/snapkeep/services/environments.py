"""Environments: which one a command means, what it is, whether it is active."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import ConfigError, SnapkeepError
from snapkeep.policy import Action, require_role
from snapkeep.services import gitinfo, pitr_window
from snapkeep.services.context import Context


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    type: str
    status: str
    root: str
    mounts: tuple[str, ...]
    database: str | None  # described without password
    commit_id: str | None
    point_in_time: bool = False
    # with window=True (environment:info, the API, the console): "recoverable from … to …
    # (lag N s)" or why not, and the window's fields (pitr_window.Window.to_json)
    recoverable: str | None = None
    window: dict | None = None
    # why the environment is held although its activity's runner is gone: what it left
    # (a cut-over, a pause) waits for a worker of this environment to settle it
    blocked: str | None = None


def resolve(ctx: Context, name: str | None, cwd: Path | None = None) -> EnvironmentConfig:
    """The environment a command acts on: ``-e NAME``, else the checked-out git branch."""
    if name:
        return ctx.config.environment(name)
    envs = ctx.config.environments
    if not envs:
        raise ConfigError(f"no environments are defined in {ctx.config.path}; add an "
                          "[environments.NAME] table (see `snapkeep init`)")
    branch = gitinfo.current_branch(cwd or Path.cwd())
    if branch and branch in envs:
        return envs[branch]
    if len(envs) == 1:
        return next(iter(envs.values()))
    known = ", ".join(sorted(envs))
    where = f"the checked-out git branch {branch!r} is not one of them" if branch else \
        "no git branch is checked out here"
    raise ConfigError(f"which environment? {where} (environments: {known}); pass -e NAME or "
                      "check out the environment's branch")


def info(ctx: Context, env: EnvironmentConfig, *, window: bool = False) -> EnvironmentInfo:
    """What ``env`` is; with ``window``, its recoverable window too (a point-in-time
    environment's archive is read and its server asked where its binlog ends)."""
    recoverable = data = None
    if window and env.point_in_time:
        require_role(ctx.actor, env.name, Action.SNAPSHOT_READ)
        try:
            w = pitr_window.window(ctx, env)
            recoverable, data = w.describe(), w.to_json()
        except SnapkeepError as e:  # the repository unreadable: say so, show the rest
            recoverable = f"recoverable window unknown: {e}"
    return EnvironmentInfo(
        name=env.name, type=env.type, status=ctx.catalog.environment_status(env.name),
        root=str(env.root), mounts=env.mounts,
        database=env.database.describe() if env.database else None,
        commit_id=gitinfo.head_commit(env.root), point_in_time=env.point_in_time,
        recoverable=recoverable, window=data, blocked=blocked(ctx, env))


def blocked(ctx: Context, env: EnvironmentConfig) -> str | None:
    """Why ``env`` is held by an activity whose runner is gone (None: it is not)."""
    from snapkeep.services.activities import recovery  # activities use this module

    held = ctx.catalog.running_activity(env.name)
    a = ctx.catalog.get_activity(held) if held else None
    if a is None or a.state != "in_progress":
        return None
    if a.error:
        return f"activity {a.id}: {a.error}"
    if a.lease_expires_at is None or a.lease_expires_at >= ctx.clock():
        return None
    left = recovery.leftovers(ctx, env.name)
    return (f"activity {a.id}: its worker {a.worker} stopped renewing its lease; held until "
            f"a worker of {env.name} settles " + (left or "what it left") + " and ends it")


def running_activity(ctx: Context, env: EnvironmentConfig) -> str | None:
    """The ID of the activity that holds ``env`` (on any host), if any."""
    return ctx.catalog.running_activity(env.name)


def list_environments(ctx: Context) -> list[EnvironmentInfo]:
    return [info(ctx, e) for e in ctx.config.environments.values()]


def set_active(ctx: Context, env: EnvironmentConfig, active: bool) -> EnvironmentInfo:
    require_role(ctx.actor, env.name, Action.ENVIRONMENT_MANAGE)
    ctx.catalog.set_environment_status(env.name, "active" if active else "inactive")
    return info(ctx, env)
