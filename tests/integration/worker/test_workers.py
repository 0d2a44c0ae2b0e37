"""``snapkeep worker`` processes sharing one PostgreSQL catalog: each queued activity runs
once, one per environment at a time; a killed worker's activity is failed after its lease
and its environment resumed; cancel, shutdown and ``--no-wait`` behave.

The environments pause with a ``pause_command`` that holds until the test creates a
RELEASE file: that is how a test catches a worker mid-activity without timing. The
command also takes a directory as a marker (``mkdir inflight``), so two activities paused
on one environment at once would leave an OVERLAP file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.catalog import Activity
from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.activities.listing import cancel_activity
from snapkeep.services.context import Context
from tests.helpers.server import wait_for
from tests.helpers.shop import Cli, cli_env

ENVS = ["e0", "e1", "e2", "e3"]


class Project:
    """A project of small environments (a few files in ``data/``, e3 also a database)
    whose consistent backups hold in their pause until ``release()``."""

    def __init__(self, base: Path, catalog: str, database: str | None = None) -> None:
        self.base = base
        self.release_file = base / "RELEASE"
        text = [f'[project]\nid = "team"\nplan = "starter"\ncatalog = "{catalog}"\n',
                '[repository]\nkey_file = ".snapkeep/repository.key"\n']
        for i, env in enumerate(ENVS):
            data = base / env / "data"
            data.mkdir(parents=True)
            for n in range(5):
                (data / f"f{n}.txt").write_text(f"{env} file {n}\n" * (n + 1))
            (base / env / "var").mkdir()
            pause = ("touch var/.maintenance.flag; "
                     f"mkdir inflight 2>/dev/null || touch ../OVERLAP-{env}; "
                     f"while [ ! -e {self.release_file} ]; do sleep 0.02; done")
            text.append(f'[environments.{env}]\nroot = "{env}"\nmounts = ["data"]\n'
                        f"pause_command = '{pause}'\n"
                        "resume_command = 'rm -f var/.maintenance.flag; rmdir inflight'\n")
            if database and i == 3:
                text.append(f'database = "{database}"\n')
        self.config = base / "snapkeep.toml"
        self.config.write_text("\n".join(text))
        self.ctx = Context(load_config(str(self.config)))
        self.ctx.init_repository()
        self.procs: list[subprocess.Popen] = []

    def env(self, name: str):
        return self.ctx.config.environment(name)

    def inflight(self) -> list[str]:
        return [e for e in ENVS if (self.base / e / "inflight").is_dir()]

    def paused(self, env: str) -> bool:
        return (self.base / env / "var" / ".maintenance.flag").exists()

    def release(self) -> None:
        self.release_file.touch()

    def worker(self, *args: str) -> subprocess.Popen:
        n = len(self.procs)
        with open(self.base / f"worker{n}.out", "w") as out, \
                open(self.base / f"worker{n}.err", "w") as err:
            p = subprocess.Popen(
                [sys.executable, "-m", "snapkeep", "worker", "--config", str(self.config),
                 "--poll-interval", "0.05", *args], env=cli_env(), stdout=out, stderr=err)
        self.procs.append(p)
        return p

    def stderr(self, p: subprocess.Popen) -> str:
        return (self.base / f"worker{self.procs.index(p)}.err").read_text()

    def activity(self, activity_id: str) -> Activity:
        return self.ctx.catalog.get_activity(activity_id)

    def log(self, activity_id: str) -> list[str]:
        return [line.message for line in self.ctx.catalog.log_lines(activity_id)]

    def stop(self) -> None:
        self.release()  # pause commands still waiting (a killed worker's) end too
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        self.ctx.catalog.engine.dispose()


@pytest.fixture
def project(tmp_path: Path, postgres_url: str) -> Iterator[Project]:  # noqa: F811
    p = Project(tmp_path, postgres_url)
    yield p
    p.stop()


def backup(project: Project, env: str, **kw) -> Activity:
    return operations.start_backup(project.ctx, project.env(env), live=False, queue=True,
                                   queue_behind=True, **kw)


def finished(project: Project, ids: list[str]) -> bool:
    return all(project.activity(i).state in ("complete", "cancelled") for i in ids)


def worker_pid(a: Activity) -> int:
    return int(a.worker.split(":")[-2])


def terminate(p: subprocess.Popen) -> int:
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout=60)


def test_two_workers_run_each_activity_once_and_one_per_environment_at_a_time(
        tmp_path, postgres_url, mariadb, fresh_db):  # noqa: F811
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"v{i}") for i in range(200)])
    conn.commit()
    conn.close()
    project = Project(tmp_path, postgres_url, database=mariadb.url(fresh_db))
    try:
        ids = [backup(project, env).id for _ in range(3) for env in ENVS]
        a, b = project.worker(), project.worker()
        # Each worker runs one activity at a time: two paused at once means both work.
        wait_for(lambda: len(project.inflight()) == 2, "both workers to be mid-activity")
        running = project.ctx.catalog.list_activities(states=("in_progress",))
        assert {worker_pid(x) for x in running} == {a.pid, b.pid}
        project.release()
        wait_for(lambda: finished(project, ids), "every activity to finish", timeout=240)
        assert terminate(a) == 0 and terminate(b) == 0

        done = [project.activity(i) for i in ids]
        assert [(x.state, x.result, x.error) for x in done] == \
            [("complete", "success", None)] * len(ids)
        assert {worker_pid(x) for x in done} == {a.pid, b.pid}
        for x in done:  # each ran exactly once
            assert sum(m.startswith("Created backup") for m in project.log(x.id)) == 1
        snaps = {s.id for s in project.ctx.catalog.list_snapshots()}
        assert snaps == {x.snapshot_id for x in done} and len(snaps) == len(ids)
        assert set(project.ctx.repository.snapshot_ids()) == snaps
        assert not list(tmp_path.glob("OVERLAP-*"))
        for env in ENVS:  # one at a time, oldest first, by the catalog's own times
            mine = sorted((x for x in done if x.environment == env), key=lambda x: x.started_at)
            assert [x.id for x in mine] == [i for i in ids if project.activity(i).environment
                                            == env]
            for before, after in zip(mine, mine[1:], strict=False):
                assert before.completed_at <= after.started_at
            assert project.ctx.catalog.running_activity(env) is None
    finally:
        project.stop()


def _guards_of(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"snapkeep.worker.guard" in args and str(pid).encode() in args:
            out.append(int(p.name))
    return out


def test_a_killed_worker_is_failed_after_its_lease_and_its_environment_resumed(project):
    """The worker and its pause guard die by SIGKILL mid-pause, as a vanished host would:
    only the lease tells the other worker, which settles the environment and goes on."""
    stuck = backup(project, "e0")
    after = operations.start_backup(project.ctx, project.env("e0"), live=True, queue=True,
                                    queue_behind=True)
    first = project.worker("--lease", "2")
    wait_for(lambda: project.inflight() == ["e0"], "the first worker to pause e0")
    assert project.paused("e0")
    guards = _guards_of(first.pid)
    assert guards, "the pause guard of the first worker"
    for g in guards:
        os.kill(g, signal.SIGKILL)
    first.kill()
    first.wait(timeout=30)
    assert project.activity(stuck.id).state == "in_progress"  # nobody noticed yet

    second = project.worker("--lease", "2")
    wait_for(lambda: finished(project, [stuck.id, after.id]), "the second worker to go on")
    failed = project.activity(stuck.id)
    assert (failed.state, failed.result) == ("complete", "failure")
    assert failed.error.startswith(f"worker {failed.worker.rsplit(':', 1)[0]} stopped "
                                   "renewing its lease at ")
    assert failed.error.endswith("; the activity was interrupted")
    assert worker_pid(failed) == first.pid
    assert "Lifted the pause the interrupted activity left on e0." in project.log(stuck.id)
    assert not project.paused("e0") and project.inflight() == []
    ran = project.activity(after.id)
    assert ran.result == "success" and worker_pid(ran) == second.pid
    assert ran.started_at >= failed.completed_at
    assert terminate(second) == 0


def test_cancelling_a_pending_and_a_running_activity(project):
    running = backup(project, "e1")
    pending = backup(project, "e1")
    worker = project.worker()
    wait_for(lambda: project.inflight() == ["e1"], "the worker to pause e1")
    assert project.activity(running.id).state == "in_progress"

    got = cancel_activity(project.ctx, pending.id)
    assert (got.state, got.result) == ("cancelled", "failure")
    got = cancel_activity(project.ctx, running.id)
    assert got.state == "in_progress" and got.cancel_requested
    project.release()  # the pause ends; its first log line notices the cancel
    wait_for(lambda: finished(project, [running.id]), "the running activity to stop")

    stopped = project.activity(running.id)
    assert (stopped.state, stopped.result, stopped.error) == \
        ("cancelled", "failure", "cancelled by local operator")
    log = project.log(running.id)
    assert "local operator asked to cancel the activity; it stops at its next safe point." \
        in log
    assert "Cancelled by local operator." in log
    assert any(m.startswith("Resumed e1") for m in log)
    assert not project.paused("e1") and project.inflight() == []
    assert project.log(pending.id) == ["Cancelled by local operator before it started."]
    assert project.activity(pending.id).started_at is None  # never ran
    assert project.ctx.catalog.list_snapshots("e1") == []
    assert terminate(worker) == 0


def test_a_restore_cancelled_during_its_cut_over_runs_to_its_end(project):
    env = project.env("e2")
    snap = operations.start_backup(project.ctx, env, live=True).snapshot_id
    data = project.base / "e2" / "data" / "f0.txt"
    before = data.read_text()
    data.write_text("changed after the snapshot\n")
    restore = operations.start_restore(project.ctx, env, snap, queue=True)
    worker = project.worker()
    wait_for(lambda: project.inflight() == ["e2"], "the restore's cut-over pause")
    cancel_activity(project.ctx, restore.id)
    project.release()
    wait_for(lambda: finished(project, [restore.id]), "the restore to end")

    done = project.activity(restore.id)
    assert (done.state, done.result) == ("complete", "success")
    assert data.read_text() == before
    assert ("local operator asked to cancel, too late: the cut-over has begun, so the "
            "activity runs to its end.") in project.log(restore.id)
    assert terminate(worker) == 0


def test_sigterm_ends_the_running_activity_cleanly_and_stops_the_worker(project):
    a = backup(project, "e3")
    worker = project.worker()
    wait_for(lambda: project.inflight() == ["e3"], "the worker to pause e3")
    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: stopping" in project.stderr(worker), "the worker to hear it")
    project.release()
    assert worker.wait(timeout=60) == 0

    stopped = project.activity(a.id)
    assert (stopped.state, stopped.result) == ("complete", "failure")
    assert "the worker running it was stopped" in stopped.error
    assert not project.paused("e3") and project.inflight() == []
    assert project.ctx.catalog.list_snapshots("e3") == []
    assert project.ctx.catalog.running_activity("e3") is None


def test_no_wait_queues_the_activity_and_a_one_shot_worker_runs_it(project):
    cli = Cli(project.base, cli_env())
    res = cli.run("snapshot:create", "--live", "-W", "-e", "e0", "--config",
                  str(project.config))
    activity_id = res.stdout.strip().splitlines()[-1]
    log = cli.run("activity:log", activity_id, "--config", str(project.config)).stdout
    assert "Created backup" in log
    a = project.activity(activity_id)
    assert a.result == "success" and a.worker and a.lease_expires_at is not None
    assert project.ctx.catalog.running_activity("e0") is None


def test_worker_once_runs_one_queued_activity_and_then_finds_none(project):
    queued = operations.start_backup(project.ctx, project.env("e1"), live=True, queue=True)
    cli = Cli(project.base, cli_env())
    first = cli.run("worker", "--once", "--config", str(project.config))
    assert f"running activity {queued.id}" in first.stderr
    assert project.activity(queued.id).result == "success"
    again = cli.run("worker", "--once", "--config", str(project.config))
    assert "No queued activity to run." in again.stderr
