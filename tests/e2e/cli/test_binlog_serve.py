"""The binlog follower inside ``snapkeep serve`` and ``snapkeep worker``: it archives the
point_in_time environments' binlogs, stops cleanly on SIGTERM, waits quietly while
another follower runs, and is off with ``--no-binlog-follow`` (docs/pitr.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from snapkeep.repository import BinlogArchive, Repository
from snapkeep.storage import LocalBackend
from tests.helpers.binlog import Writer, binlog_files, binlog_server, file_bytes, master_status
from tests.helpers.shop import cli_env
from tests.helpers.sql import run


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


@pytest.fixture
def project(tmp_path, server):
    base = tmp_path / "project"
    base.mkdir()
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n'
        "point_in_time = true\nbinlog_interval = 0.3\n\n"
        '[environments.staging]\ntype = "staging"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n')  # not followed
    Repository.init(LocalBackend(base / "repo"), key_file=base / "repository.key")
    return base


class Proc:
    """A snapkeep process started in the project, its output in files."""

    def __init__(self, base, name: str, *args: str) -> None:
        self.out = base / f"{name}.out"
        with open(self.out, "w") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "snapkeep", *args], cwd=base,
                                         env=cli_env(), stdout=f, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.out.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)  # a hang guard, not a performance threshold

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _archive(base) -> tuple[BinlogArchive, Repository]:
    repo = Repository.open(LocalBackend(base / "repo"), key_file=base / "repository.key")
    return BinlogArchive(repo, "production"), repo


def _wait(pred, what: str, proc: Proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a performance threshold
    while not pred():
        assert proc.proc.poll() is None, f"exited before {what}:\n{proc.text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{proc.text()}"
        time.sleep(0.05)


def _caught_up(base, server) -> bool:
    last = _archive(base)[0].last()
    return last is not None and (last.file, last.end) == master_status(server)


def _archived_files(base) -> dict[str, bytes]:
    """Each archived file's bytes (after its magic), checking that its segments follow
    each other with no hole or overlap."""
    archive, repo = _archive(base)
    out: dict[str, bytes] = {}
    end = 4
    for r in archive.records():
        if r.file not in out:
            out[r.file], end = b"", 4
        assert r.kind == "segment" and r.data["start"] == end  # no hole, no overlap
        out[r.file] += repo.read_blob(r.blob)
        end = r.end
    return out


@pytest.mark.parametrize("command", [("serve", "--port", "0", "--workers", "1",
                                      "--no-scheduler"),
                                     ("worker",)])
def test_serve_and_worker_archive_the_binlog_and_stop_cleanly(project, server, command):
    proc = Proc(project, command[0], *command)
    try:
        with Writer(server, "shop", ["a"]) as w:
            _wait(lambda: _archive(project)[0].last() is not None, "a first segment", proc)
            w.wait_for(200)
            run(server.connect(), "FLUSH LOGS")  # rotation while it follows
            w.wait_for(200)
        _wait(lambda: _caught_up(project, server), "the archive to catch up", proc)
        assert proc.stop() == 0, proc.text()
    finally:
        proc.kill()
    text = proc.text()
    assert "binlog archiving production" in text and "staging" not in text
    assert "binlog production: following the binlog of" in text  # its lines are logged
    assert ("Server stopped." if command[0] == "serve" else "Worker stopped.") in text
    assert "Traceback" not in text
    files = binlog_files(server)
    assert len(files) == 2
    # every byte of each file once, in order
    assert _archived_files(project) == {f: file_bytes(server, f)[4:] for f in files}


def test_a_worker_waits_quietly_while_binlog_follow_runs_and_can_be_told_not_to_follow(
        project, server):
    follower = Proc(project, "follow", "binlog:follow", "-e", "production")
    worker = Proc(project, "worker", "worker")
    off = Proc(project, "off", "worker", "--no-binlog-follow")
    try:
        _wait(lambda: _archive(project)[0].last() is not None, "a first segment", follower)
        _wait(lambda: "not archiving here" in worker.text(), "the worker to step aside",
              worker)
        assert "a binlog follower of production already runs on this host" in worker.text()
        _wait(lambda: "binlog archiving off" in off.text(), "the worker to start", off)
        assert worker.stop() == 0 and off.stop() == 0
        assert follower.stop() == 0
    finally:
        for p in (follower, worker, off):
            p.kill()
    assert worker.text().count("not archiving here") == 1  # said once, not per retry
    assert "Traceback" not in worker.text() + off.text()
    assert "binlog production:" not in off.text()
