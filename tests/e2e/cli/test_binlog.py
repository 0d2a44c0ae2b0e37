"""``snapkeep binlog:follow`` / ``binlog:check`` as processes: a follower killed -9
mid-stream and started again archives every event once (docs/pitr.md)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from snapkeep.repository import BinlogArchive, Repository
from snapkeep.sandbox import PrivateMariaDB
from snapkeep.storage import LocalBackend
from tests.helpers.binlog import Writer, binlog_files, binlog_server, file_bytes, master_status
from tests.helpers.shop import Cli, cli_env, one_line_error
from tests.helpers.sql import run


def _project(tmp_path, server, point_in_time=True) -> tuple[Cli, Repository]:
    base = tmp_path / "project"
    base.mkdir()
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n'
        f"point_in_time = {'true' if point_in_time else 'false'}\nbinlog_interval = 0.3\n")
    repo = Repository.init(LocalBackend(base / "repo"), key_file=base / "repository.key")
    return Cli(base, cli_env()), repo


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


def _archived(tmp_path) -> tuple[BinlogArchive, Repository]:
    repo = Repository.open(LocalBackend(tmp_path / "project" / "repo"),
                           key_file=tmp_path / "project" / "repository.key")
    return BinlogArchive(repo, "production"), repo


def _wait(pred, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_follower_killed_mid_stream_resumes_with_no_event_lost_or_doubled(tmp_path, server):
    cli, _repo = _project(tmp_path, server)
    proc = cli.popen("binlog:follow", "-e", "production")
    try:
        with Writer(server, "shop", ["a"]) as w:
            _wait(lambda: _archived(tmp_path)[0].last() is not None)
            one_line_error(cli.run("binlog:follow", "-e", "production", check=False),
                           "a binlog follower of production already runs on this host")
            w.wait_for(300)
            os.kill(proc.pid, signal.SIGKILL)  # while rows are being written and archived
            proc.wait()
            w.wait_for(300)
        proc = cli.popen("binlog:follow", "-e", "production")
        _wait(lambda: (lambda r: r is not None and (r.file, r.end) == master_status(server))(
            _archived(tmp_path)[0].last()))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    archive, repo = _archived(tmp_path)
    got, end = b"", 4
    for r in archive.records():
        assert r.kind == "segment" and r.data["start"] == end  # no hole, no overlap
        got += repo.read_blob(r.blob)
        end = r.end
    (name,) = binlog_files(server)
    assert got == file_bytes(server, name)[4:]


def test_check_names_each_fix_and_follow_refuses_without_point_in_time(tmp_path):
    with PrivateMariaDB(tmp_path / "plain") as plain:
        run(plain.connect(), "CREATE DATABASE shop")
        cli, _ = _project(tmp_path, plain)
        res = cli.run("binlog:check", "-e", "production", check=False)
        assert res.returncode == 6 and "Traceback" not in res.stderr
        assert "log_bin is off" in res.stderr and "[mysqld] log_bin=mysql-bin" in res.stderr
        (tmp_path / "project" / "snapkeep.toml").write_text(
            (tmp_path / "project" / "snapkeep.toml").read_text().replace(
                "point_in_time = true", "point_in_time = false"))
        one_line_error(cli.run("binlog:follow", "-e", "production", check=False),
                       "point_in_time = true")
