"""The parallel dump against a real MariaDB: one point in time across connections, ranges
covering every row once, stable parts, clean failure (connections closed, lock released)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pymysql
import pytest

from snapkeep import faults
from snapkeep.engines.mysql import (
    MySQLTarget,
    consistency,
    dump_database,
    hold_writes,
    prepare_restore,
    ranges,
    workers,
)
from snapkeep.engines.mysql.descriptions import SUPPORTED_FORMATS
from snapkeep.engines.mysql.encoding import decode_line
from snapkeep.errors import ServiceUnavailable, SnapkeepError
from snapkeep.repository import BlobRef
from snapkeep.sandbox import PrivateMariaDB
from tests.helpers.corpora import load_unit, unit
from tests.helpers.dbstate import assert_same, db_state, load_sql_file, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run

SQL_DIR = Path(__file__).parent / "sql"
needs_format_2 = pytest.mark.skipif(2 not in SUPPORTED_FORMATS,
                                    reason="the restore side does not read format 2 yet")



@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 1000 rows, so small test tables are split."""
    monkeypatch.setattr(ranges, "MIN_PART_ROWS", 1000)
    monkeypatch.setattr(ranges, "MAX_PART_ROWS", 1000)


def rows_of(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def part_lines(repo, table: dict) -> list[list[tuple]]:
    return [[decode_line(line) for line in repo.read_blob(BlobRef.from_json(p)).split(b"\n")[:-1]]
            for p in table["parts"]]


def no_dump_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("snapkeep-dump-")]


def connections_of(conn, user: str) -> int:
    return rows_of(conn, f"SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                         f"WHERE USER = '{user}' AND ID <> CONNECTION_ID()")[0][0]


# -- fidelity through the restore ---------------------------------------------------------------

# escaped lines encoded in Python (MySQL's path without the pump), quoted lines composed by
# the server (MariaDB without the pump), escaped lines encoded by the C row pump (default)
@pytest.mark.parametrize(("fmt", "use_pump"), [(2, False), (3, False), (3, True)])
def test_a_parallel_split_dump_of_the_type_coverage_schema_round_trips_exactly(
        mariadb, fresh_db, repo, small_parts, fmt, use_pump):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO big SELECT seq * 3, CONCAT('v', seq) FROM seq_1_to_5000")
    before = db_state(conn, fresh_db)
    target = target_for(mariadb, fresh_db)
    progress = Recorder()
    d = dump_database(target, repo, progress, threads=3, fmt=fmt, use_pump=use_pump)
    assert d["format"] == fmt
    if fmt == 3:
        assert {p["encoding"] for t in d["tables"] for p in t["parts"]} == {
            "escaped" if use_pump else "quoted"}
    assert d["writes_held_seconds"] >= 0 and d["backup_lock"] == "BACKUP STAGE BLOCK_COMMIT"
    assert any("writes held for" in line for line in progress.lines)
    assert progress.done == progress.total
    run(conn, "DELETE FROM big WHERE id < 600", "DROP TABLE numbers")
    prepared = prepare_restore(target, d, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert_same(db_state(conn, fresh_db), before)


@needs_format_2
def test_sakila_dumped_on_four_connections_round_trips(mariadb, repo, small_parts):
    load_unit(mariadb, unit("sakila_mariadb"))
    conn = mariadb.connect("sakila")
    try:
        before = db_state(conn, "sakila")
        target = target_for(mariadb, "sakila")
        d = dump_database(target, repo, Recorder(), threads=4)
        rental = next(t for t in d["tables"] if t["name"] == "rental")
        assert len(rental["parts"]) > 1
        run(conn, "SET foreign_key_checks = 0", "DELETE FROM payment WHERE payment_id < 500",
            "SET foreign_key_checks = 1")
        prepared = prepare_restore(target, d, repo, Recorder())
        prepared.swap()
        prepared.finish()
        assert_same(db_state(conn, "sakila"), before)
    finally:
        run(conn, "DROP DATABASE IF EXISTS sakila")
        conn.close()


# -- ranges ---------------------------------------------------------------------------------------

def test_parts_cover_every_row_once_with_key_gaps_and_composite_keys(
        mariadb, fresh_db, repo, small_parts):
    conn = mariadb.connect(fresh_db)
    run(conn,
        "CREATE TABLE gaps (id BIGINT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "INSERT INTO gaps SELECT seq * seq * 7919, seq FROM seq_1_to_6000",
        "INSERT INTO gaps VALUES (-9223372036854775808, 0), (9223372036854775807, 1)",
        "CREATE TABLE comp (k VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, "
        "n INT, v VARCHAR(5), PRIMARY KEY (k, n)) ENGINE=InnoDB",
        "INSERT INTO comp SELECT CONCAT(IF(seq % 2, 'a', 'A'), seq % 37), seq, 'x' "
        "FROM seq_1_to_7000",
        "INSERT INTO comp SELECT 'same', seq, 'y' FROM seq_1_to_2500",
        "CREATE TABLE nokey (v INT) ENGINE=InnoDB",
        "INSERT INTO nokey SELECT seq % 3 FROM seq_1_to_3000",
        "CREATE TABLE empty (id INT PRIMARY KEY) ENGINE=InnoDB")
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=3, fmt=2)
    assert d["format"] == 2 and "rows" not in d["tables"][0]
    tables = {t["name"]: t for t in d["tables"]}
    assert tables["empty"]["parts"] == [] and tables["empty"]["row_count"] == 0
    assert len(tables["nokey"]["parts"]) == 1 and tables["nokey"]["row_count"] == 3000
    for name, pk in (("gaps", "id"), ("comp", "k, n")):
        parts = part_lines(repo, tables[name])
        assert len(parts) > 2 and all(parts)
        everything = [row for part in parts for row in part]
        expected = rows_of(mariadb.connect(fresh_db, conv={}, use_unicode=False),
                           f"SELECT * FROM {name} ORDER BY {pk}")
        assert everything == [tuple(r) for r in expected]
        assert tables[name]["row_count"] == len(expected)
    # the parts are the format-1 blob cut in pieces
    one = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=1, fmt=1)
    whole = {t["name"]: repo.read_blob(BlobRef.from_json(t["rows"])) for t in one["tables"]}
    for t in d["tables"]:
        assert b"".join(repo.read_blob(BlobRef.from_json(p)) for p in t["parts"]) == \
            whole[t["name"]]


def test_an_unchanged_database_gives_identical_parts(mariadb, fresh_db, repo, small_parts):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_9000")
    target = target_for(mariadb, fresh_db)
    first = dump_database(target, repo, Recorder(), threads=3, fmt=2)
    second = dump_database(target, repo, Recorder(), threads=2, fmt=2)
    assert len(first["tables"][0]["parts"]) > 3
    assert [t["parts"] for t in first["tables"]] == [t["parts"] for t in second["tables"]]
    # rows appended at the end (AUTO_INCREMENT's way) leave every part but the last as it was
    run(conn, "INSERT INTO t SELECT 9000 + seq, 'new' FROM seq_1_to_300")
    third = dump_database(target, repo, Recorder(), threads=2, fmt=2)
    kept = len(first["tables"][0]["parts"]) - 1
    assert third["tables"][0]["parts"][:kept] == first["tables"][0]["parts"][:kept]


# -- one point in time ----------------------------------------------------------------------

def test_a_live_dump_while_orders_are_written_is_one_consistent_point(
        mariadb, fresh_db, repo, small_parts):
    conn = mariadb.connect(fresh_db)
    run(conn,
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, items INT NOT NULL) "
        "ENGINE=InnoDB",
        "CREATE TABLE items (order_id INT, n INT, PRIMARY KEY (order_id, n)) ENGINE=InnoDB",
        "CREATE TABLE counter (id INT PRIMARY KEY, orders INT NOT NULL) ENGINE=InnoDB",
        "INSERT INTO counter VALUES (1, 0)")
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        w = mariadb.connect(fresh_db, autocommit=False)
        try:
            i = 0
            while not stop.is_set() or written[0] < 3000:
                i += 1
                with w.cursor() as cur:
                    cur.execute("INSERT INTO orders (items) VALUES (%s)", (i % 5 + 1,))
                    oid = cur.lastrowid
                    cur.executemany("INSERT INTO items VALUES (%s, %s)",
                                    [(oid, n) for n in range(i % 5 + 1)])
                    cur.execute("UPDATE counter SET orders = orders + 1 WHERE id = 1")
                w.commit()
                written[0] += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 1500 and thread.is_alive():
            stop.wait(0.01)
        d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=3)
        during = written[0]
    finally:
        stop.set()
        thread.join()
    assert not errors and written[0] > during  # writes went on during and after the dump
    # the parts as stored
    if d["format"] == 2:
        tables = {t["name"]: [r for p in part_lines(repo, t) for r in p] for t in d["tables"]}
        orders = {int(r[0]): int(r[1]) for r in tables["orders"]}
        items: dict[int, int] = {}
        for oid, _n in tables["items"]:
            items[int(oid)] = items.get(int(oid), 0) + 1
        assert items == orders
        assert int(tables["counter"][0][1]) == len(orders) >= 1500
    # through the restore
    target = target_for(mariadb, fresh_db)
    prepared = prepare_restore(target, d, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert rows_of(conn, "SELECT COUNT(*) FROM orders o WHERE items <> "
                         "(SELECT COUNT(*) FROM items i WHERE i.order_id = o.id)") == [(0,)]
    assert rows_of(conn, "SELECT COUNT(*) FROM items WHERE order_id NOT IN "
                         "(SELECT id FROM orders)") == [(0,)]
    (count,), = rows_of(conn, "SELECT COUNT(*) FROM orders")
    assert rows_of(conn, "SELECT orders FROM counter") == [(count,)] and count >= 1500


def test_non_transactional_tables_are_read_under_the_lock_or_flagged(
        mariadb, fresh_db, repo, monkeypatch):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE a (id INT PRIMARY KEY) ENGINE=Aria", "INSERT INTO m VALUES (1), (2)")
    progress = Recorder()
    d = dump_database(target_for(mariadb, fresh_db), repo, progress, threads=2)
    assert not any("outside the consistent point" in line for line in progress.lines)
    assert {t["name"]: t["row_count"] for t in d["tables"]} == {"a": 0, "m": 2}
    monkeypatch.setattr(consistency, "NONTX_UNDER_LOCK_BYTES", -1)
    progress = Recorder()
    dump_database(target_for(mariadb, fresh_db), repo, progress, threads=2)
    assert any("`m` is MyISAM: read outside the consistent point" in line
               for line in progress.lines)


# -- failures -------------------------------------------------------------------------------

def test_a_failing_worker_closes_every_connection_and_releases_the_lock(
        mariadb, fresh_db, repo, monkeypatch, small_parts):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE USER IF NOT EXISTS 'sk_dumper'@'%' IDENTIFIED BY 'pw'",
        "GRANT ALL ON *.* TO 'sk_dumper'@'%'",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_9000")
    calls = [0]
    real_blocks = workers._blocks

    def failing_blocks(reader, sql, encoding, *rest):
        for block in real_blocks(reader, sql, encoding, *rest):
            calls[0] += 1
            if calls[0] == 3:
                raise pymysql.OperationalError(1205, "injected failure")
            yield block

    # the third block fails, whichever way the parts' lines are read and encoded
    monkeypatch.setattr(workers, "_blocks", failing_blocks)
    target = MySQLTarget(mariadb.host, mariadb.port, "sk_dumper", "pw", fresh_db)
    try:
        with pytest.raises(SnapkeepError) as info:
            dump_database(target, repo, Recorder(), threads=3)
        assert target.describe() in str(info.value) and "injected failure" in str(info.value)
        assert no_dump_threads()
        # The server drops a closed connection from its process list a moment later; a
        # leaked one would stay for good.
        deadline = time.monotonic() + 10
        while connections_of(conn, "sk_dumper") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connections_of(conn, "sk_dumper") == 0
        run(conn, "SET SESSION lock_wait_timeout = 5", "BACKUP STAGE START",
            "BACKUP STAGE BLOCK_COMMIT", "BACKUP STAGE END")
    finally:
        run(conn, "DROP USER IF EXISTS 'sk_dumper'@'%'")


def test_the_server_stopped_mid_dump_gives_a_clear_error(tmp_path, repo, small_parts):
    server = PrivateMariaDB(tmp_path / "own-server")
    try:
        server.start()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"cannot start a private MariaDB server: {e}")
    try:
        conn = server.connect()
        run(conn, "CREATE DATABASE shop", "USE shop")
        for i in range(6):
            run(conn, f"CREATE TABLE t{i} (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                f"INSERT INTO t{i} SELECT seq, REPEAT(MD5(seq), 20) FROM seq_1_to_20000")
        conn.close()
        progress = Recorder()
        progress.on_advance = lambda: server.kill()
        target = target_for(server, "shop")
        with pytest.raises(ServiceUnavailable) as info:
            dump_database(target, repo, progress, threads=2)
        message = str(info.value)
        assert target.describe() in message and "\n" not in message
        assert no_dump_threads()
    finally:
        server.kill()


def test_without_reload_the_dump_takes_no_lock_and_writes_are_held_by_table_locks(
        mariadb, fresh_db, repo):
    """A user without RELOAD: the dump falls back to one connection without a backup lock,
    and ``hold_writes`` to ``LOCK TABLES … READ`` (``consistency.py``), which still holds
    every write while a dump told so (``writes_held=True``) reads."""
    conn = mariadb.connect(fresh_db)
    user = f"sk_{fresh_db}"
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "INSERT INTO t VALUES (1, 1), (2, 2)",
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
        f"GRANT SELECT, SHOW VIEW, LOCK TABLES ON `{fresh_db}`.* TO '{user}'@'%'")
    writer = mariadb.connect(fresh_db, autocommit=True)
    try:
        target = MySQLTarget(mariadb.host, mariadb.port, user, "pw", fresh_db)
        progress = Recorder()
        live = dump_database(target, repo, progress, threads=3)
        assert live["backup_lock"] is None and live["tables"][0]["row_count"] == 2
        assert any("no privilege for" in line and "one connection" in line
                   for line in progress.lines), progress.lines
        held = Recorder()
        run(writer, "SET SESSION lock_wait_timeout = 1")
        with hold_writes(target, held):
            frozen = dump_database(target, repo, held, threads=2, writes_held=True)
            with pytest.raises(pymysql.err.OperationalError) as blocked:
                run(writer, "UPDATE t SET v = v + 1")
            assert blocked.value.args[0] == 1205  # lock wait timeout: the write waited
        assert frozen["backup_lock"] is None and frozen["tables"][0]["row_count"] == 2
        assert any("no backup lock needed" in line for line in held.lines), held.lines
        assert any("held for" in line for line in held.lines), held.lines
    finally:
        writer.close()
        run(conn, f"DROP USER IF EXISTS '{user}'@'%'")


DDL_AT_THE_POINT = [  # (statement, what the refusal names)
    ("ALTER TABLE t ADD COLUMN note INT DEFAULT 7", "table `t`"),  # rows read without it
    ("ALTER TABLE t MODIFY v VARCHAR(300)", "table `t`"),  # longer values, the old type
    ("ALTER TABLE t ALTER COLUMN v SET DEFAULT 'changed'", "table `t`"),  # the .frm only
    ("ALTER TABLE t ENGINE=Aria", "table `t`"),
    ("CREATE TABLE created (id INT PRIMARY KEY)", "table `created`"),  # in no listing
    ("DROP TABLE gone", "table `gone`"),
    ("CREATE TRIGGER t_ins BEFORE INSERT ON t FOR EACH ROW SET NEW.v = UPPER(NEW.v)",
     "trigger `t_ins`"),
    ("CREATE OR REPLACE VIEW recent AS SELECT id FROM t WHERE id > 2", "view `recent`"),
    ("DROP PROCEDURE tidy", "procedure `tidy`")]


@pytest.mark.parametrize(("statement", "what"), DDL_AT_THE_POINT)
def test_a_ddl_between_the_ddl_read_and_the_point_fails_a_live_dump(
        mariadb, fresh_db, repo, monkeypatch, statement, what):
    """A live dump reads every definition, then starts its snapshots at one point: a DDL
    statement committed in between (``seam("mysql.dump.ddl_read")``) would have rows read
    in one definition and restored into another, or a table, view, trigger or routine of
    another moment. Read again after the point, the definitions differ, and the dump
    fails in one line naming what changed, its connections closed."""
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000",
        "CREATE TABLE other (id INT PRIMARY KEY) ENGINE=MyISAM",
        "INSERT INTO other VALUES (1)",
        "CREATE TABLE gone (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE VIEW recent AS SELECT id FROM t WHERE id > 1",
        "CREATE PROCEDURE tidy() DELETE FROM other WHERE id > 100")

    def ddl() -> None:
        c = mariadb.connect(fresh_db)
        run(c, statement)
        c.close()

    monkeypatch.setitem(faults.SEAMS, "mysql.dump.ddl_read", ddl)
    with pytest.raises(ServiceUnavailable) as failed:
        dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    assert str(failed.value) == (f"a DDL statement changed {what} during the live snapshot; "
                                 "take the snapshot again, or take it without --live")
    assert no_dump_threads()
    monkeypatch.delitem(faults.SEAMS, "mysql.dump.ddl_read")
    before = db_state(conn, fresh_db)  # taken again: exact
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    run(conn, "DROP TABLE t")
    prepared = prepare_restore(target_for(mariadb, fresh_db), d, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert_same(db_state(conn, fresh_db), before)
