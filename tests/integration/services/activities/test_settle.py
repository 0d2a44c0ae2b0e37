"""Recovery state off the worker's disk (issue 19, item 2): a host that dies leaves its
pause marker and cut-over journal beside the environment's mounts, so a worker of another
host settles them — pause lifted, cut-over all old or all new — before the environment is
freed; the dead host, back, rolls nothing back; workers are told apart by a persistent
worker ID, not hostname + pid.

Two "hosts" share a PostgreSQL catalog, the repository and the environment's files; each
has its own snapkeep.toml and so its own `.snapkeep/` (locks, worker ID). A host's death
is ``SNAPKEEP_CRASH_HOST=1`` at a crash point: the worker and its pause guard die at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.processes import pid_alive
from snapkeep.services import environments
from snapkeep.services.activities import operations
from snapkeep.services.activities.lease import machine_id, parse_worker
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.activities.recovery import reap_expired, reconcile, recover_interrupted
from snapkeep.services.context import Context
from tests.helpers.server import wait_for
from tests.helpers.shop import cli_env

LEASE = 2  # seconds: short, so a dead host's activity expires quickly
MOUNTS = ("var", "media", "etc")
FLAG = "var/.maintenance.flag"


def host(base: Path, name: str, catalog: str, extra: str = "") -> Path:
    d = base / name
    d.mkdir()
    (d / "snapkeep.toml").write_text(
        f'[project]\nid = "shop"\nplan = "starter"\ncatalog = "{catalog}"\n'
        f'repository = "{base / "repository"}"\n\n'
        f'[repository]\nkey_file = "{base / "repository.key"}"\n\n'
        f'[environments.dev]\nroot = "{base / "dev"}"\nmounts = {list(MOUNTS)!r}\n'
        .replace("'", '"') + extra)
    return d / "snapkeep.toml"


def shop(base: Path) -> Path:
    root = base / "dev"
    for m in MOUNTS:
        (root / m).mkdir(parents=True)
        (root / m / "f.txt").write_text(f"{m} at the snapshot\n")
    return root


def tree(root: Path) -> dict[str, dict[str, str]]:
    return {m: {str(p.relative_to(root / m)): p.read_text() for p in sorted((root / m).rglob("*"))
                if p.is_file() and p.name != ".maintenance.flag"} for m in MOUNTS}


def worker(config: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snapkeep", "worker", "--config", str(config), "--once",
         "--lease", str(LEASE)], env={**cli_env(), **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def dies_at(config: Path, point: str) -> None:
    """Host a's worker runs the queued activity and the whole host dies at ``point``."""
    w = worker(config, SNAPKEEP_CRASH_AT=point, SNAPKEEP_CRASH_HOST="1")
    w.communicate(timeout=300)
    assert w.returncode == -signal.SIGKILL


def guards(config: Path) -> list[int]:
    """The pause guards of ``config``'s host that run."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and b"snapkeep.worker.guard" in _cmdline(p) and str(config).encode() in _cmdline(p)]


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_host_dead_while_paused_is_unpaused_by_another_host_before_dev_is_freed(
        tmp_path, postgres_url):
    root = shop(tmp_path)
    a_config, b_config = (host(tmp_path, n, postgres_url) for n in ("a", "b"))
    a = Context(load_config(str(a_config)))
    a.init_repository()
    queued = operations.start_backup(a, a.config.environment("dev"), live=False, queue=True)
    dies_at(a_config, "backup.paused")
    assert (root / FLAG).exists()  # paused, and nothing on host a is left to lift it
    assert guards(a_config) == []

    b = Context(load_config(str(b_config)))
    held = b.catalog.get_activity(queued.id)
    assert held.state == "in_progress" and b.catalog.running_activity("dev") == queued.id
    blocked = wait_for(lambda: environments.info(b, b.config.environment("dev")).blocked,
                       "dev to show why it is held")
    assert "stopped renewing its lease" in blocked and "a pause" in blocked, blocked

    assert wait_for(lambda: reap_expired(b), "host b to reap", interval=0.3) == [queued.id]
    assert not (root / FLAG).exists()  # lifted before the environment was freed
    assert not (root / ".snapkeep-state").exists()
    done = b.catalog.get_activity(queued.id)
    assert (done.state, done.result) == ("complete", "failure")
    log = [line.message for line in b.catalog.log_lines(queued.id)]
    assert any(m.startswith(f"Worker {machine_id(b)}:") and "a pause" in m for m in log), log
    assert any("Lifted the pause" in m for m in log), log
    assert b.catalog.running_activity("dev") is None
    assert environments.info(b, b.config.environment("dev")).blocked is None
    assert operations.start_backup(b, b.config.environment("dev"), live=False).result \
        == "success"


def test_a_host_whose_storage_is_unreachable_keeps_a_dead_hosts_environment_held(
        tmp_path, postgres_url):
    """A reaper that cannot reach the environment's files cannot know what is left
    there: the environment stays held, saying why, until one that can does."""
    root = shop(tmp_path)
    a_config = host(tmp_path, "a", postgres_url)
    elsewhere = host(tmp_path, "c", postgres_url).read_text().replace(
        f'root = "{root}"', f'root = "{tmp_path / "not-mounted-here"}"')
    (tmp_path / "c" / "snapkeep.toml").write_text(elsewhere)
    a = Context(load_config(str(a_config)))
    a.init_repository()
    queued = operations.start_backup(a, a.config.environment("dev"), live=False, queue=True)
    dies_at(a_config, "backup.paused")
    c = Context(load_config(str(tmp_path / "c" / "snapkeep.toml")))
    wait_for(lambda: c.catalog.expired_leases(), "the lease to expire", interval=0.3)
    assert reap_expired(c) == []
    held = c.catalog.get_activity(queued.id)
    assert held.state == "in_progress" and "settles what it left" in held.error
    assert c.catalog.running_activity("dev") == queued.id
    assert (root / FLAG).exists()
    b = Context(load_config(str(host(tmp_path, "b", postgres_url))))
    assert reap_expired(b) == [queued.id]
    assert not (root / FLAG).exists()


@pytest.mark.parametrize(("point", "new"), [("restore.after-swap-1", False),
                                            ("restore.after-swap-2", False),
                                            ("restore.committed", True)])
def test_a_host_dead_mid_cutover_is_settled_all_old_or_all_new_by_another(
        tmp_path, postgres_url, point, new):
    root = shop(tmp_path)
    a_config, b_config = (host(tmp_path, n, postgres_url) for n in ("a", "b"))
    a = Context(load_config(str(a_config)))
    a.init_repository()
    dev = a.config.environment("dev")
    snap = operations.start_backup(a, dev, live=True).snapshot_id
    at_snapshot = tree(root)
    for m in MOUNTS:
        (root / m / "f.txt").write_text(f"{m} changed later\n")
        (root / m / "added.txt").write_text("added later\n")
    old = tree(root)
    queued = operations.start_restore(a, dev, snap, queue=True)
    dies_at(a_config, point)
    assert (root / ".snapkeep-state" / "journal.json").exists()
    assert (root / ".snapkeep-state" / "paused.json").exists()

    b = Context(load_config(str(b_config)))
    assert b.catalog.running_activity("dev") == queued.id
    assert wait_for(lambda: reap_expired(b), "host b to settle", interval=0.3) == [queued.id]
    assert tree(root) == (at_snapshot if new else old)  # never a mix
    assert not (root / FLAG).exists()
    assert not (root / ".snapkeep-state").exists()
    assert not [p for p in root.rglob("*") if ".snapkeep-" in p.name]
    done = b.catalog.get_activity(queued.id)
    assert (done.state, done.result) == ("complete", "success" if new else "failure"), done
    log = "\n".join(line.message for line in b.catalog.log_lines(queued.id))
    assert f"Worker {machine_id(b)}:{os.getpid()}:settle settles a restore cut-over of " \
        f"snapshot {snap}" in log
    assert ("completed" if new else "rolled back") in log

    # Written after host b settled; host a, back, must not roll anything back.
    (root / "media" / "written-after.txt").write_text("keep me\n")
    settled = tree(root)
    back = worker(a_config)
    out, err = back.communicate(timeout=120)
    assert back.returncode == 0, err
    reconcile(Context(load_config(str(a_config))))
    after = operations.start_backup(Context(load_config(str(a_config))), dev, live=False)
    assert after.result == "success"
    assert tree(root) == settled


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) to give host a its own pid namespace")
def test_workers_sharing_a_hostname_do_not_judge_each_other_dead(tmp_path, postgres_url):
    """Host a's worker runs in a pid namespace of its own (a container with the same
    hostname): its pid means nothing to host b, which must leave its activity — and its
    pause — alone while its lease runs."""
    (tmp_path / "dev" / "data").mkdir(parents=True)
    wait = "echo pause >> ../events; while [ ! -e ../gate ]; do sleep 0.05; done"
    extra = f"pause_command = '{wait}'\nresume_command = 'echo resume >> ../events'\n"
    a_config, b_config = (host(tmp_path, n, postgres_url, extra) for n in ("a", "b"))
    for cfg in (a_config, b_config):
        cfg.write_text(cfg.read_text().replace(str(list(MOUNTS)).replace("'", '"'),
                                               '["data"]'))
    a = Context(load_config(str(a_config)))
    a.init_repository()
    queued = operations.start_backup(a, a.config.environment("dev"), live=False, queue=True)
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a pid namespace here: {probe.stderr.decode().strip()}")
    worker_cmd = " ".join([sys.executable, "-m", "snapkeep", "worker", "--config",
                           str(a_config), "--once", "--lease", "30"])
    container = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
         f"echo 3999990 > /proc/sys/kernel/ns_last_pid; {worker_cmd}"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    events = tmp_path / "events"
    try:
        wait_for(lambda: events.exists() and events.read_text().split() == ["pause"],
                 "host a's worker to pause dev")
        running = a.catalog.get_activity(queued.id)
        wid, pid = parse_worker(running.worker)
        assert wid.split("/")[0] == socket.gethostname()  # the same hostname …
        assert pid is not None and not pid_alive(pid)  # … and a pid that is not here

        b = Context(load_config(str(b_config)))
        assert machine_id(b) != wid
        lock = EnvironmentLock.try_acquire(lock_path(b, "dev"))
        assert lock is not None  # host b's own lock: nothing of b runs there
        try:
            assert recover_interrupted(b, "dev") == []
        finally:
            lock.release()
        assert reap_expired(b) == [] and reconcile(b) is None
        assert b.catalog.get_activity(queued.id).state == "in_progress"
        assert events.read_text().split() == ["pause"]  # not lifted under host a's feet
        (tmp_path / "gate").touch()
        _out, err = container.communicate(timeout=120)
        assert container.returncode == 0, err
    finally:
        os.killpg(container.pid, signal.SIGKILL) if container.poll() is None else None
    done = a.catalog.get_activity(queued.id)
    assert (done.state, done.result) == ("complete", "success"), done.error
    assert events.read_text().split() == ["pause", "resume"]


@pytest.mark.parametrize(("point", "new"), [("restore.after-swap-3", False),
                                            ("mysql.after-rename", False),
                                            ("restore.committed", True)])
def test_database_and_mounts_of_a_host_dead_mid_cutover_are_settled_together(
        tmp_path, postgres_url, mariadb, fresh_db, point, new):
    """The mounts swap first and the database last (its own journal is in the server):
    another host puts both back, or keeps both new."""
    root = shop(tmp_path)
    extra = f'database = "{mariadb.url(fresh_db)}"\n'
    a_config, b_config = (host(tmp_path, n, postgres_url, extra) for n in ("a", "b"))
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO t VALUES (1, 'at the snapshot')")
    a = Context(load_config(str(a_config)))
    a.init_repository()
    dev = a.config.environment("dev")
    snap = operations.start_backup(a, dev, live=True).snapshot_id
    at_snapshot = tree(root), [(1, "at the snapshot")]
    for m in MOUNTS:
        (root / m / "f.txt").write_text(f"{m} changed later\n")
    with conn.cursor() as cur:
        cur.execute("UPDATE t SET v = 'changed later'")
        cur.execute("INSERT INTO t VALUES (2, 'added later')")
    old = tree(root), [(1, "changed later"), (2, "added later")]
    queued = operations.start_restore(a, dev, snap, queue=True)
    dies_at(a_config, point)

    b = Context(load_config(str(b_config)))
    assert wait_for(lambda: reap_expired(b), "host b to settle", interval=0.3) == [queued.id]
    with conn.cursor() as cur:
        cur.execute("SELECT id, v FROM t ORDER BY id")
        rows = [tuple(r) for r in cur.fetchall()]
        cur.execute("SHOW DATABASES LIKE %s", (f"{fresh_db}\\_\\_sk%",))
        helpers = cur.fetchall()
    conn.close()
    assert (tree(root), rows) == (at_snapshot if new else old)  # never a mix
    assert not (root / FLAG).exists() and not (root / ".snapkeep-state").exists()
    assert not helpers, helpers
    done = b.catalog.get_activity(queued.id)
    assert done.result == ("success" if new else "failure"), done.error


def test_a_worker_stalled_mid_cutover_and_woken_after_it_was_settled_touches_nothing(
        tmp_path, postgres_url):
    """Stopped (SIGSTOP) after its first swap, past its lease: host b rolls the cut-over
    back and frees dev, a file is written; woken, host a's worker neither swaps its next
    mount in nor rolls anything back, nor lifts a pause: its fence fails first."""
    root = shop(tmp_path)
    a_config, b_config = (host(tmp_path, n, postgres_url) for n in ("a", "b"))
    a = Context(load_config(str(a_config)))
    a.init_repository()
    dev = a.config.environment("dev")
    snap = operations.start_backup(a, dev, live=True).snapshot_id
    for m in MOUNTS:
        (root / m / "f.txt").write_text(f"{m} changed later\n")
    old = tree(root)
    queued = operations.start_restore(a, dev, snap, queue=True)
    w = worker(a_config, SNAPKEEP_CRASH_AT="restore.after-swap-1", SNAPKEEP_CRASH_SIGNAL="STOP")
    try:
        wait_for(lambda: _stopped(w.pid), "host a's worker to stop after its first swap")
        assert tree(root) != old  # one mount is the snapshot's now
        b = Context(load_config(str(b_config)))
        assert wait_for(lambda: reap_expired(b), "host b to settle", interval=0.3) \
            == [queued.id]
        assert tree(root) == old and not (root / FLAG).exists()
        (root / "media" / "written-after.txt").write_text("keep me\n")
        settled = tree(root)
        os.kill(w.pid, signal.SIGCONT)
        _out, err = w.communicate(timeout=120)
    finally:
        w.kill()
    assert w.returncode != 0
    assert "lost its lease" in err and "does nothing further" in err, err
    assert tree(root) == settled
    assert not (root / FLAG).exists() and not (root / ".snapkeep-state").exists()
    done = a.catalog.get_activity(queued.id)
    assert (done.state, done.result) == ("complete", "failure")
    assert "stopped renewing its lease" in done.error


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
