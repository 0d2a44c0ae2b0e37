"""Binlog archiving against a real MariaDB writing a binary log: the archived segments are
the server's binlog bytes, through rotation, restarts and purges (docs/pitr.md)."""

from __future__ import annotations

import threading
import time

import pytest

from snapkeep.engines.mysql import Follower, MySQLTarget, binlog_problems
from snapkeep.errors import ServerSetupError
from snapkeep.repository import BinlogArchive, Repository
from snapkeep.sandbox import PrivateMariaDB
from tests.helpers.binlog import Writer, binlog_files, binlog_server, file_bytes, master_status
from tests.helpers.dbstate import target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    yield s
    s.stop()


class Running:
    """A follower in a thread, stopped at the end."""

    def __init__(self, server, repo, recorder=None) -> None:
        self.archive = BinlogArchive(repo, "production")
        self.recorder = recorder or Recorder()
        self.follower = Follower(target_for(server, ""), self.archive, self.recorder,
                                 server_id=4242, interval=0.3)
        self.thread = threading.Thread(target=self.follower.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.follower.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def wait_archived(archive, server, timeout=60) -> None:
    """Until the archive holds everything up to the server's current position (read again
    at every poll: MariaDB writes a Binlog_checkpoint event a moment after a rotation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = archive.last()
        if last is not None and last.kind == "segment" and \
                (last.file, last.end) == master_status(server):
            return
        time.sleep(0.05)
    raise AssertionError(f"not archived up to {master_status(server)} in {timeout} s: "
                         f"{archive.last()}")


def archived_files(archive, repo) -> dict[str, bytes]:
    """Each file's archived bytes, checking segments follow each other without a hole."""
    repo.load_index()  # the index files of segments archived since ``repo`` was opened
    out: dict[str, bytes] = {}
    ends: dict[str, int] = {}
    for r in archive.records():
        if r.kind != "segment":
            continue
        assert r.data["start"] == ends.get(r.file, 4), f"hole or overlap at {r.data}"
        ends[r.file] = r.end
        out[r.file] = out.get(r.file, b"") + repo.read_blob(r.blob)
    return out


def assert_same_as_server(archive, repo, server, files=None) -> None:
    """The archive holds each of the server's binlog files whole, byte for byte."""
    for _ in range(5):  # a late Binlog_checkpoint event: archived a moment later
        wait_archived(archive, server)
        got = archived_files(archive, repo)
        names = files or binlog_files(server)
        if all(len(got.get(n, b"")) + 4 == (server.datadir / n).stat().st_size
               for n in names):
            break
    for name in names:
        assert got[name] == file_bytes(server, name)[4:], name


def test_segments_are_the_servers_binlog_through_flush_logs(server, repo):
    conn = server.connect()
    run(conn, "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        "CREATE TABLE shop.b (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    with Running(server, repo) as f, Writer(server, "shop", ["a", "b"]) as w:
        w.wait_for(300)
        run(conn, "FLUSH BINARY LOGS")
        w.wait_for(300)
        run(conn, "FLUSH LOGS")
        w.wait_for(100)
        w.stop()
        wait_archived(f.archive, server)
    assert len(binlog_files(server)) == 3
    assert_same_as_server(f.archive, repo, server)
    segments = list(f.archive.records())
    assert len(segments) >= 3 and all(r.kind == "segment" for r in segments)
    assert all(r.data["gtid_first"] and r.data["first_time"] for r in segments
               if r.data["events"] > 3)


def test_a_server_restart_is_followed_into_its_next_file(server, repo):
    run(server.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    with Running(server, repo) as f:
        with Writer(server, "shop", ["a"]) as w:
            w.wait_for(200)
        wait_archived(f.archive, server)
        server.stop()
        server.start()
        with Writer(server, "shop", ["a"]) as w:
            w.wait_for(200)
        wait_archived(f.archive, server)
    assert len(binlog_files(server)) == 2
    assert_same_as_server(f.archive, repo, server)
    assert any("reconnecting" in line for line in f.recorder.lines)


def test_a_stopped_follower_resumes_exactly_where_it_stopped(server, repo):
    run(server.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    with Running(server, repo) as f, Writer(server, "shop", ["a"]) as w:
        w.wait_for(200)  # stopped while rows are written: its open segment is dropped
    with Writer(server, "shop", ["a"]) as w:
        w.wait_for(200)  # written while nothing follows
    with Running(server, repo) as f:
        wait_archived(f.archive, server)
    assert_same_as_server(f.archive, repo, server)


def test_binlogs_purged_before_they_were_archived_are_a_recorded_gap(server, repo):
    conn = server.connect()
    run(conn, "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    with Running(server, repo) as f:
        wait_archived(f.archive, server)
    first = binlog_files(server)[0]
    run(conn, "INSERT INTO shop.a (v) VALUES (1)", "FLUSH BINARY LOGS",
        "INSERT INTO shop.a (v) VALUES (2)", "FLUSH BINARY LOGS")
    run(conn, f"PURGE BINARY LOGS TO '{binlog_files(server)[-1]}'")
    with Running(server, repo) as f:
        run(conn, "INSERT INTO shop.a (v) VALUES (3)")
        wait_archived(f.archive, server)
    gaps = [r for r in f.archive.records() if r.kind == "gap"]
    assert [(g.file, g.data["next_file"]) for g in gaps] == [(first, binlog_files(server)[0])]
    assert any("binlogs purged on the server before they were archived" in line
               and "recoverable window now starts at the next snapshot" in line
               for line in f.recorder.lines)
    assert_same_as_server(f.archive, repo, server, files=binlog_files(server))


def test_a_server_without_log_bin_is_refused_naming_the_fix(tmp_path, repo):
    with PrivateMariaDB(tmp_path / "plain") as plain:
        problems = binlog_problems(target_for(plain, ""))
        assert problems[0].startswith("log_bin is off") and "[mysqld] log_bin" in problems[0]
        assert all("\n" not in p for p in problems)
        with pytest.raises(ServerSetupError, match="log_bin is off"):
            Follower(target_for(plain, ""), BinlogArchive(repo, "x"), Recorder(),
                     server_id=4242).run()


def test_a_server_meeting_every_precondition_has_no_problem(server):
    assert binlog_problems(target_for(server, "")) == []


def test_each_unmet_setting_and_grant_is_one_line_and_the_named_grants_suffice(server, repo):
    conn = server.connect()
    run(conn, "CREATE USER 'arch'@'127.0.0.1' IDENTIFIED BY 'pw'",
        "GRANT SELECT ON *.* TO 'arch'@'127.0.0.1'",
        "SET GLOBAL binlog_format = 'MIXED'", "SET GLOBAL binlog_row_image = 'MINIMAL'")
    arch = MySQLTarget(server.host, server.port, "arch", "pw", "")
    try:
        assert binlog_problems(arch) == [
            "binlog_format is MIXED: set binlog_format=ROW in the server's configuration "
            "([mysqld] binlog_format=ROW) and restart it",
            "binlog_row_image is MINIMAL: set binlog_row_image=FULL in the server's "
            "configuration ([mysqld] binlog_row_image=FULL) and restart it",
            "arch lacks REPLICATION SLAVE, BINLOG MONITOR: run GRANT REPLICATION SLAVE, "
            "BINLOG MONITOR ON *.* TO the user snapkeep connects as"]
    finally:
        run(conn, "SET GLOBAL binlog_format = 'ROW'", "SET GLOBAL binlog_row_image = 'FULL'")
    run(conn, "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'arch'@'127.0.0.1'")
    assert binlog_problems(arch) == []
    archive = BinlogArchive(repo, "production")
    follower = Follower(arch, archive, Recorder(), server_id=4243, interval=0.3)
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        run(conn, "CREATE DATABASE shop")
        wait_archived(archive, server)
    finally:
        follower.stop.set()
        thread.join(60)
    assert_same_as_server(archive, repo, server)


def test_prunes_while_archiving_keep_every_segment_readable(server, repo, tmp_path):
    run(server.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    other = Repository.open(repo.backend)  # another process's view, pruning
    with Running(server, repo) as f, Writer(server, "shop", ["a"]) as w:
        for _ in range(3):
            w.wait_for(200)
            other.prune(wait=60)
        w.stop()
        assert_same_as_server(f.archive, Repository.open(repo.backend), server)
    assert other.check(read_data=True).ok
