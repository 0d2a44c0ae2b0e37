"""Fencing (issue 19, item 1): a worker stopped (SIGSTOP) past its lease is reaped by a
worker of another host; woken up, it does nothing further — no snapshot, and above all
no resume of an environment that is no longer its to resume.

Two "hosts" share a PostgreSQL catalog, the repository and the environment's files; each
has its own snapkeep.toml and so its own `.snapkeep/` (its locks and worker ID), as
separate machines would; the pause marker is beside the environment's mounts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.activities.recovery import reap_expired
from snapkeep.services.context import Context
from tests.helpers.server import wait_for
from tests.helpers.shop import cli_env

LEASE = 2  # seconds: short, so the stopped worker is reaped quickly


def host(base: Path, name: str, catalog: str) -> Path:
    """A host's config: the shared catalog, repository, key and environment root."""
    d = base / name
    d.mkdir()
    wait = "echo pause >> ../events; while [ ! -e ../gate ]; do sleep 0.05; done"
    (d / "snapkeep.toml").write_text(
        f'[project]\nid = "shop"\nplan = "starter"\ncatalog = "{catalog}"\n'
        f'repository = "{base / "repository"}"\n\n'
        f'[repository]\nkey_file = "{base / "repository.key"}"\n\n'
        f'[environments.dev]\nroot = "{base / "dev"}"\nmounts = ["data"]\n'
        f"pause_command = '{wait}'\n"
        "resume_command = 'echo resume >> ../events'\n")
    return d / "snapkeep.toml"


def events(base: Path) -> list[str]:
    path = base / "events"
    return path.read_text().split() if path.exists() else []


def test_a_worker_woken_after_losing_its_lease_neither_snapshots_nor_resumes(
        tmp_path, postgres_url):
    (tmp_path / "dev" / "data").mkdir(parents=True)
    (tmp_path / "dev" / "data" / "f.txt").write_text("data\n")
    a_config, b_config = (host(tmp_path, n, postgres_url) for n in ("a", "b"))
    a = Context(load_config(str(a_config)))
    a.init_repository()
    queued = operations.start_backup(a, a.config.environment("dev"), live=False, queue=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "snapkeep", "worker", "--config", str(a_config), "--once",
         "--lease", str(LEASE)], env=cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: events(tmp_path) == ["pause"], "host a's worker to pause dev")
        os.kill(worker.pid, signal.SIGSTOP)
        b = Context(load_config(str(b_config)))
        reaped = wait_for(lambda: reap_expired(b), "host b to reap the stopped worker",
                          interval=0.5)
        assert reaped == [queued.id]
        # Host b lifted the pause before freeing dev: the marker is beside the mounts.
        assert events(tmp_path) == ["pause", "resume"]
        (tmp_path / "gate").touch()  # host a's pause command may end now
        os.kill(worker.pid, signal.SIGCONT)
        _out, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert events(tmp_path) == ["pause", "resume"]  # woken, it did not resume again
    assert worker.returncode != 0
    assert "lost its lease" in err and "does nothing further" in err, err
    assert a.catalog.list_snapshots("dev") == []
    done = a.catalog.get_activity(queued.id)
    assert (done.state, done.result) == ("complete", "failure")
    assert "stopped renewing its lease" in done.error

    # Nothing is left for host a to settle: its next backup just runs.
    after = operations.start_backup(a, a.config.environment("dev"), live=True)
    assert after.result == "success"
    assert events(tmp_path) == ["pause", "resume"]
    assert not (tmp_path / "dev" / ".snapkeep-state" / "paused.json").exists()
