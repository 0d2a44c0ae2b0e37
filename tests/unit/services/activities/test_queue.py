"""The activity services on the queue (SQLite catalog, this process): the busy guard,
queued runs, cancelling, reaping expired leases, recovering dead local runners."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.errors import BusyError, Cancelled, PermissionDenied, PolicyError
from snapkeep.policy import Actor
from snapkeep.services.activities import operations
from snapkeep.services.activities.lease import machine_id, worker_id
from snapkeep.services.activities.listing import cancel_activity
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.activities.recovery import recover_interrupted
from snapkeep.services.activities.workers import Worker, reap_expired
from snapkeep.services.context import Context
from snapkeep.services.schedules.scheduler import scheduler_actor

TOML = """
[project]
id = "shop"
plan = "starter"

[repository]
key_file = ".snapkeep/repository.key"

[environments.dev]
root = "dev"
mounts = ["data"]

[environments.prod]
type = "production"
root = "prod"
mounts = ["data"]
"""


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    for env in ("dev", "prod"):
        (tmp_path / env / "data").mkdir(parents=True)
        (tmp_path / env / "data" / "file.txt").write_text(f"{env} data\n")
    (tmp_path / "snapkeep.toml").write_text(TOML)
    c = Context(load_config(str(tmp_path / "snapkeep.toml")))
    c.init_repository()
    return c


def messages(ctx: Context, activity_id: str) -> list[str]:
    return [line.message for line in ctx.catalog.log_lines(activity_id)]


def test_a_user_cannot_start_while_one_is_queued_but_a_schedule_queues_behind_it(ctx):
    dev = ctx.config.environment("dev")
    first = operations.start_backup(ctx, dev, live=True, queue=True)
    assert first.state == "pending" and ctx.catalog.get_activity(first.id).actor == \
        "local operator"
    with pytest.raises(BusyError, match=f"activity {first.id} .* is waiting to run on "
                                        "environment dev; only one activity runs per "
                                        "environment at a time"):
        operations.start_backup(ctx, dev, live=True)
    with pytest.raises(BusyError):
        operations.start_backup(ctx, dev, live=True, queue=True)
    sched = ctx.for_actor(scheduler_actor())
    second = operations.start_backup(sched, dev, live=True, automated=True, queue=True,
                                     queue_behind=True, once=True)
    # a schedule firing again while its backup still waits adds no second one
    with pytest.raises(BusyError, match=f"activity {second.id} .* is waiting to run"):
        operations.start_backup(sched, dev, live=True, automated=True, queue=True,
                                queue_behind=True, once=True)

    worker = Worker(ctx)
    assert worker.run_once().id == first.id
    assert worker.run_once().id == second.id
    assert worker.run_once() is None
    done = [ctx.catalog.get_activity(a.id) for a in (first, second)]
    assert [(a.state, a.result) for a in done] == [("complete", "success")] * 2
    assert done[0].worker == worker.id and done[0].snapshot_id != done[1].snapshot_id
    assert len(ctx.catalog.list_snapshots("dev")) == 2


class Enqueuer:
    """An observer that, once the in-process activity runs, queues another behind it and
    records whether a worker could claim it meanwhile."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queued = None
        self.held_by = None
        self.claimed_meanwhile = "not tried"

    def on_start(self, activity) -> None:
        env = self.ctx.config.environment("dev")
        self.held_by = self.ctx.catalog.running_activity("dev")
        self.queued = operations.start_backup(self.ctx, env, live=True, queue=True,
                                              queue_behind=True)
        self.claimed_meanwhile = self.ctx.catalog.claim_next("elsewhere:1:0", 30)

    def on_log(self, message: str) -> None:
        pass

    def on_progress(self, percent: float) -> None:
        pass


def test_an_activity_run_in_process_holds_its_environment_against_workers_everywhere(ctx):
    observer = Enqueuer(ctx)
    a = operations.start_backup(ctx, ctx.config.environment("dev"), live=True,
                                observer=observer)
    assert a.result == "success" and a.worker == worker_id(ctx, 0)
    assert observer.held_by == a.id
    assert observer.claimed_meanwhile is None
    assert ctx.catalog.running_activity("dev") is None
    assert ctx.catalog.claim_next("elsewhere:1:0", 30).id == observer.queued.id


def test_cancelling_a_pending_activity_needs_admin_and_ends_it_at_once(ctx):
    dev = ctx.config.environment("dev")
    a = operations.start_backup(ctx, dev, live=True, queue=True)
    viewer = Context(ctx.config, actor=Actor("vic", environment_roles={"dev": "viewer"}))
    with pytest.raises(PermissionDenied, match="Admin role to cancel an activity"):
        cancel_activity(viewer, a.id)
    assert ctx.catalog.get_activity(a.id).state == "pending"

    got = cancel_activity(ctx, a.id)
    assert (got.state, got.result, got.error) == ("cancelled", "failure",
                                                  "cancelled by local operator")
    assert messages(ctx, a.id) == ["Cancelled by local operator before it started."]
    assert Worker(ctx).run_once() is None
    assert cancel_activity(ctx, a.id).state == "cancelled"  # again: nothing changes
    done = operations.start_backup(ctx, dev, live=True)
    with pytest.raises(PolicyError, match="already completed"):
        cancel_activity(ctx, done.id)


class CancelOnFirstLine:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.activity = None
        self.asked = False

    def on_start(self, activity) -> None:
        self.activity = activity

    def on_log(self, message: str) -> None:
        if self.activity is not None and not self.asked:
            cancel_activity(self.ctx, self.activity.id)
            self.asked = True

    def on_progress(self, percent: float) -> None:
        pass


def test_a_running_activity_cancelled_stops_at_its_next_check_and_ends_cancelled(ctx):
    observer = CancelOnFirstLine(ctx)
    with pytest.raises(Cancelled, match="cancelled by local operator"):
        operations.start_backup(ctx, ctx.config.environment("dev"), live=True,
                                observer=observer)
    a = ctx.catalog.get_activity(observer.activity.id)
    assert (a.state, a.result, a.error) == ("cancelled", "failure", "cancelled by local operator")
    log = messages(ctx, a.id)
    assert "local operator asked to cancel the activity; it stops at its next safe point." \
        in log
    assert log[-1] == "Cancelled by local operator."
    assert ctx.catalog.list_snapshots("dev") == []
    assert ctx.catalog.running_activity("dev") is None


def test_past_its_point_of_no_return_a_cancel_request_is_only_noted(ctx):
    dev = ctx.config.environment("dev")
    a = operations.start_backup(ctx, dev, live=True, queue=True)
    a = ctx.catalog.claim_specific(a.id, "h:1:0", 30)
    rec = ActivityRecorder(ctx, a, cancel_interval=0)
    rec.point_of_no_return("the cut-over")
    cancel_activity(ctx, a.id)
    rec.log("swapping")
    rec.advance(1)
    rec.log("swapped")
    assert messages(ctx, a.id)[-3:] == [
        "swapping",
        "local operator asked to cancel, too late: the cut-over has begun, so the activity "
        "runs to its end.",
        "swapped"]

    fresh = ActivityRecorder(ctx, a, cancel_interval=0)  # before the point: it stops
    with pytest.raises(Cancelled):
        fresh.advance(1)
    fresh.advance(1)  # once only: cleanup code that logs is not cut short again


def test_an_expired_lease_fails_its_activity_with_the_reason_and_frees_the_environment(ctx):
    dev = ctx.config.environment("dev")
    a = operations.start_backup(ctx, dev, live=True, queue=True)
    claimed = ctx.catalog.claim_next("elsewhere/ab12:4242:0", 5)
    assert claimed.id == a.id
    assert reap_expired(ctx) == []  # the lease still runs
    later = ctx.clock() + timedelta(seconds=60)
    assert reap_expired(ctx, at=later) == [a.id]
    got = ctx.catalog.get_activity(a.id)
    expiry = claimed.lease_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (got.state, got.result) == ("complete", "failure")
    assert got.error == (f"worker elsewhere/ab12:4242 stopped renewing its lease at {expiry}; the "
                         "activity was interrupted")
    assert messages(ctx, a.id)[-1] == f"Failed: {got.error}."
    assert ctx.catalog.running_activity("dev") is None
    # It is free for the next activity at once.
    assert operations.start_backup(ctx, dev, live=True).result == "success"


def lock_object(ctx: Context, host: str, pid: int) -> str:
    """A shared repository lock as a worker on ``host`` writes it (locks.py's format),
    freshly refreshed: only the catalog can tell that its holder is gone."""
    lid = f"{host}-{pid}".encode().hex()
    now = time.time()
    ctx.repository.backend.put(f"locks/{lid}", json.dumps(
        {"version": 1, "id": lid, "host": host, "pid": pid, "user": "shop",
         "exclusive": False, "created": now, "time": now}).encode())
    return lid


def test_reaping_a_worker_releases_its_repository_locks_unless_it_runs_on(ctx):
    dev, prod = ctx.config.environment("dev"), ctx.config.environment("prod")
    dead = lock_object(ctx, "elsewhere", 4242)   # its activity is reaped
    busy = lock_object(ctx, "elsewhere", 5151)   # it still runs an activity
    for env, worker in ((dev, "elsewhere/ab12:4242:0"), (prod, "elsewhere/ab12:5151:0")):
        operations.start_backup(ctx, env, live=True, queue=True)
        assert ctx.catalog.claim_next(worker, 5, environments=[env.name]) is not None
    with pytest.raises(BusyError, match="shared lock held by pid 4242 on elsewhere"), \
            ctx.repository.lock(exclusive=True):
        pass
    later = ctx.clock() + timedelta(seconds=60)
    running = ctx.catalog.list_activities("prod", states=("in_progress",))[0]
    ctx.catalog.renew_lease(running.id, "elsewhere/ab12:5151:0", 3600)  # prod's worker lives
    reaped = reap_expired(ctx, at=later)
    assert len(reaped) == 1
    held = set(ctx.repository.backend.list("locks/"))
    assert f"locks/{dead}" not in held and f"locks/{busy}" in held
    ctx.repository.backend.delete(f"locks/{busy}")
    with ctx.repository.lock(exclusive=True):  # prune could run now
        pass


def test_recovery_fails_dead_local_runners_only(ctx):
    """A runner of this worker ID whose process is gone is failed at once; another
    one's — even on a host (a container) of the same name, where the pid means nothing —
    is left to its lease; a queued activity stays queued."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = socket.gethostname()
    for env, worker in (("dev", f"{machine_id(ctx)}:{dead.pid}:0"),
                        ("prod", f"{here}/container2:{dead.pid}:0")):
        operations.start_backup(ctx, ctx.config.environment(env), live=True, queue=True)
        assert ctx.catalog.claim_next(worker, 30, environments=[env]) is not None
    queued = operations.start_backup(ctx, ctx.config.environment("dev"), live=True, queue=True,
                                     queue_behind=True)
    for env in ("dev", "prod"):
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        try:
            recover_interrupted(ctx, env)
        finally:
            lock.release()
    by_env = {a.environment: a for a in ctx.catalog.list_activities(states=("in_progress",))}
    assert list(by_env) == ["prod"]
    failed = [a for a in ctx.catalog.list_activities("dev") if a.result == "failure"]
    assert [a.error for a in failed] == ["interrupted: the process running it ended"]
    assert ctx.catalog.get_activity(queued.id).state == "pending"
    assert ctx.catalog.running_activity("dev") is None


def test_what_cannot_be_settled_keeps_the_environment_held_and_says_why(ctx):
    """A dead worker's pause whose resume command fails: its activity stays running and
    holds dev, saying why (its error, its log, environment:info), until a later attempt
    settles it; only then is dev freed."""
    from snapkeep.services import environments

    dev = ctx.config.environment("dev")
    a = operations.start_backup(ctx, dev, live=True, queue=True)
    assert ctx.catalog.claim_next("elsewhere/ab12:4242:0", 5) is not None
    marker = dev.root / ".snapkeep-state" / "paused.json"
    marker.parent.mkdir()
    marker.write_text(json.dumps({"resume_command": "echo cannot >&2; exit 3",
                                  "worker": "elsewhere/ab12:4242:0"}))
    later = ctx.clock() + timedelta(seconds=60)
    assert reap_expired(ctx, at=later) == []
    held = ctx.catalog.get_activity(a.id)
    assert held.state == "in_progress" and ctx.catalog.running_activity("dev") == a.id
    assert "a pause on dev is not settled yet" in held.error, held.error
    assert "exit code 3" in held.error and "stays paused and held" in held.error
    assert messages(ctx, a.id)[-1] == f"Blocked: {held.error}."
    assert held.error in environments.info(ctx, dev).blocked
    with pytest.raises(BusyError):
        operations.start_backup(ctx, dev, live=True)
    assert reap_expired(ctx, at=later) == []  # the settler's own lease still runs
    assert messages(ctx, a.id).count(f"Blocked: {held.error}.") == 1  # said once

    marker.write_text(json.dumps({"resume_command": "true"}))  # the command fixed
    assert reap_expired(ctx, at=later + timedelta(seconds=120)) == [a.id]
    assert not marker.exists() and ctx.catalog.running_activity("dev") is None
    assert environments.info(ctx, dev).blocked is None
    done = ctx.catalog.get_activity(a.id)
    assert done.result == "failure" and "after an earlier attempt failed" in done.error
    assert "Lifted the pause the interrupted activity left on dev." in messages(ctx, a.id)
