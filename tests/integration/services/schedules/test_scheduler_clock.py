"""The scheduler with a fast clock: real projects, real backups run in-process, real
retention. Simulated hours pass in seconds.

The clock is the one thing faked: the project's Context (and so its catalog) reads the
test's ``ManualClock``, so snapshots are stamped, and retention and the restore window
judge, at the simulated time the scheduler ticks at.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapkeep.cli.main import cli
from snapkeep.config import load_config
from snapkeep.errors import PolicyError
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.schedules import manage as schedules
from snapkeep.services.schedules import scheduler
from snapkeep.services.snapshots import listing as snapshots
from tests.helpers.clock import ManualClock
from tests.helpers.shop import fill

T0 = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def make_project(base: Path, plan: str, envs: dict[str, dict[str, str]],
                 clock: ManualClock) -> Context:
    """A project whose environments (name → extra toml keys) have two small mounts."""
    text = [f'[project]\nid = "sched"\nplan = "{plan}"\n\n[repository]\n'
            'key_file = ".snapkeep/repository.key"\n']
    for name, extra in envs.items():
        root = base / name
        for d, content in (("pub/media", b"\x89PNG" * 500), ("app/etc", b"<?php return [];")):
            (root / d).mkdir(parents=True)
            (root / d / "file").write_bytes(content)
        keys = {"type": "development", "root": str(root), **extra}
        text.append(f"[environments.{name}]\n" + "".join(f'{k} = "{v}"\n'
                                                         for k, v in keys.items())
                    + 'mounts = ["pub/media", "app/etc"]\n')
    path = base / "snapkeep.toml"
    path.write_text("\n".join(text))
    ctx = Context(load_config(str(path)), clock=clock)
    ctx.init_repository()
    return ctx


class Backups:
    """The real ``operations.start_backup``, in-process, remembering when each ran."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.ran: list[tuple[datetime, str, dict]] = []

    def __call__(self, ctx, env, **kw):
        activity = operations.start_backup(ctx, env, **kw)
        self.ran.append((self.clock.t, activity.snapshot_id, kw))
        return activity


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 26, hour, minute, tzinfo=UTC)


def test_a_ten_minute_schedule_backs_up_on_time_and_retention_keeps_the_right_ones(
        tmp_path, clock):
    ctx = make_project(tmp_path, "starter", {"shop": {}}, clock)
    text = ctx.config.path.read_text() + "\n[environments.shop.retention]\n" \
        "keep_last = 2\nkeep_hourly = 3\n"
    ctx.config.path.write_text(text)
    ctx = Context(load_config(str(ctx.config.path)), clock=clock)
    env = ctx.config.environment("shop")
    schedules.add_schedule(ctx, env, "*/10 * * * *", at=T0)
    backups = Backups(clock)
    sched = scheduler.Scheduler(ctx, start_backup=backups, detach=False)

    # A tick every 4 simulated minutes, 10:00 to 13:00: the schedule is due on each
    # 10-minute mark, so it fires on the first tick at or after it.
    while clock.t < at(13, 0):
        clock.t = min(clock.t + timedelta(minutes=4), at(13, 0)) if clock.t > T0 else at(10, 0)
        ids = sched.tick(clock.t)
        for activity_id in ids:
            a = ctx.catalog.get_activity(activity_id)
            assert (a.state, a.result) == ("complete", "success")
            snap = ctx.catalog.get_snapshot(a.snapshot_id)
            assert snap.created_at == clock.t and snap.automated and not snap.live
            assert snap.expires_at is None  # kept by retention, not the restore window

    expected = [at(h, m) for h in (10, 11, 12) for m in (0, 12, 20, 32, 40, 52)] + [at(13, 0)]
    assert [t for t, _sid, _kw in backups.ran] == expected
    assert all(kw == {"live": False, "automated": True, "detach": False}
               for _t, _sid, kw in backups.ran)

    # Retention ran at 10:00, 11:00, 12:00 and 13:00. At 13:00 keep-last 2 keeps 13:00
    # and 12:52, keep-hourly 3 the newest of hours 13, 12 and 11 (11:52); the newest of
    # hour 10 (10:52) went then, every other one at the hourly run after it was taken.
    kept = {s.created_at: s for s in snapshots.list_snapshots(ctx, env)}
    assert sorted(kept) == [at(11, 52), at(12, 52), at(13, 0)]
    assert sorted(ctx.repository.snapshot_ids()) == sorted(s.id for s in kept.values())

    # snapshot:list shows them as automated
    res = CliRunner().invoke(cli, ["snapshot:list", "--config", str(ctx.config.path), "-e",
                                   "shop", "--format", "csv", "--columns",
                                   "created,id,automated"])
    assert res.exit_code == 0, res.output
    rows = [line.split(",") for line in res.stdout.strip().splitlines()[1:]]
    assert rows == [[t.isoformat(timespec="seconds"), kept[t].id, "true"]
                    for t in sorted(kept, reverse=True)]


def test_pro_production_gets_hourly_automated_backups_while_manual_ones_stay_refused(
        tmp_path, clock, mariadb, fresh_db):
    conn = mariadb.connect(fresh_db)
    fill(conn, products=50, orders=20)
    conn.close()
    ctx = make_project(tmp_path, "pro", {"production": {"type": "production",
                                                        "database": mariadb.url(fresh_db)}},
                       clock)
    env = ctx.config.environment("production")
    with pytest.raises(PolicyError, match="automatic backups"):
        operations.start_backup(ctx, env, live=False, detach=False)

    backups = Backups(clock)
    sched = scheduler.Scheduler(ctx, start_backup=backups, detach=False)
    for minutes in range(0, 125, 15):
        clock.t = T0 + timedelta(minutes=minutes)
        sched.tick(clock.t)
    assert [t for t, _sid, _kw in backups.ran] == [at(10, 13), at(11, 13)]
    listed = snapshots.list_snapshots(ctx, env)
    # live: the plan's hourly backups take no maintenance pause
    assert [(s.created_at, s.automated, s.live) for s in listed] == [
        (at(11, 13), True, True), (at(10, 13), True, True)]
    manifest = snapshots.load_manifest(ctx, listed[0].id)
    assert "database" in manifest.services


def test_the_scheduler_expires_manual_snapshots_after_the_restore_window(tmp_path, clock):
    ctx = make_project(tmp_path, "starter", {"dev": {}}, clock)
    env = ctx.config.environment("dev")
    manual = operations.start_backup(ctx, env, live=True, detach=False).snapshot_id
    sched = scheduler.Scheduler(ctx, detach=False)
    clock.t = T0 + timedelta(days=7) - timedelta(minutes=1)
    sched.tick(clock.t)
    assert [s.id for s in snapshots.list_snapshots(ctx, env)] == [manual]
    clock.t = T0 + timedelta(days=7)
    sched.tick(clock.t)  # an hour has not passed since retention last ran
    assert [s.id for s in snapshots.list_snapshots(ctx, env)] == [manual]
    clock.t = T0 + timedelta(days=7, minutes=59)
    sched.tick(clock.t)
    assert snapshots.list_snapshots(ctx, env) == []
    assert manual not in ctx.repository.snapshot_ids()


def test_a_busy_environment_makes_the_tick_skip_with_a_warning_not_fail(
        tmp_path, clock, caplog):
    # The manual backup's pause command waits for a gate file: the environment stays busy
    # until the test opens it (bounded: the command gives up after 30 s).
    wait = ("touch entered; i=0; while [ ! -e gate ] && [ $i -lt 600 ]; do sleep 0.05; "
            "i=$((i+1)); done")
    ctx = make_project(tmp_path, "starter", {"dev": {"pause_command": wait,
                                                     "resume_command": "true"}}, clock)
    env = ctx.config.environment("dev")
    s = schedules.add_schedule(ctx, env, "0 * * * *", live=True, at=T0)
    other = Context(load_config(str(ctx.config.path)), clock=clock)
    errors: list[BaseException] = []

    def manual() -> None:
        try:
            operations.start_backup(other, other.config.environment("dev"), live=False,
                                    detach=False)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    busy = threading.Thread(target=manual)
    busy.start()
    try:
        deadline = time.monotonic() + 30
        while not (env.root / "entered").exists():
            assert time.monotonic() < deadline, "the manual backup never paused"
            time.sleep(0.02)
        clock.t = at(10, 0)
        with caplog.at_level(logging.WARNING, logger="snapkeep.scheduler"):
            assert scheduler.tick(ctx, clock.t, detach=False) == []
        assert "environment dev is busy" in caplog.text
        row = ctx.catalog.get_schedule(s.id)
        assert (row.last_run_at, row.next_run_at) == (at(10, 0), at(11, 0))
    finally:
        (env.root / "gate").touch()
        busy.join(timeout=60)
    assert not busy.is_alive() and errors == []

    clock.t = at(11, 0)
    (started,) = scheduler.tick(ctx, clock.t, detach=False)
    assert ctx.catalog.get_activity(started).result == "success"
    assert sorted(s.automated for s in snapshots.list_snapshots(ctx, env)) == [False, True]
