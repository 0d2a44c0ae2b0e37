"""A backup and restore of an environment with ``engine = "physical"`` through the
services (docs/physical.md): the default non-live backup (writes held, mariadb-backup
inside), the activity log naming the engine, the work directory gone, the restore
identical; ``engine = "auto"`` takes the same path when it can."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from snapkeep import faults
from snapkeep.config import load_config
from snapkeep.errors import ServiceUnavailable
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing
from tests.helpers.dbstate import db_state
from tests.helpers.orders import order_writer
from tests.helpers.shop import Cli, cli_env


def _project(base: Path, url: str, engine: str | None, extra: str = ""
             ) -> tuple[Context, object]:
    (base / "app").mkdir()
    config = base / "snapkeep.toml"
    config.write_text('[project]\nid = "phys"\n[repository]\nkey_file = '
                      '".snapkeep/repository.key"\n[environments.dev]\nroot = "app"\n'
                      f'database = "{url}"\n'
                      + (f'engine = "{engine}"\n' if engine else "") + extra)
    ctx = Context(load_config(str(config)))
    ctx.init_repository()
    return ctx, ctx.config.environment("dev")


@pytest.mark.parametrize("engine", ["physical", "auto"])
def test_backup_and_restore_through_pages(mariadb, fresh_db, tmp_path, engine):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        for sql in ("CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT) "
                    "ENGINE=InnoDB", "INSERT INTO orders (total) VALUES (10), (20), (30)",
                    "CREATE TABLE counters (name VARCHAR(10) PRIMARY KEY, n INT) ENGINE=Aria",
                    "INSERT INTO counters VALUES ('orders', 3)",
                    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 15"):
            cur.execute(sql)
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), engine)
    done = operations.start_backup(ctx, env, live=False)
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any(m.startswith(f"engine {engine}: physical") for m in log), log
    assert any("stored 1 InnoDB tables as pages" in m for m in log), log
    assert not any(p.is_file() for p in (ctx.config.state_dir / "physical").rglob("*"))
    manifest = ctx.repository.load_snapshot(done.snapshot_id)
    assert manifest.services["database"]["engine"] == "physical"
    listed = {s.id: s for s in listing.list_snapshots(ctx, env)}
    assert listed[done.snapshot_id].engine == "physical"  # snapshot:list's Engine column
    with conn.cursor() as cur:
        cur.execute("DELETE FROM orders")
        cur.execute("DROP VIEW big_orders")
    restored = operations.start_restore(ctx, env, done.snapshot_id)
    assert restored.result == "success"
    assert db_state(conn, fresh_db) == before


def test_a_table_altered_before_the_point_and_not_copied_as_pages_fails_the_snapshot(
        mariadb, fresh_db, tmp_path, monkeypatch):
    """A paged table mariadb-backup did not copy (imported since the last checkpoint) is
    dumped as rows at the point, in the definition read before it: an ALTER committed in
    between fails the snapshot in one line, lists nothing, and leaves no work file (its
    rows would have been read in the new definition and restored into the old one). The
    skipped copy is made at the point by removing the work copy's ``.ibd``."""
    conn = mariadb.connect(fresh_db)
    _orders(conn)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    altered: list[object] = []
    monkeypatch.setitem(faults.SEAMS, "mysql.physical.ddl_read", _ddl_at(
        mariadb, fresh_db, "ALTER TABLE orders ADD COLUMN note INT DEFAULT 7", altered))

    def not_copied() -> None:  # its tablespace, copied or re-copied (.new), not there
        copies = [p for p in (ctx.config.state_dir / "physical").rglob("backup/*/orders.*")
                  if p.suffix in (".ibd", ".new")]
        assert copies
        for p in copies:
            p.unlink()

    monkeypatch.setitem(faults.SEAMS, "mysql.physical.point", not_copied)
    with pytest.raises(ServiceUnavailable) as failed:
        operations.start_backup(ctx, env, live=True)
    assert str(failed.value) == ("a DDL statement changed table `orders` during the live "
                                 "snapshot; take the snapshot again, or take it without "
                                 "--live"), str(failed.value)
    assert len(altered) == 1
    assert listing.list_snapshots(ctx, env) == []
    assert not any(p.is_file() for p in (ctx.config.state_dir / "physical").rglob("*"))


def test_a_live_snapshot_whose_storing_ahead_fails_stores_after_prepare(
        mariadb, fresh_db, tmp_path, monkeypatch):
    """Storing the copied tablespaces ahead of prepare is speculative: when it fails, the
    snapshot stores them after prepare as before, says so, and restores exactly."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        for sql in ("CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB",
                    "INSERT INTO orders SELECT seq, SHA2(seq, 256) FROM seq_1_to_5000",
                    "CREATE TABLE items (id INT PRIMARY KEY, n INT) ENGINE=InnoDB",
                    "INSERT INTO items SELECT seq, seq FROM seq_1_to_100"):
            cur.execute(sql)
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")

    def fail() -> None:
        raise OSError("no room for the pages stored ahead")

    monkeypatch.setitem(faults.SEAMS, "mysql.physical.ahead", fail)
    done = operations.start_backup(ctx, env, live=True)
    assert done.result == "success"
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any(m.startswith("storing the copied tablespaces ahead of prepare stopped "
                            "(OSError: no room") for m in log), log
    assert not any("stored ahead of prepare;" in m for m in log), log
    assert any("stored 2 InnoDB tables as pages" in m for m in log), log
    with conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id % 2 = 0")
        cur.execute("DROP TABLE items")
    assert operations.start_restore(ctx, env, done.snapshot_id).result == "success"
    assert db_state(conn, fresh_db) == before


@pytest.mark.parametrize("point", ["mysql.physical.prepare", "mysql.physical.backed_up"])
def test_a_live_backup_killed_in_mariadb_backups_steps_lists_nothing_and_is_swept(
        mariadb, fresh_db, tmp_path, point):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    cli = Cli(tmp_path, {**cli_env(), "SNAPKEEP_CRASH_AT": point})
    res = cli.run("snapshot:create", "--live", "-e", "dev", check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    work = ctx.config.state_dir / "physical" / "dev"
    assert any(work.rglob("ibdata1"))  # mariadb-backup's copy, left by the kill
    assert db_state(conn, fresh_db) == before
    assert listing.list_snapshots(ctx, env) == []
    done = operations.start_backup(ctx, env, live=False)  # the next backup sweeps it
    assert done.result == "success"
    assert not any(p.is_file() for p in work.rglob("*"))
    assert [s.id for s in listing.list_snapshots(ctx, env)] == [done.snapshot_id]


@pytest.mark.parametrize("extra", ["", "point_in_time = true\n"])
def test_the_default_engine_is_auto_and_takes_pages_also_where_point_in_time_is_on(
        mariadb, fresh_db, tmp_path, extra):
    """``auto`` is the default and takes pages on a local server; a physical snapshot is a
    point-in-time base like a logical one (tests/e2e/cli/test_restore_at_physical.py)."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), None, extra)
    assert env.engine == "auto"
    done = operations.start_backup(ctx, env, live=False)
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any(m.startswith("engine auto: physical") for m in log), log
    manifest = ctx.repository.load_snapshot(done.snapshot_id)
    assert manifest.services["database"].get("engine") == "physical"


def test_a_backup_killed_while_its_tables_are_flushed_for_export_frees_them(
        mariadb, fresh_db, tmp_path):
    """Not live, the tables are read in place under ``FLUSH TABLES … FOR EXPORT``: a kill
    there lists nothing, and the server drops the lock (and its .cfg files) with the
    connection — writes go through at once, the next backup succeeds."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    cli = Cli(tmp_path, {**cli_env(), "SNAPKEEP_CRASH_AT": "mysql.physical.exported"})
    res = cli.run("snapshot:create", "-e", "dev", check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert db_state(conn, fresh_db) == before
    assert listing.list_snapshots(ctx, env) == []
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute("INSERT INTO t VALUES (3)")  # no lock left behind
    assert not list(mariadb.datadir.glob(f"{fresh_db}/*.cfg"))
    done = operations.start_backup(ctx, env, live=False)
    assert done.result == "success"
    assert [s.id for s in listing.list_snapshots(ctx, env)] == [done.snapshot_id]


def test_a_live_snapshot_under_continuous_writes_restores_to_one_point(mariadb, fresh_db,
                                                                        tmp_path):
    """The issue's test: a writer inserts orders with their items in one transaction and
    bumps a counter row (InnoDB, stored as pages), then logs the order in a MyISAM table
    (rows, read at the logical dump's point), all through ``snapshot:create --live``. One
    point: every order has all its items, the counter equals the row count, and the MyISAM
    log holds every order but at most the one being written, none it does not hold."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        for sql in ("CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT) "
                    "ENGINE=InnoDB",
                    "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT, "
                    "n INT, KEY (order_id)) ENGINE=InnoDB",
                    "CREATE TABLE counter (name VARCHAR(10) PRIMARY KEY, n INT) ENGINE=InnoDB",
                    "INSERT INTO counter VALUES ('orders', 0)",
                    "CREATE TABLE order_log (order_id INT PRIMARY KEY) ENGINE=MyISAM"):
            cur.execute(sql)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    stop = threading.Event()
    written: list[object] = []

    thread = threading.Thread(target=order_writer(
        lambda: mariadb.connect(fresh_db), stop, written,
        "INSERT INTO orders (total) VALUES (3)", items=3))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(written) < 20:  # writing before the snapshot starts
            assert time.monotonic() < deadline, written
            stop.wait(0.01)
        before = len(written)
        done = operations.start_backup(ctx, env, live=True)
        during = len(written) - before
    finally:
        stop.set()
        thread.join(60)
    assert all(isinstance(w, int) for w in written), written[-1]
    assert done.result == "success"
    assert during > 0, "the writer wrote while the snapshot ran"
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any("kept at its BLOCK_COMMIT point" in m for m in log), log
    assert any("stored 3 InnoDB tables as pages" in m for m in log), log
    # stored ahead of prepare, then again as prepare left them: what is restored below
    assert any("tablespaces stored ahead of prepare" in m for m in log), log
    assert ctx.repository.load_snapshot(done.snapshot_id).services["database"][
        "engine"] == "physical"
    assert operations.start_restore(ctx, env, done.snapshot_id).result == "success"
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM orders")
        orders = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM items i "
                    "WHERE i.order_id = o.id) <> 3")
        incomplete = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM items WHERE order_id NOT IN (SELECT id FROM orders)")
        orphans = cur.fetchone()[0]
        cur.execute("SELECT n FROM counter WHERE name = 'orders'")
        counter = cur.fetchone()[0]
        cur.execute("SELECT order_id FROM order_log")
        logged = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT id FROM orders")
        ids = {r[0] for r in cur.fetchall()}
    assert orders >= 20 and incomplete == 0 and orphans == 0
    assert counter == orders
    assert logged <= ids and len(ids - logged) <= 1, (len(ids), len(logged))


def test_killed_while_mariadb_backup_is_held_at_block_commit_the_server_commits_again(
        mariadb, fresh_db, tmp_path):
    """snapkeep stops mariadb-backup at its BLOCK_COMMIT point (no commit on the server
    meanwhile): killed -9 right there, mariadb-backup dies with it (PR_SET_PDEATHSIG), so
    its stage is released and commits go on; the next backup sweeps the leftovers."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1)")
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    cli = Cli(tmp_path, {**cli_env(), "SNAPKEEP_CRASH_AT": "mysql.physical.paused"})
    res = cli.run("snapshot:create", "-e", "dev", "--live", check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    with conn.cursor() as cur:  # blocked by a surviving BLOCK_COMMIT: a timeout error
        cur.execute("SET SESSION lock_wait_timeout = 20, innodb_lock_wait_timeout = 20")
        cur.execute("INSERT INTO t VALUES (2)")
    assert listing.list_snapshots(ctx, env) == []
    done = operations.start_backup(ctx, env, live=True)
    assert done.result == "success"
    assert not any(p.is_file() for p in (ctx.config.state_dir / "physical").rglob("*"))


ALTERS = ["ADD COLUMN note INT DEFAULT 7, ALGORITHM=INSTANT",  # dictionary only
          "ADD COLUMN note INT DEFAULT 7, FORCE",  # a rebuild: a new tablespace
          "ADD INDEX (total)",
          "ALTER COLUMN total SET DEFAULT 5",  # the .frm only
          "COMMENT = 'changed'"]  # the .frm only


def _ddl_at(mariadb: Any, db: str, statement: str, done: list[object]) -> Callable[[], None]:
    """A seam callback: ``statement`` on its own connection, the source's state after it
    appended to ``done``."""
    def run() -> None:
        conn = mariadb.connect(db)
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 60")
            cur.execute(statement)
        done.append(db_state(conn, db))
        conn.close()
    return run


def _orders(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT) "
                    "ENGINE=InnoDB")
        cur.execute("INSERT INTO orders (total) VALUES (10), (20), (30)")
        cur.execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB")
        cur.execute("INSERT INTO notes VALUES (1, 'kept')")


@pytest.mark.parametrize("alter", ALTERS)
def test_a_ddl_committed_between_the_ddl_read_and_the_point_is_read_again(
        mariadb, fresh_db, tmp_path, monkeypatch, alter):
    """A live snapshot reads the DDL before mariadb-backup's point: an ALTER of a paged
    table committed right after that read (``seam("mysql.physical.ddl_read")``) gives
    pages of the new definition. The snapshot sees it (InnoDB dictionary fingerprints),
    reads that table's DDL again after mariadb-backup, and restores exactly the source as
    it was at the point (nothing else writes)."""
    conn = mariadb.connect(fresh_db)
    _orders(conn)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    altered: list[object] = []
    monkeypatch.setitem(faults.SEAMS, "mysql.physical.ddl_read",
                        _ddl_at(mariadb, fresh_db, f"ALTER TABLE orders {alter}", altered))
    done = operations.start_backup(ctx, env, live=True)
    assert done.result == "success"
    assert len(altered) == 1
    with conn.cursor() as cur:
        cur.execute("DROP TABLE orders")
        cur.execute("DELETE FROM notes")
    assert operations.start_restore(ctx, env, done.snapshot_id).result == "success"
    assert db_state(conn, fresh_db) == altered[0]
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    again = [m for m in log if "its DDL was read again" in m]
    assert len(again) == 1 and "`orders`" in again[0], log


def test_a_ddl_committed_again_before_the_ddl_is_read_again_fails_the_snapshot(
        mariadb, fresh_db, tmp_path, monkeypatch):
    """The same ALTER, then another one after mariadb-backup's point, before the DDL is read
    again (``seam("mysql.physical.finished")``): the definition of the pages cannot be
    read back, so the snapshot fails with one line and lists nothing."""
    conn = mariadb.connect(fresh_db)
    _orders(conn)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    altered: list[object] = []
    monkeypatch.setitem(faults.SEAMS, "mysql.physical.ddl_read", _ddl_at(
        mariadb, fresh_db, f"ALTER TABLE orders {ALTERS[0]}", altered))
    monkeypatch.setitem(faults.SEAMS, "mysql.physical.finished", _ddl_at(
        mariadb, fresh_db, "ALTER TABLE orders ADD COLUMN late INT, ALGORITHM=INSTANT",
        altered))
    with pytest.raises(ServiceUnavailable) as failed:
        operations.start_backup(ctx, env, live=True)
    assert len(altered) == 2
    assert str(failed.value) == ("a DDL statement changed table `orders` during the live "
                                 "snapshot; take the snapshot again, or take it without "
                                 "--live"), str(failed.value)
    assert failed.value.exit_code == ServiceUnavailable.exit_code
    assert listing.list_snapshots(ctx, env) == []
