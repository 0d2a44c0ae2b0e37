"""Restoring into a damaged live database: whatever state it is in (dropped, empty, objects
dropped or replaced by objects of another kind under the same name, bodies changed, extra
objects), the restore brings back exactly the snapshot, through the same shadow build and
journaled cut-over — and a rollback puts the damaged state back exactly.

The schema has what makes that hard: foreign keys, sequences used by column defaults
(``SHOW CREATE TABLE`` prints those qualified with the database), a function used by
views and named qualified in one, views on views, triggers, an event, a procedure.
(MariaDB refuses stored functions in column defaults, generated columns and CHECK
constraints — ER 1901 — so sequences are the only objects a table's definition can use.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from snapkeep.engines.mysql import (
    MySQLTarget,
    check_restore_target,
    cleanup_leftovers,
    dump_database,
    prepare_restore,
    renamed_description,
)
from snapkeep.engines.mysql.names import shadow_name
from snapkeep.errors import PermissionDenied
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.dbstate import assert_same, databases, db_state, no_helpers_left, q
from tests.helpers.restore_child import RESTORE
from tests.helpers.sql import run


def schema(db: str) -> list[str]:
    return [
        f"ALTER DATABASE {q(db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci "
        f"COMMENT 'the shop, before the damage'",
        "CREATE SEQUENCE order_seq START WITH 1000 INCREMENT BY 10",
        "CREATE SEQUENCE ticket_seq",
        "CREATE SEQUENCE spare_seq START WITH 7",
        "CREATE TABLE store (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB",
        "CREATE TABLE customer (id INT PRIMARY KEY, store_id INT, email VARCHAR(80), "
        " KEY idx_email (email), "
        " CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (id)) "
        " ENGINE=InnoDB",
        "CREATE TABLE orders (id INT PRIMARY KEY, number BIGINT NOT NULL DEFAULT "
        " NEXTVAL(order_seq), customer_id INT, total DECIMAL(12,2), "
        " CONSTRAINT fk_order_customer FOREIGN KEY (customer_id) REFERENCES customer (id) "
        " ON DELETE CASCADE) ENGINE=InnoDB",
        "CREATE TABLE ticket (id BIGINT PRIMARY KEY DEFAULT (NEXT VALUE FOR ticket_seq), "
        " note VARCHAR(80) COMMENT 'mentions `order_seq`.`x` in a comment') ENGINE=Aria",
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(80)) ENGINE=InnoDB",
        "CREATE FUNCTION money(x DECIMAL(12,2)) RETURNS VARCHAR(20) DETERMINISTIC "
        " RETURN CONCAT(FORMAT(x, 2), ' EUR')",
        "CREATE PROCEDURE count_orders(OUT n INT) SELECT COUNT(*) INTO n FROM orders",
        "CREATE VIEW order_totals AS SELECT o.customer_id, SUM(o.total) AS total, "
        " money(SUM(o.total)) AS shown FROM orders o GROUP BY o.customer_id",
        "CREATE VIEW big_spenders AS SELECT customer_id, shown FROM order_totals "
        " WHERE total > 500",
        f"CREATE VIEW ticket_money AS SELECT id, {q(db)}.money(id) AS shown FROM ticket",
        "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
        " INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id))",
        "CREATE TRIGGER customer_bu BEFORE UPDATE ON customer FOR EACH ROW "
        " SET NEW.email = LOWER(NEW.email)",
        "CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' "
        " DISABLE DO DELETE FROM audit WHERE id < 10",
        "INSERT INTO store VALUES (1, 'one'), (2, 'two')",
        "INSERT INTO customer (id, store_id, email) SELECT seq, 1 + seq % 2, "
        " CONCAT('c', seq, '@example.invalid') FROM seq_1_to_300",
        "INSERT INTO orders (id, customer_id, total) SELECT seq, 1 + seq % 300, seq * 1.5 "
        " FROM seq_1_to_700",
        "INSERT INTO ticket (note) SELECT CONCAT('ticket ', seq) FROM seq_1_to_50",
        "DO NEXTVAL(spare_seq)",
    ]


def names(conn: Any, sql: str, *args: str) -> list[tuple[str, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _drop_all(kind: str) -> Callable[[Any, str], None]:
    def damage(conn: Any, db: str) -> None:
        if kind == "tables":
            run(conn, *["SET SESSION foreign_key_checks = 0"] + [
                f"DROP TABLE {q(t)}" for (t,) in names(
                    conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                          "TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", db)]
                + ["SET SESSION foreign_key_checks = 1"])
        elif kind in ("views", "sequences"):
            wanted = "VIEW" if kind == "views" else "SEQUENCE"
            run(conn, *[f"DROP {wanted} {q(t)}" for (t,) in names(
                conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                      "TABLE_SCHEMA = %s AND TABLE_TYPE = %s", db, wanted)])
        elif kind == "routines":
            run(conn, *[f"DROP {k} {q(n)}" for k, n in names(
                conn, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
                      "WHERE ROUTINE_SCHEMA = %s", db)])
        elif kind == "triggers":
            run(conn, *[f"DROP TRIGGER {q(n)}" for (n,) in names(
                conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                      "WHERE TRIGGER_SCHEMA = %s", db)])
        elif kind == "events":
            run(conn, *[f"DROP EVENT {q(n)}" for (n,) in names(
                conn, "SELECT EVENT_NAME FROM information_schema.EVENTS "
                      "WHERE EVENT_SCHEMA = %s", db)])
    return damage


def _empty(conn: Any, db: str) -> None:
    for kind in ("views", "triggers", "tables", "sequences", "routines", "events"):
        _drop_all(kind)(conn, db)


def _drop_database(conn: Any, db: str) -> None:
    run(conn, f"DROP DATABASE {q(db)}")


def _statements(*sql: str) -> Callable[[Any, str], None]:
    return lambda conn, db: run(conn, *sql)


DAMAGES: dict[str, Callable[[Any, str], None]] = {
    "database dropped": _drop_database,
    "database empty": _empty,
    "tables dropped": _drop_all("tables"),
    "views dropped": _drop_all("views"),
    "sequences dropped": _drop_all("sequences"),
    "routines dropped": _drop_all("routines"),
    "triggers dropped": _drop_all("triggers"),
    "events dropped": _drop_all("events"),
    "table replaced by a view": _statements(
        "DROP TABLE orders", "CREATE VIEW orders AS SELECT id, email FROM customer"),
    "view replaced by a table": _statements(
        "DROP VIEW order_totals", "CREATE TABLE order_totals (x INT) ENGINE=InnoDB",
        "INSERT INTO order_totals VALUES (1)"),
    "table replaced by a sequence": _statements("DROP TABLE audit", "CREATE SEQUENCE audit"),
    "sequence replaced by a table": _statements(
        "DROP SEQUENCE order_seq", "CREATE TABLE order_seq (id INT PRIMARY KEY) ENGINE=InnoDB"),
    "view replaced by a sequence": _statements("DROP VIEW big_spenders",
                                               "CREATE SEQUENCE big_spenders"),
    "bodies changed": _statements(
        "DROP FUNCTION money",
        "CREATE FUNCTION money(x DECIMAL(12,2)) RETURNS VARCHAR(20) DETERMINISTIC "
        " RETURN CONCAT('$', x)",
        "DROP PROCEDURE count_orders", "CREATE PROCEDURE count_orders(OUT n INT) SET n = 0",
        "DROP TRIGGER orders_ai", "CREATE TRIGGER orders_ai BEFORE INSERT ON orders FOR EACH "
        " ROW SET NEW.total = 0",
        "ALTER EVENT purge_audit ON SCHEDULE EVERY 2 HOUR DO DELETE FROM audit"),
    "extra objects and changed rows": _statements(
        "CREATE TABLE extra_table (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE VIEW extra_view AS SELECT 1 AS one",
        "CREATE SEQUENCE extra_seq", "CREATE PROCEDURE extra_proc() SELECT 1",
        "CREATE TRIGGER extra_trg BEFORE DELETE ON store FOR EACH ROW SET @x = 1",
        "CREATE EVENT extra_event ON SCHEDULE EVERY 1 HOUR DISABLE DO SELECT 1",
        "UPDATE customer SET email = 'X' WHERE id < 50", "DELETE FROM orders WHERE id > 600",
        "INSERT INTO orders (id, customer_id, total) VALUES (9999, 1, 1)",
        "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_bin COMMENT 'changed'"),
}


@pytest.fixture
def shop(mariadb, fresh_db, tmp_path):
    """(connection, target, description, repository, state before the damage)."""
    conn = mariadb.connect(fresh_db)
    run(conn, *schema(fresh_db))
    before = db_state(conn, fresh_db)
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, fresh_db)
    description = dump_database(target, repo, NullReporter())
    repo.flush()
    yield conn, target, description, repo, before
    conn.close()


def state_or_none(conn: Any, db: str) -> dict[str, Any] | None:
    return db_state(conn, db) if db in databases(conn) else None


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_restore_brings_back_the_snapshot_whatever_the_damage(shop, fresh_db, damage):
    conn, target, description, repo, before = shop
    DAMAGES[damage](conn, fresh_db)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    restore.swap()
    restore.finish()
    assert_same(db_state(conn, fresh_db), before, f"restored after {damage}")
    no_helpers_left(conn, fresh_db)
    # the restored defaults use the live database's sequences
    run(conn, "INSERT INTO orders (id, customer_id, total) VALUES (5000, 1, 2)")
    with conn.cursor() as cur:
        cur.execute("SELECT number FROM orders WHERE id = 5000")
        assert cur.fetchone()[0] == before["tables"]["order_seq"]["state"][0][0]


@pytest.mark.parametrize("damage", ["database dropped", "tables dropped",
                                    "table replaced by a view", "view replaced by a table",
                                    "table replaced by a sequence", "sequence replaced by a table",
                                    "extra objects and changed rows"])
def test_a_rollback_puts_the_damaged_state_back_exactly(shop, fresh_db, damage):
    conn, target, description, repo, _before = shop
    DAMAGES[damage](conn, fresh_db)
    damaged = state_or_none(conn, fresh_db)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    restore.swap()
    restore.rollback()
    assert state_or_none(conn, fresh_db) == damaged
    no_helpers_left(conn, fresh_db)


def test_sequence_defaults_point_at_the_shadow_while_loading_and_at_live_after(shop, fresh_db):
    conn, target, description, repo, _before = shop
    DAMAGES["sequences dropped"](conn, fresh_db)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    shadow = shadow_name(fresh_db)
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(shadow)}.orders")
        assert f"nextval({q(shadow)}.`order_seq`)" in cur.fetchone()[1]
    restore.swap()
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(fresh_db)}.orders")
        assert f"nextval({q(fresh_db)}.`order_seq`)" in cur.fetchone()[1]
    restore.finish()


def test_a_restore_into_a_database_of_another_name_points_its_self_references_there(
        shop, fresh_db, mariadb):
    """The verify drill's case: a scratch database that does not exist yet."""
    conn, target, description, repo, before = shop
    scratch = fresh_db + "_scratch"
    try:
        restore = prepare_restore(target.with_database(scratch), description, repo,
                                  NullReporter(), threads=2)
        restore.swap()
        restore.finish()
        copy = db_state(conn, scratch)
        assert_same(db_state(conn, fresh_db), before, "the source database")
        with conn.cursor() as cur:
            cur.execute(f"SHOW CREATE TABLE {q(scratch)}.orders")
            assert f"nextval({q(scratch)}.`order_seq`)" in cur.fetchone()[1]
            cur.execute(f"SHOW CREATE VIEW {q(scratch)}.ticket_money")
            assert f"{q(scratch)}.`money`(" in cur.fetchone()[1]
        assert copy["tables"]["orders"]["checksum"] == before["tables"]["orders"]["checksum"]
        assert copy["database"].replace(scratch, fresh_db) == before["database"]
        no_helpers_left(conn, scratch)
    finally:
        run(conn, f"DROP DATABASE IF EXISTS {q(scratch)}")


# -- killed in the new steps of the cut-over ------------------------------------------------

def _kill_restore(mariadb, tmp_path, description, db: str, point: str) -> None:
    desc_file = tmp_path / "desc.json"
    desc_file.write_text(json.dumps(description))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), SNAPKEEP_CRASH_AT=point)
    res = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "repo"),
                          str(desc_file), str(mariadb.port), db, "finish"],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == -signal.SIGKILL, f"not killed at {point}:\n{res.stderr[-6000:]}"


@pytest.mark.parametrize("point", ["mysql.after-rename", "mysql.defaults-repointed",
                                   "mysql.objects-half"])
@pytest.mark.parametrize("keep_new", [None, False])
def test_killed_after_the_rename_settles_to_entirely_new_or_entirely_old(
        shop, fresh_db, mariadb, tmp_path, point, keep_new):
    conn, target, description, _repo, before = shop
    DAMAGES["table replaced by a view"](conn, fresh_db)
    DAMAGES["sequence replaced by a table"](conn, fresh_db)
    damaged = db_state(conn, fresh_db)
    _kill_restore(mariadb, tmp_path, description, fresh_db, point)
    cleanup_leftovers(target, NullReporter(), keep_new=keep_new)
    cleanup_leftovers(target, NullReporter())
    assert_same(db_state(conn, fresh_db), before if keep_new is None else damaged,
                f"settled after a kill at {point}")
    no_helpers_left(conn, fresh_db)


def test_killed_before_creating_a_dropped_database_leaves_it_dropped(
        shop, fresh_db, mariadb, tmp_path):
    conn, target, description, _repo, before = shop
    _drop_database(conn, fresh_db)
    _kill_restore(mariadb, tmp_path, description, fresh_db, "mysql.journal-written")
    cleanup_leftovers(target, NullReporter())
    assert fresh_db not in databases(conn)
    no_helpers_left(conn, fresh_db)
    _kill_restore(mariadb, tmp_path, description, fresh_db, "mysql.journal-written")
    cleanup_leftovers(target, NullReporter(), keep_new=True)
    assert_same(db_state(conn, fresh_db), before, "completed by the caller")


# -- the check before a restore ---------------------------------------------------------------

def test_a_missing_database_is_refused_only_without_the_create_grant(mariadb, fresh_db):
    admin = mariadb.connect()
    missing = fresh_db + "_gone"
    user = f"lim{os.getpid()}"
    run(admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
        f"GRANT SELECT ON {q(fresh_db)}.* TO '{user}'@'%'")
    try:
        limited = MySQLTarget(mariadb.host, mariadb.port, user, "pw", missing)
        with pytest.raises(PermissionDenied) as e:
            check_restore_target(limited)
        assert f"GRANT CREATE ON {q(missing)}.*" in str(e.value)
        run(admin, f"GRANT CREATE ON `{fresh_db}\\_%`.* TO '{user}'@'%'")
        assert check_restore_target(limited)
        root = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, missing)
        assert check_restore_target(root)
    finally:
        run(admin, f"DROP USER '{user}'@'%'")
        admin.close()


def test_a_table_restore_moves_a_view_holding_its_name_aside(shop, fresh_db):
    conn, target, description, repo, before = shop
    DAMAGES["table replaced by a view"](conn, fresh_db)
    damaged = db_state(conn, fresh_db)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2,
                              tables=["orders"])
    restore.swap()
    restore.rollback()
    assert_same(db_state(conn, fresh_db), damaged, "rolled back")
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2,
                              tables=["orders"])
    restore.swap()
    restore.finish()
    after = db_state(conn, fresh_db)
    assert after["tables"]["orders"] == before["tables"]["orders"]
    assert after["triggers"]["orders_ai"] == before["triggers"]["orders_ai"]
    assert {k: v for k, v in after["tables"].items() if k != "orders"} == {
        k: v for k, v in damaged["tables"].items() if k != "orders"}
    no_helpers_left(conn, fresh_db)


def test_a_snapshot_of_a_scratch_copy_renamed_for_the_live_database_restores_into_it(
        mariadb, fresh_db, tmp_path):
    """An import dumps a scratch database and restores it as the environment's one."""
    conn = mariadb.connect()
    scratch = fresh_db + "_import"
    run(conn, f"CREATE DATABASE {q(scratch)}")
    try:
        conn.select_db(scratch)
        run(conn, *schema(scratch))
        expected = db_state(conn, scratch)
        repo = Repository.init(LocalBackend(tmp_path / "repo"))
        source = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, scratch)
        description = renamed_description(dump_database(source, repo, NullReporter()),
                                          fresh_db)
    finally:
        run(conn, f"DROP DATABASE IF EXISTS {q(scratch)}")
    run(conn, f"DROP DATABASE {q(fresh_db)}")
    target = source.with_database(fresh_db)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    restore.swap()
    restore.finish()
    restored = db_state(conn, fresh_db)
    assert repr(restored).replace(q(fresh_db), q(scratch)) == repr(expected)
    conn.close()
