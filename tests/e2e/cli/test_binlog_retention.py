"""Binlog retention end to end: a real follower archives a real server's binlog while
snapshots are taken; once the oldest is deleted, ``repository:prune`` drops the records
before the next one's file, frees their chunks, leaves ``repository:check`` clean, and the
oldest kept snapshot restored plus the kept archive replayed from its position is exactly
the live database (docs/pitr.md, Retention)."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from snapkeep.repository import BinlogArchive, Repository
from snapkeep.storage import LocalBackend
from tests.helpers.binlog import binlog_files, binlog_server, file_bytes, master_status
from tests.helpers.shop import Cli, checksums, cli_env, take_snapshot
from tests.helpers.sql import run


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


def _project(tmp_path, server) -> Cli:
    base = tmp_path / "project"
    base.mkdir()
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n'
        "point_in_time = true\nbinlog_interval = 0.3\n")
    Repository.init(LocalBackend(base / "repo"), key_file=base / "repository.key")
    return Cli(base, cli_env())


def _repo(cli: Cli) -> Repository:
    return Repository.open(LocalBackend(cli.cwd / "repo"), key_file=cli.cwd / "repository.key")


def _wait(pred, what: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a performance threshold
    while not pred():
        assert proc.poll() is None, f"the follower exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _writes(server, n: int) -> None:
    conn = server.connect("shop")
    try:
        run(conn, *[f"INSERT INTO a (v) VALUES ({i})" for i in range(n)],
            f"UPDATE a SET v = v + 1 WHERE id % 3 = {n % 3}", "DELETE FROM a WHERE id % 7 = 0")
    finally:
        conn.close()


def test_prune_drops_binlogs_before_the_oldest_base_and_a_replay_from_it_is_whole(
        tmp_path, server):
    cli = _project(tmp_path, server)
    follower = cli.popen("binlog:follow", "-e", "production")
    try:
        _writes(server, 50)
        first = take_snapshot(cli, "production")
        _writes(server, 50)
        run(server.connect(), "FLUSH LOGS")
        _writes(server, 50)
        second = take_snapshot(cli, "production")  # in mysql-bin.000002
        _writes(server, 50)
        run(server.connect(), "FLUSH LOGS")
        _writes(server, 50)
        take_snapshot(cli, "production")
        _writes(server, 50)

        def caught_up() -> bool:
            last = BinlogArchive(_repo(cli), "production").last()
            return last is not None and (last.file, last.end) == master_status(server)

        _wait(caught_up, "the archive to catch up", follower)
        repo = _repo(cli)
        before = list(BinlogArchive(repo, "production").records())
        pos = repo.load_snapshot(second).services["database"]["binlog"]
        assert pos["file"] == "mysql-bin.000002"

        # the oldest snapshot (in file .1) is a base: nothing goes
        assert "archived binlog" not in cli.run("repository:prune", "--dry-run").stdout
        cli.run("snapshot:delete", "-e", "production", first)
        dry = cli.run("repository:prune", "--dry-run").stdout
        assert "of production (seq 1 to " in dry and f"snapshot {second} at " \
            f"mysql-bin.000002:{pos['position']}" in dry
        cli.run("repository:prune")  # while the follower keeps archiving
        cli.run("repository:check", "--read-data")
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
    assert follower.returncode == 0

    repo = _repo(cli)
    after = list(BinlogArchive(repo, "production").records())
    dropped = [r for r in before if r.file == "mysql-bin.000001"]
    assert dropped and after[0].seq == dropped[-1].seq + 1
    assert (after[0].file, after[0].data["start"]) == ("mysql-bin.000002", 4)
    live = repo.index.view().locations
    assert not any(c in live for r in dropped for c, _n in r.blob.chunks)  # freed

    # the kept archive is every byte of files .2 and .3, no hole
    files: dict[str, bytearray] = {}
    for r in after:
        buf = files.setdefault(r.file, bytearray(b"\xfebin"))
        assert len(buf) == r.data["start"]
        buf += repo.read_blob(r.blob)
    names = binlog_files(server)
    assert list(files) == names[1:]
    assert {f: bytes(b) for f, b in files.items()} == {f: file_bytes(server, f)
                                                        for f in names[1:]}

    # the oldest kept snapshot restored, then the kept archive replayed from its position
    expected = checksums(server.connect(), "shop")
    cli.run("snapshot:restore", "-e", "production", second, "--yes")
    paths = []
    for f, data in files.items():
        (tmp_path / f).write_bytes(bytes(data))
        paths.append(str(tmp_path / f))
    events = subprocess.run(
        ["mariadb-binlog", "--no-defaults", "--database=shop",
         f"--start-position={pos['position']}", *paths], capture_output=True,
        check=True).stdout
    subprocess.run([*server.client_args(), "shop"], input=events, check=True,
                   capture_output=True)
    assert checksums(server.connect(), "shop") == expected
