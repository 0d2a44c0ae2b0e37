"""Schedules of automatic backups: add, list, delete, and the Pro plan's defaults.

Adding and deleting a schedule needs Admin on its environment; listing needs Viewer.
A schedule's times are UTC. Schedules with origin ``plan`` come from the project's plan
(hourly backups of Pro staging and production) and are kept in line with snapkeep.toml
by ``ensure_plan_schedules``; they cannot be deleted, only added to.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from snapkeep.catalog import Schedule
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import NotFoundError, PolicyError, UsageError
from snapkeep.ids import new_id
from snapkeep.policy.schedules import (
    next_run,
    next_runs,
    plan_schedule,
    require_schedule_role,
    validate_cron,
)
from snapkeep.services.context import Context

log = logging.getLogger("snapkeep.schedules")

PLAN_CREATOR = "the pro plan"
VERIFY = "verify"  # origin of a schedule of restore drills (an environment's `verify` key)
VERIFY_CREATOR = "snapkeep.toml"


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    environment: str
    cron: str
    live: bool
    origin: str  # user | plan
    created_at: datetime
    created_by: str | None
    last_run_at: datetime | None
    next_run_at: datetime | None

    @property
    def mode(self) -> str:
        if self.origin == VERIFY:
            return "restore drill"
        return "live" if self.live else "consistent"

    def to_json(self) -> dict:
        def ts(t: datetime | None) -> str | None:
            return t.isoformat(timespec="seconds") if t else None

        return {"id": self.id, "environment": self.environment, "cron": self.cron,
                "live": self.live, "origin": self.origin, "created_at": ts(self.created_at),
                "created_by": self.created_by, "last_run_at": ts(self.last_run_at),
                "next_run_at": ts(self.next_run_at)}


def _info(s: Schedule) -> ScheduleInfo:
    return ScheduleInfo(id=s.id, environment=s.environment, cron=s.cron, live=s.live,
                        origin=s.origin, created_at=s.created_at, created_by=s.created_by,
                        last_run_at=s.last_run_at, next_run_at=s.next_run_at)


def plan_schedule_id(environment: str) -> str:
    """The plan schedule's id is derived from its environment: two servers materialising
    it at once insert the same row, and the second insert is refused, not duplicated."""
    return "plan-" + hashlib.sha256(environment.encode()).hexdigest()[:16]


def ensure_plan_schedules(ctx: Context, at: datetime | None = None) -> list[ScheduleInfo]:
    """Make the plan's schedules match snapkeep.toml; return those created now.

    Idempotent: each environment the plan covers has exactly one plan schedule; plan
    schedules of environments it no longer covers (plan or type changed, environment
    removed) are deleted. Safe to call from several schedulers at once.
    """
    at = at or ctx.clock()
    have = {s.environment: s for s in ctx.catalog.list_schedules(origin="plan")}
    created: list[ScheduleInfo] = []
    for env in ctx.config.environments.values():
        wanted = plan_schedule(ctx.config.plan, env.type)
        current = have.pop(env.name, None)
        if wanted is None:
            if current is not None:
                ctx.catalog.delete_schedule(current.id)
            continue
        if current is not None and (current.cron, current.live) == (wanted.cron, wanted.live):
            continue
        if current is not None:  # the plan's default changed: replace it
            ctx.catalog.delete_schedule(current.id)
        row = Schedule(id=plan_schedule_id(env.name), environment=env.name, cron=wanted.cron,
                       live=wanted.live, origin="plan", created_at=at, created_by=PLAN_CREATOR,
                       last_run_at=None, next_run_at=next_run(wanted.cron, at))
        if ctx.catalog.add_schedule(row):
            created.append(_info(row))
    for stale in have.values():
        ctx.catalog.delete_schedule(stale.id)
    return created


def verify_schedule_id(environment: str) -> str:
    return "verify-" + hashlib.sha256(environment.encode()).hexdigest()[:16]


def ensure_verify_schedules(ctx: Context, at: datetime | None = None) -> list[ScheduleInfo]:
    """Make the schedules of restore drills match the environments' ``verify`` keys (cron,
    UTC): one per environment that has one, none for the others. Idempotent, like
    ``ensure_plan_schedules``; the scheduler starts a drill of the environment's newest
    snapshot when one is due (``scheduler.tick``)."""
    at = at or ctx.clock()
    have = {s.environment: s for s in ctx.catalog.list_schedules(origin=VERIFY)}
    created: list[ScheduleInfo] = []
    for env in ctx.config.environments.values():
        current = have.pop(env.name, None)
        if env.verify is None:
            if current is not None:
                ctx.catalog.delete_schedule(current.id)
            continue
        try:
            cron = validate_cron(env.verify)
        except UsageError as e:  # a bad key must not stop the other schedules
            log.warning("environment %s: `verify = %r` in snapkeep.toml is not a valid cron "
                        "expression (%s); no restore drills are scheduled", env.name,
                        env.verify, e)
            if current is not None:
                ctx.catalog.delete_schedule(current.id)
            continue
        if current is not None and current.cron == cron:
            continue
        if current is not None:
            ctx.catalog.delete_schedule(current.id)
        row = Schedule(id=verify_schedule_id(env.name), environment=env.name, cron=cron,
                       live=False, origin=VERIFY, created_at=at, created_by=VERIFY_CREATOR,
                       last_run_at=None, next_run_at=next_run(cron, at))
        if ctx.catalog.add_schedule(row):
            created.append(_info(row))
    for stale in have.values():
        ctx.catalog.delete_schedule(stale.id)
    return created


def add_schedule(ctx: Context, env: EnvironmentConfig, cron: str, *, live: bool = False,
                 at: datetime | None = None) -> ScheduleInfo:
    """A new user schedule of automated backups of ``env`` (cron in UTC)."""
    require_schedule_role(ctx.actor, env.name, manage=True)
    expr = validate_cron(cron)
    at = at or ctx.clock()
    row = Schedule(id=new_id(), environment=env.name, cron=expr, live=live, origin="user",
                   created_at=at, created_by=ctx.actor.name, last_run_at=None,
                   next_run_at=next_run(expr, at))
    ctx.catalog.add_schedule(row)
    return _info(row)


def upcoming(ctx: Context, schedule: ScheduleInfo, count: int = 3) -> list[datetime]:
    """The schedule's next ``count`` runs, from its next one on (UTC)."""
    if schedule.next_run_at is None:
        return next_runs(schedule.cron, ctx.clock(), count)
    return [schedule.next_run_at, *next_runs(schedule.cron, schedule.next_run_at, count - 1)]


def list_schedules(ctx: Context, environment: EnvironmentConfig | None = None
                   ) -> list[ScheduleInfo]:
    """The schedules of ``environment``, or of every environment the actor may see.

    The plan's schedules are materialised first, so they show before a scheduler ran.
    """
    if environment is not None:
        require_schedule_role(ctx.actor, environment.name, manage=False)
    ensure_plan_schedules(ctx)
    ensure_verify_schedules(ctx)
    rows = ctx.catalog.list_schedules(environment.name if environment else None)
    return [_info(s) for s in rows if ctx.actor.role_on(s.environment) is not None]


def delete_schedule(ctx: Context, schedule_id: str) -> ScheduleInfo:
    row = ctx.catalog.get_schedule(schedule_id)
    if row is None or ctx.actor.role_on(row.environment) is None:
        raise NotFoundError(f"schedule {schedule_id} does not exist; "
                            "see `snapkeep schedule:list` for the schedules' IDs")
    require_schedule_role(ctx.actor, row.environment, manage=True)
    if row.origin == "plan":
        raise PolicyError(
            f"schedule {schedule_id} is the hourly automatic backup of {row.environment}; it "
            f"comes from the project's Pro plan (staging and production environments are "
            f"backed up automatically) and cannot be deleted. You can add schedules with "
            f"`snapkeep schedule:add {row.environment} CRON`.")
    if row.origin == VERIFY:
        raise PolicyError(
            f"schedule {schedule_id} runs the restore drills of {row.environment} set by "
            f"`verify = \"{row.cron}\"` in its [environments.{row.environment}] table of "
            f"snapkeep.toml; remove or change that key instead")
    ctx.catalog.delete_schedule(schedule_id)
    return _info(row)
