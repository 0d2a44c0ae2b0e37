"""The binlog position a dump records is exactly its consistent point (docs/pitr.md)."""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql import MySQLTarget, dump_database
from tests.helpers.binlog import Writer, binlog_server, inserts_until, master_status, replay
from tests.helpers.dbstate import assert_same, db_state, restore_database, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = binlog_server(tmp_path_factory.mktemp("binlog-position"))
    yield s
    s.stop()


@pytest.mark.parametrize("threads", [1, 3])
def test_the_recorded_position_splits_the_binlog_exactly_where_the_dump_saw_it(
        server, repo, threads):
    db = f"pos{threads}"
    conn = server.connect()
    run(conn, f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
        f"CREATE TABLE {db}.b (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
    with Writer(server, db, ["a", "b"]) as writer:
        writer.wait_for(500)
        d = dump_database(target_for(server, db), repo, Recorder(), threads=threads)
        writer.wait_for(50)  # and writes went on after the dump
    pos = d["binlog"]
    assert pos["method"] == "binlog_snapshot" and pos["gtid"].startswith("0-1-")
    dumped = {t["name"]: t["row_count"] for t in d["tables"]}
    # every row committed before the position is in the dump, none after it
    before = inserts_until(server, pos["file"], pos["position"])
    assert {"a": before[f"{db}.a"], "b": before[f"{db}.b"]} == dumped
    (total,), = _rows(conn, f"SELECT (SELECT COUNT(*) FROM {db}.a) + (SELECT COUNT(*) FROM {db}.b)")
    assert total > sum(dumped.values()) >= 500
    # the GTID position names the same point: the last transaction before it
    assert pos["gtid"] == f"0-1-{before['GTID']}"


def test_a_user_without_reload_dumping_on_one_connection_still_gets_the_exact_position(
        server, repo):
    db = "noreload"
    conn = server.connect()
    run(conn, f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'pw'",
        f"GRANT SELECT, SHOW VIEW ON {db}.* TO 'reader'@'127.0.0.1'")
    reader = MySQLTarget(server.host, server.port, "reader", "pw", db)
    recorder = Recorder()
    with Writer(server, db, ["a"]) as writer:
        writer.wait_for(300)
        d = dump_database(reader, repo, recorder, threads=3)
        writer.wait_for(50)
    assert any("dumping on one connection" in line for line in recorder.lines)
    pos = d["binlog"]
    before = inserts_until(server, pos["file"], pos["position"])
    assert before[f"{db}.a"] == d["tables"][0]["row_count"] >= 300


def test_the_snapshot_plus_the_binlog_from_its_position_is_the_live_database(server, repo):
    """The point of the position: restore the snapshot, replay every event after it, and
    the database is exactly the live one (rows, updates and deletes, fingerprinted)."""
    db = "replayed"
    conn = server.connect()
    run(conn, f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
        f"CREATE TABLE {db}.b (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
    with Writer(server, db, ["a", "b"]) as writer:
        writer.wait_for(300)
        d = dump_database(target_for(server, db), repo, Recorder(), threads=3)
        writer.wait_for(300)
    run(conn, f"UPDATE {db}.a SET v = -v WHERE id % 3 = 0", f"DELETE FROM {db}.b WHERE id % 5 = 0")
    live = db_state(conn, db)
    end = master_status(server)
    restore_database(target_for(server, db), d, repo)
    assert db_state(conn, db) != live  # the snapshot is older
    replay(server, db, (d["binlog"]["file"], d["binlog"]["position"]), end)
    assert_same(db_state(conn, db), live)


def test_a_server_without_log_bin_records_no_position(mariadb, fresh_db, repo):
    run(mariadb.connect(fresh_db), "CREATE TABLE t (id INT PRIMARY KEY)")
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    assert "binlog" not in d


def _rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())
