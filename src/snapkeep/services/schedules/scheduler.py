"""The scheduler `snapkeep serve` runs: due schedules start automated backups, and
retention (the environment's keep rules and the restore window) is applied.

One ``tick(now)``:

1. materialises the plan's schedules (``ensure_plan_schedules``);
2. claims every due schedule (``next_run_at <= now``) with a conditional UPDATE that
   moves it to its next run after ``now`` — so a schedule that missed several periods
   runs once, and of several schedulers sharing a PostgreSQL catalog only one fires it;
3. starts one automated backup per environment with claimed schedules (consistent
   unless all of them are live). An environment that is inactive, busy, or gone from
   snapkeep.toml is skipped with a warning: that period is not retried;
   A due restore-drill schedule (an environment's ``verify`` key, materialised by
   ``ensure_verify_schedules``) starts a drill of the environment's newest snapshot
   instead, skipped the same way (and when there is no snapshot yet);
4. applies retention to each environment at most once an hour (first on the process's
   first tick). A busy environment is retried on the next tick instead;
5. looks at the binlog archive's lag of each point-in-time environment and raises (or
   clears) its warning (``notify/binlog_lag.py``).

Nothing a tick meets stops the loop: failures are logged and the next tick comes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from snapkeep.catalog import Schedule
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import BusyError, SnapkeepError
from snapkeep.policy import Actor
from snapkeep.policy.schedules import next_run
from snapkeep.services.activities import operations
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.context import Context
from snapkeep.services.schedules.manage import (
    VERIFY,
    ensure_plan_schedules,
    ensure_verify_schedules,
)

log = logging.getLogger("snapkeep.scheduler")

RETENTION_EVERY = timedelta(hours=1)


def scheduler_actor() -> Actor:
    """Who the scheduler acts as (named in activity descriptions): a project admin."""
    return Actor(name="the scheduler", project_role="admin")


class StartBackup(Protocol):
    """``operations.start_backup``'s shape: start a backup, return its activity.
    Raises BusyError when the environment runs another activity, SnapkeepError when a
    rule or a source refuses."""

    def __call__(self, ctx: Context, env: EnvironmentConfig, *, live: bool, automated: bool,
                 detach: bool) -> ActivityInfo: ...


class StartDrill(Protocol):
    """``operations.start_drill``'s shape: a restore drill of ``env``'s newest snapshot
    (``snapshot_id`` None). Raises BusyError, NotFoundError (no snapshot), SnapkeepError."""

    def __call__(self, ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, *,
                 detach: bool) -> ActivityInfo: ...


# Deletes the snapshots the environment's retention no longer keeps (its result unused).
Expire = Callable[[Context, EnvironmentConfig], object]


def _expire(ctx: Context, env: EnvironmentConfig) -> object:
    return operations.expire_snapshots(ctx, env)


def tick(ctx: Context, now: datetime, start_backup: StartBackup | None = None,
         expire: Expire | None = None, *, detach: bool = True,
         retained_at: dict[str, datetime] | None = None,
         start_drill: StartDrill | None = None,
         pulled_at: dict[str, datetime] | None = None) -> list[str]:
    """One round of the scheduler at ``now``; the ids of the activities it started.

    ``retained_at`` maps environment → when retention was last applied to it, carried
    from tick to tick by the caller (``Scheduler`` does); without it, retention is
    applied to every environment now.
    """
    started: list[str] = []
    if ctx.config.replicas:
        started += _pull(ctx, now, detach, {} if pulled_at is None else pulled_at)
        _retain_replicas(ctx, now, expire or _expire,
                         {} if retained_at is None else retained_at)
    if ctx.config.read_only:  # the off-site server: it pulls (and expires), nothing else
        return started
    start = start_backup or operations.start_backup
    ensure_plan_schedules(ctx, now)
    ensure_verify_schedules(ctx, now)
    for env_name, claimed in _claim_due(ctx, now).items():
        backups = [s for s in claimed if s.origin != VERIFY]
        drills = [s for s in claimed if s.origin == VERIFY]
        activity_id = _start(ctx, env_name, backups, start, detach) if backups else None
        if activity_id is not None:
            started.append(activity_id)
        elif drills:  # one activity per environment: a backup due at once goes first
            activity_id = _start(ctx, env_name, drills, _newest(start_drill), detach,
                                 what="restore drill")
            if activity_id is not None:
                started.append(activity_id)
    _retain(ctx, now, expire or _expire, {} if retained_at is None else retained_at)
    if any(e.point_in_time for e in ctx.config.environments.values()):
        from snapkeep.services.notify import binlog_lag  # only point-in-time projects pay

        binlog_lag.check_all(ctx)
    return started


def _pull(ctx: Context, now: datetime, detach: bool,
          pulled_at: dict[str, datetime]) -> list[str]:
    """Copies of what each pulling replica lacks (``pull = "new"``: every tick; a cron
    expression: when due after its last pull), one activity per environment."""
    started = []
    for r in ctx.config.replicas.values():
        if r.pull is None:
            continue
        last = pulled_at.setdefault(r.name, now)
        if r.pull != "new" and next_run(r.pull, last) > now:
            continue
        pulled_at[r.name] = now
        for env in ctx.config.environments.values():
            try:
                a = operations.start_copy(ctx, env, r.name, None, queue=detach,
                                          binlogs_alone=r.pull != "new")
            except BusyError:
                continue  # running something (perhaps the last pull): the next tick pulls
            except SnapkeepError as e:
                log.warning("pulling %s's new snapshots into replica %s failed: %s",
                            env.name, r.name, e)
                continue
            except Exception:
                log.exception("pulling %s's new snapshots into replica %s failed",
                              env.name, r.name)
                continue
            if a is not None:
                started.append(a.id)
    return started


def _newest(start_drill: StartDrill | None) -> StartBackup:
    """A drill of the newest snapshot, started the way ``_start`` starts a backup."""
    start = start_drill or operations.start_drill

    def go(ctx: Context, env: EnvironmentConfig, *, live: bool, automated: bool,
           detach: bool) -> ActivityInfo:
        return start(ctx, env, None, detach=detach)

    return go


def _claim_due(ctx: Context, now: datetime) -> dict[str, list[Schedule]]:
    claimed: dict[str, list[Schedule]] = {}
    for s in ctx.catalog.due_schedules(now):
        try:
            following = next_run(s.cron, now)
        except SnapkeepError as e:  # written to the catalog by hand, not by schedule:add
            log.warning("schedule %s of %s has an invalid cron expression and is skipped: %s",
                        s.id, s.environment, e)
            continue
        if ctx.catalog.claim_schedule(s.id, s.next_run_at, following, now):
            claimed.setdefault(s.environment, []).append(s)
    return claimed


def _start(ctx: Context, env_name: str, claimed: list[Schedule], start: StartBackup,
           detach: bool, what: str = "automatic backup") -> str | None:
    ids = ", ".join(s.id for s in claimed)
    env = ctx.config.environments.get(env_name)
    if env is None:
        log.warning("schedule %s: environment %s is not in %s; skipped", ids, env_name,
                    ctx.config.path)
        return None
    status = ctx.catalog.environment_status(env_name)
    if status != "active":
        log.warning("schedule %s: environment %s is %s; the %s is skipped",
                    ids, env_name, status, what)
        return None
    live = all(s.live for s in claimed)
    try:
        activity = start(ctx, env, live=live, automated=True, detach=detach)
    except BusyError as e:
        log.warning("schedule %s: environment %s is busy; this %s is skipped (%s)", ids,
                    env_name, what, e)
        return None
    except SnapkeepError as e:
        log.warning("schedule %s: the %s of %s failed: %s", ids, what, env_name, e)
        return None
    except Exception:  # a bug must not stop the other environments' backups
        log.exception("schedule %s: the %s of %s failed", ids, what, env_name)
        return None
    log.info("schedule %s: started %s (%s) of %s (activity %s)", ids, what,
             "live" if live else "consistent", env_name, activity.id)
    return activity.id


def _retain(ctx: Context, now: datetime, expire: Expire,
            retained_at: dict[str, datetime]) -> None:
    for env in ctx.config.environments.values():
        last = retained_at.get(env.name)
        if last is not None and now - last < RETENTION_EVERY:
            continue
        try:
            expire(ctx, env)
        except BusyError:
            continue  # running a backup or restore: try again next tick
        except SnapkeepError as e:
            log.warning("retention of %s failed: %s", env.name, e)
        except Exception:
            log.exception("retention of %s failed", env.name)
        retained_at[env.name] = now


def _retain_replicas(ctx: Context, now: datetime, expire: Expire,
                     retained_at: dict[str, datetime]) -> None:
    """Each replica's own retention, applied by the host that owns it (the one whose
    scheduler pulls into it), at most once an hour per environment (keys REPLICA/ENV)."""
    for r in ctx.config.replicas.values():
        if r.pull is None or not r.retention:
            continue
        rctx = ctx.in_replica(r.name)
        for env in ctx.config.environments.values():
            key = f"{r.name}/{env.name}"
            last = retained_at.get(key)
            if last is not None and now - last < RETENTION_EVERY:
                continue
            try:
                expire(rctx, env)
            except BusyError:
                continue  # copying: next tick
            except SnapkeepError as e:
                log.warning("retention of %s in replica %s failed: %s", env.name, r.name, e)
            except Exception:
                log.exception("retention of %s in replica %s failed", env.name, r.name)
            retained_at[key] = now


class Scheduler:
    """The loop ``snapkeep serve`` runs in a thread: a tick every ``interval`` seconds.

    ``ctx`` should act as ``scheduler_actor()``; with ``detach=True`` backups are handed
    to workers and the tick returns at once.
    """

    def __init__(self, ctx: Context, *, start_backup: StartBackup | None = None,
                 expire: Expire | None = None, detach: bool = True,
                 start_drill: StartDrill | None = None) -> None:
        self.ctx = ctx
        self.start_backup = start_backup
        self.start_drill = start_drill
        self.expire = expire
        self.detach = detach
        self.retained_at: dict[str, datetime] = {}
        self.pulled_at: dict[str, datetime] = {}

    def tick(self, now: datetime) -> list[str]:
        return tick(self.ctx, now, self.start_backup, self.expire, detach=self.detach,
                    retained_at=self.retained_at, start_drill=self.start_drill,
                    pulled_at=self.pulled_at)

    def run(self, stop: threading.Event, interval: float = 30.0) -> None:
        """Tick at ``ctx.clock``'s time until ``stop`` is set; returns within ``interval``
        seconds of it."""
        log.info("scheduler started (a tick every %s s)", interval)
        while not stop.is_set():
            try:
                self.tick(self.ctx.clock())
            except Exception:  # the catalog unreachable for a moment, or a bug: keep going
                log.exception("scheduler tick failed; trying again in %s s", interval)
            stop.wait(interval)
        log.info("scheduler stopped")
