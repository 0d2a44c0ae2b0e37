"""The scheduler's tick, with recording start and expire functions (no engines)."""

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.catalog import Activity, Schedule
from snapkeep.errors import BusyError, PolicyError
from snapkeep.ids import new_id
from snapkeep.services.schedules import manage as schedules
from snapkeep.services.schedules import scheduler
from tests.helpers.clock import ManualClock
from tests.helpers.project_files import context, write_project

T0 = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)


class Recorder:
    """Stands in for operations.start_backup / expire_snapshots and remembers the calls."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.starts: list[tuple[str, dict]] = []
        self.expires: list[str] = []
        self.fail = fail or {}

    def start(self, ctx, env, **kw) -> Activity:
        if env.name in self.fail:
            raise self.fail[env.name]
        self.starts.append((env.name, kw))
        return Activity(id=new_id(), environment=env.name)

    def expire(self, ctx, env) -> None:
        self.expires.append(env.name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, "starter", {"dev": "development", "qa": "development"})


def add(ctx, env: str, cron: str, live: bool = False, at: datetime = T0):
    return schedules.add_schedule(ctx, ctx.config.environment(env), cron, live=live, at=at)


def test_a_due_schedule_starts_one_automated_backup_and_moves_to_its_next_run(project):
    ctx, rec = context(project), Recorder()
    s = add(ctx, "dev", "*/10 * * * *", live=True)
    assert scheduler.tick(ctx, T0 + timedelta(minutes=1), rec.start, rec.expire) == []
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    ids = scheduler.tick(ctx, at, rec.start, rec.expire, detach=False)
    assert len(ids) == 1
    assert rec.starts == [("dev", {"live": True, "automated": True, "detach": False})]
    row = ctx.catalog.get_schedule(s.id)
    assert (row.last_run_at, row.next_run_at) == (at, at + timedelta(minutes=10))


def test_a_schedule_that_missed_many_periods_runs_once(project):
    ctx, rec = context(project), Recorder()
    s = add(ctx, "dev", "*/10 * * * *")
    late = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)  # 19 periods missed
    assert len(scheduler.tick(ctx, late, rec.start, rec.expire)) == 1
    assert len(scheduler.tick(ctx, late + timedelta(minutes=1), rec.start, rec.expire)) == 0
    assert ctx.catalog.get_schedule(s.id).next_run_at == datetime(2026, 11, 26, 13, 10,
                                                                  tzinfo=UTC)
    assert len(rec.starts) == 1


def test_schedules_of_one_environment_due_together_start_one_backup(project):
    ctx, rec = context(project), Recorder()
    add(ctx, "dev", "0 * * * *", live=True)
    add(ctx, "dev", "*/30 * * * *", live=False)
    add(ctx, "qa", "0 * * * *", live=True)
    scheduler.tick(ctx, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), rec.start, rec.expire)
    # consistent when any of them asks for it; live only when all of them are live
    assert sorted((env, kw["live"]) for env, kw in rec.starts) == [("dev", False), ("qa", True)]


def test_the_pro_plan_schedule_fires_hourly_and_live_without_anyone_adding_it(tmp_path):
    ctx, rec = context(write_project(tmp_path, "pro", {"production": "production"})), Recorder()
    for minutes in range(0, 181, 15):
        scheduler.tick(ctx, T0 + timedelta(minutes=minutes), rec.start, rec.expire)
    # live: no maintenance pause of production every hour
    assert rec.starts == [("production", {"live": True, "automated": True, "detach": True})] * 3


def test_a_plan_schedule_stored_as_consistent_becomes_live(tmp_path):
    ctx = context(write_project(tmp_path, "pro", {"production": "production"}))
    schedules.ensure_plan_schedules(ctx, T0)
    [plan] = ctx.catalog.list_schedules(origin="plan")
    ctx.catalog.delete_schedule(plan.id)  # as an older snapkeep stored it: consistent
    ctx.catalog.add_schedule(Schedule(
        id=plan.id, environment=plan.environment, cron=plan.cron, live=False, origin="plan",
        created_at=plan.created_at, created_by=plan.created_by, last_run_at=None,
        next_run_at=plan.next_run_at))
    schedules.ensure_plan_schedules(ctx, T0)
    assert [s.live for s in ctx.catalog.list_schedules(origin="plan")] == [True]


@pytest.mark.parametrize("error", [BusyError("activity x is running on environment dev"),
                                   PolicyError("some rule says no")])
def test_a_refused_backup_is_skipped_with_a_warning_and_others_still_run(project, caplog, error):
    ctx, rec = context(project), Recorder(fail={"dev": error})
    dev = add(ctx, "dev", "0 * * * *")
    add(ctx, "qa", "0 * * * *")
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="snapkeep.scheduler"):
        ids = scheduler.tick(ctx, at, rec.start, rec.expire)
    assert len(ids) == 1 and rec.starts[0][0] == "qa"
    assert any("dev" in r.getMessage() and str(error) in r.getMessage() for r in caplog.records)
    # that period is skipped, not retried every tick
    assert ctx.catalog.get_schedule(dev.id).next_run_at == at + timedelta(hours=1)


def test_an_unexpected_failure_of_one_backup_does_not_stop_the_others(project, caplog):
    ctx, rec = context(project), Recorder(fail={"dev": RuntimeError("a bug")})
    add(ctx, "dev", "0 * * * *")
    add(ctx, "qa", "0 * * * *")
    ids = scheduler.tick(ctx, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), rec.start, rec.expire)
    assert len(ids) == 1
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


def test_an_inactive_environment_is_skipped_with_a_warning(project, caplog):
    ctx, rec = context(project), Recorder()
    add(ctx, "dev", "0 * * * *")
    ctx.catalog.set_environment_status("dev", "inactive")
    with caplog.at_level(logging.WARNING, logger="snapkeep.scheduler"):
        assert scheduler.tick(ctx, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), rec.start,
                              rec.expire) == []
    assert rec.starts == []
    assert "environment dev is inactive" in caplog.text


def test_a_schedule_of_an_environment_gone_from_the_config_is_skipped(project, tmp_path, caplog):
    ctx = context(project)
    add(ctx, "qa", "0 * * * *")
    write_project(tmp_path, "starter", {"dev": "development"})
    ctx, rec = context(project), Recorder()
    scheduler.tick(ctx, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), rec.start, rec.expire)
    assert rec.starts == []
    assert "environment qa is not in" in caplog.text


def test_retention_runs_for_each_environment_at_most_once_an_hour(project):
    ctx, rec = context(project), Recorder()
    s = scheduler.Scheduler(ctx, start_backup=rec.start, expire=rec.expire)
    for minutes in range(0, 121, 10):
        s.tick(T0 + timedelta(minutes=minutes))
    # at 09:58 (the first tick), 10:58 and 11:58
    assert sorted(rec.expires) == ["dev"] * 3 + ["qa"] * 3


def test_retention_of_a_busy_environment_is_retried_on_the_next_tick(project):
    ctx, rec = context(project), Recorder()
    busy = {"dev"}

    def expire(ctx, env):
        if env.name in busy:
            raise BusyError("a backup is running")
        rec.expire(ctx, env)

    s = scheduler.Scheduler(ctx, start_backup=rec.start, expire=expire)
    s.tick(T0)
    busy.clear()
    s.tick(T0 + timedelta(minutes=1))
    s.tick(T0 + timedelta(minutes=2))
    assert rec.expires == ["qa", "dev"]


class BrokenOnce(ManualClock):
    """A clock whose next reading fails while ``broken`` is set (once)."""

    broken = False

    def __call__(self) -> datetime:
        if self.broken:
            self.broken = False
            raise OSError("the clock is broken this once")
        return super().__call__()


def test_the_loop_survives_a_failing_tick_and_stops_when_asked(project, caplog):
    clock = BrokenOnce(T0)
    ctx, rec = context(project, clock=clock), Recorder()
    add(ctx, "dev", "* * * * *")
    stop = threading.Event()

    def start(ctx, env, **kw) -> Activity:
        # each backup moves the clock a minute on; the third stops the loop
        activity = rec.start(ctx, env, **kw)
        clock.advance(timedelta(minutes=1))
        if len(rec.starts) == 3:
            stop.set()
        return activity

    clock.t, clock.broken = T0 + timedelta(minutes=1), True
    loop = threading.Thread(target=scheduler.Scheduler(ctx, start_backup=start,
                                                       expire=rec.expire).run,
                            args=(stop,), kwargs={"interval": 0.01})
    loop.start()
    loop.join(timeout=30)
    assert not loop.is_alive()
    assert len(rec.starts) == 3
    assert "scheduler tick failed" in caplog.text
