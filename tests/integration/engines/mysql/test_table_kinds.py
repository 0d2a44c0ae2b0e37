"""Every kind of table the server can make is in the snapshot, or named loudly.

The first test is driven by what the server reports: every ``TABLE_TYPE`` it lists and
every engine ``information_schema.ENGINES`` says it supports gets one object with rows; a
snapshot, the database emptied, a restore, and each object is either back identical
(``db_state``) or named by a ``warning:`` line of the snapshot. A type or engine that
this file has no recipe for fails the test until it is handled. The others are round
trips of system-versioned tables: history rows with their exact ROW_START/ROW_END.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from snapkeep.engines.mysql import dump_database, hold_writes, prepare_restore
from snapkeep.engines.mysql import ranges as ranges_mod
from snapkeep.engines.mysql.names import shadow_name
from snapkeep.engines.mysql.versioning import system_time
from snapkeep.errors import PermissionDenied
from snapkeep.sandbox import PrivateMariaDB
from tests.helpers.dbstate import (
    all_versions,
    assert_same,
    db_state,
    q,
    restore_database,
    target_for,
)
from tests.helpers.recording import Recorder
from tests.helpers.sql import run
from tests.helpers.stock_client import export_and_reload

# One object of each TABLE_TYPE, with rows. TEMPORARY is made on its own session below.
TYPE_RECIPES: dict[str, list[str]] = {
    "BASE TABLE": ["CREATE TABLE kind_base (id INT PRIMARY KEY, v VARCHAR(20))",
                   "INSERT INTO kind_base VALUES (1, 'one'), (2, 'two')"],
    "VIEW": ["CREATE VIEW kind_view AS SELECT id, UPPER(v) AS v FROM kind_base"],
    "SEQUENCE": ["CREATE SEQUENCE kind_seq START WITH 10", "DO NEXTVAL(kind_seq)"],
    "SYSTEM VERSIONED": ["CREATE TABLE kind_versioned (id INT PRIMARY KEY, v INT) "
                         "WITH SYSTEM VERSIONING",
                         "INSERT INTO kind_versioned VALUES (1, 1), (2, 2)",
                         "UPDATE kind_versioned SET v = v + 10", "DELETE FROM kind_versioned "
                         "WHERE id = 2"],
    "TEMPORARY": [],
}
# Listed by the server, but only for its own schemas: no user database can hold one.
NOT_IN_A_USER_DATABASE = {"SYSTEM VIEW": "information_schema's own tables"}

# Engines needing a table of another shape; the rest get GENERIC.
GENERIC = ("CREATE TABLE {t} (id INT NOT NULL, v VARCHAR(20) NOT NULL, PRIMARY KEY (id)) "
           "ENGINE={e}")
ENGINE_RECIPES: dict[str, list[str]] = {
    "CSV": ["CREATE TABLE {t} (id INT NOT NULL, v VARCHAR(20) NOT NULL) ENGINE=CSV"],
    "ARCHIVE": ["CREATE TABLE {t} (id INT NOT NULL, v VARCHAR(20) NOT NULL) ENGINE=ARCHIVE"],
    "MRG_MyISAM": ["CREATE TABLE {t}_part (id INT NOT NULL, v VARCHAR(20) NOT NULL, "
                   "PRIMARY KEY (id)) ENGINE=MyISAM",
                   "INSERT INTO {t}_part VALUES (7, 'merged')",
                   "CREATE TABLE {t} (id INT NOT NULL, v VARCHAR(20) NOT NULL, KEY (id)) "
                   "ENGINE=MRG_MyISAM UNION=({t}_part) INSERT_METHOD=LAST"],
    "FEDERATED": ["CREATE TABLE {t} (id INT NOT NULL, v VARCHAR(20) NOT NULL, "
                  "PRIMARY KEY (id)) ENGINE=FEDERATED "
                  "CONNECTION='mysql://root@127.0.0.1:{port}/{db}/kind_base'"],
}
# Engines the server lists but whose tables live nowhere a user creates them.
NOT_CREATABLE = {"SEQUENCE": "the engine of the virtual seq_1_to_n tables",
                 "PERFORMANCE_SCHEMA": "performance_schema's own tables"}


def rows(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def empty_database(conn: Any, db: str) -> None:
    """Drop every table, view and sequence of ``db`` (the database itself stays)."""
    conn.select_db(db)
    run(conn, "SET SESSION foreign_key_checks = 0")
    for name, kind in rows(conn, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                                 "WHERE TABLE_SCHEMA = %s", (db,)):
        what = {"VIEW": "VIEW", "SEQUENCE": "SEQUENCE"}.get(kind, "TABLE")
        run(conn, f"DROP {what} IF EXISTS {q(name)}")
    run(conn, "SET SESSION foreign_key_checks = 1")


def snapshot_and_restore(mariadb: Any, db: str, repo: Any) -> tuple[dict[str, Any], Recorder]:
    target = target_for(mariadb, db)
    progress = Recorder()
    description = dump_database(target, repo, progress)
    conn = mariadb.connect(db, autocommit=True)
    try:
        empty_database(conn, db)
    finally:
        conn.close()
    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    prepared.finish()
    return description, progress


def warned(progress: Recorder, name: str) -> list[str]:
    return [line for line in progress.lines
            if line.startswith("warning:") and q(name) in line]


def test_every_table_type_and_engine_the_server_reports_is_restored_or_named(
        mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db, autocommit=True)
    temp_session = mariadb.connect(fresh_db, autocommit=True)
    for statements in TYPE_RECIPES.values():
        run(conn, *statements)
    run(temp_session, "CREATE TEMPORARY TABLE kind_temp (id INT PRIMARY KEY)",
        "INSERT INTO kind_temp VALUES (1)")
    made_types = {r[0] for r in rows(temp_session, "SELECT DISTINCT TABLE_TYPE FROM "
                                                  "information_schema.TABLES")}
    assert made_types - NOT_IN_A_USER_DATABASE.keys() <= TYPE_RECIPES.keys(), (
        "the server reports a TABLE_TYPE with no recipe here: teach snapkeep (schema.py) "
        "and this test about it")
    # MariaDB lists a session's temporary tables (to that session only) from 11.2 on
    assert TYPE_RECIPES.keys() - {"TEMPORARY"} <= made_types

    engines = [r[0] for r in rows(conn, "SELECT ENGINE FROM information_schema.ENGINES "
                                        "WHERE SUPPORT IN ('YES', 'DEFAULT') ORDER BY ENGINE")]
    assert engines
    created: list[str] = []
    for engine in engines:
        table = f"eng_{engine.lower()}"
        statements = [s.format(t=table, e=engine, port=mariadb.port, db=fresh_db)
                      for s in ENGINE_RECIPES.get(engine, [GENERIC])]
        if engine in NOT_CREATABLE:
            with pytest.raises(Exception):  # noqa: B017 - any refusal of the server
                run(conn, *statements)
            continue
        run(conn, *statements)
        if engine != "MRG_MyISAM":
            run(conn, f"INSERT INTO {q(table)} VALUES (1, 'first'), (2, 'second')")
        created.append(table)
    before = db_state(conn, fresh_db)
    assert set(created) <= before["tables"].keys()

    description, progress = snapshot_and_restore(mariadb, fresh_db, repo)

    after = db_state(conn, fresh_db)
    names = set(before["tables"]) - {"kind_temp"}  # the test session's own temporary table
    for name in sorted(names):
        if after["tables"].get(name) != before["tables"][name]:
            assert warned(progress, name), (
                f"{name} ({before['tables'][name]!r:.200}) was neither restored identical "
                f"(now {after['tables'].get(name)!r:.200}) nor named by a warning:\n"
                + "\n".join(progress.lines))
    for key in ("triggers", "routines", "events", "database"):
        assert after[key] == before[key]
    # TEMPORARY: it belongs to its session; the snapshot's sessions never see it.
    assert "kind_temp" not in {t["name"] for t in description["tables"]}
    assert rows(temp_session, "SELECT * FROM kind_temp") == [(1,)]
    temp_session.close()


# -- system-versioned round trips --------------------------------------------------------------

VERSIONED = [
    # explicit period columns, one of them invisible
    "CREATE TABLE explicit (id INT PRIMARY KEY, v VARCHAR(20), "
    "s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, "
    "e TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, "
    "PERIOD FOR SYSTEM_TIME (s, e)) WITH SYSTEM VERSIONING",
    # implicit ROW_START/ROW_END, a column without versioning, a secondary key
    "CREATE TABLE implicit (id INT AUTO_INCREMENT PRIMARY KEY, v INT, "
    "note VARCHAR(20) WITHOUT SYSTEM VERSIONING, KEY (v)) WITH SYSTEM VERSIONING",
    # history partitions, no primary key
    "CREATE TABLE parted (a INT, b VARCHAR(10)) WITH SYSTEM VERSIONING "
    "PARTITION BY SYSTEM_TIME LIMIT 2 (PARTITION p0 HISTORY, PARTITION p1 HISTORY, "
    "PARTITION pn CURRENT)",
    # a non-transactional engine
    "CREATE TABLE aria_v (id INT PRIMARY KEY, v INT) ENGINE=Aria WITH SYSTEM VERSIONING",
]
CHANGES = [
    "INSERT INTO explicit (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    "UPDATE explicit SET v = CONCAT(v, '+') WHERE id < 3",
    "DELETE FROM explicit WHERE id = 2",
    "INSERT INTO implicit (v, note) VALUES (1, 'x'), (2, 'y')",
    "UPDATE implicit SET v = v * 10",
    "UPDATE implicit SET note = 'unversioned'",
    "DELETE FROM implicit WHERE v = 20",
    "INSERT INTO parted VALUES (1, 'one'), (2, 'two')",
    "UPDATE parted SET b = CONCAT(b, '!')",
    "UPDATE parted SET b = CONCAT(b, '?') WHERE a = 1",
    "DELETE FROM parted WHERE a = 2",
    "INSERT INTO aria_v VALUES (1, 1)",
    "UPDATE aria_v SET v = 2",
]


def versions(conn: Any, db: str) -> dict[str, list[tuple[Any, ...]]]:
    conn.select_db(db)
    out = {}
    for (name,) in rows(conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                              "TABLE_SCHEMA = %s AND TABLE_TYPE = 'SYSTEM VERSIONED'", (db,)):
        create = rows(conn, f"SHOW CREATE TABLE {q(name)}")[0][1]
        out[name] = all_versions(conn, name, create)
    return out


def make_versioned(mariadb: Any, db: str) -> Any:
    conn = mariadb.connect(db, autocommit=True)
    run(conn, *VERSIONED)
    for sql in CHANGES:
        run(conn, sql)
    return conn


@pytest.mark.parametrize("fmt, use_pump", [(3, True), (3, False), (2, False), (1, True)])
def test_versioned_tables_come_back_with_every_version_and_exact_periods(
        mariadb, fresh_db, repo, fmt, use_pump):
    """In each description format and line encoding (C pump, server-composed lines)."""
    conn = make_versioned(mariadb, fresh_db)
    before, history = db_state(conn, fresh_db), versions(conn, fresh_db)
    assert all(len(v) > rows(conn, f"SELECT COUNT(*) FROM {q(n)}")[0][0]
               for n, v in history.items())  # every table has history rows
    target = target_for(mariadb, fresh_db)
    progress = Recorder()
    description = dump_database(target, repo, progress, fmt=fmt, use_pump=use_pump)
    assert not [line for line in progress.lines if line.startswith("warning:")]
    by_name = {t["name"]: t for t in description["tables"]}
    assert by_name["explicit"]["system_time"] == {"start": "s", "end": "e", "history": True}
    assert by_name["implicit"]["columns"][-2:] == [["ROW_START", "period"],
                                                   ["ROW_END", "period"]]
    assert all(by_name[n]["row_count"] == len(v) for n, v in history.items())

    run(conn, "DROP TABLE explicit", "UPDATE implicit SET v = -1",
        "DELETE HISTORY FROM parted", "INSERT INTO aria_v VALUES (5, 5)")
    assert versions(conn, fresh_db) != history
    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    prepared.finish()

    assert versions(conn, fresh_db) == history
    assert_same(db_state(conn, fresh_db), before)


def test_a_versioned_table_cut_into_several_ranges_keeps_every_version(
        mariadb, fresh_db, repo, monkeypatch):
    monkeypatch.setattr(ranges_mod, "MIN_PART_ROWS", 1000)
    monkeypatch.setattr(ranges_mod, "MAX_PART_ROWS", 1000)
    conn = mariadb.connect(fresh_db, autocommit=True)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
        "INSERT INTO big SELECT seq, 0 FROM seq_1_to_5000",
        "UPDATE big SET v = 1 WHERE id % 3 = 0", "DELETE FROM big WHERE id % 7 = 0",
        "ANALYZE TABLE big")
    history = versions(conn, fresh_db)
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    assert len(description["tables"][0]["parts"]) > 1
    run(conn, "DROP TABLE big")
    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert versions(conn, fresh_db) == history


def test_a_table_versioned_by_transaction_id_is_named_and_keeps_its_current_rows(
        mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db, autocommit=True)
    run(conn, "CREATE TABLE trx (id INT PRIMARY KEY, v INT, "
              "s BIGINT UNSIGNED GENERATED ALWAYS AS ROW START, "
              "e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END, "
              "PERIOD FOR SYSTEM_TIME (s, e)) WITH SYSTEM VERSIONING",
        "INSERT INTO trx (id, v) VALUES (1, 1), (2, 2)", "UPDATE trx SET v = 3 WHERE id = 1")
    current = rows(conn, "SELECT id, v FROM trx ORDER BY id")
    create = rows(conn, "SHOW CREATE TABLE trx")[0][1]

    description, progress = snapshot_and_restore(mariadb, fresh_db, repo)

    assert warned(progress, "trx") and "transaction id" in warned(progress, "trx")[0]
    assert description["tables"][0]["system_time"] == {"start": "s", "end": "e",
                                                       "history": False}
    assert rows(conn, "SELECT id, v FROM trx ORDER BY id") == current
    assert rows(conn, "SHOW CREATE TABLE trx")[0][1] == create


def test_the_period_of_a_table_is_read_from_its_definition():
    assert system_time("CREATE TABLE `t` (\n  `a` int(11) DEFAULT NULL\n) ENGINE=InnoDB "
                       "WITH SYSTEM VERSIONING", {}).to_json() == {
        "start": "ROW_START", "end": "ROW_END", "history": True}
    ddl = ("CREATE TABLE `t` (\n  `a` int(11) COMMENT 'PERIOD FOR SYSTEM_TIME (`x`, `y`)',\n"
           "  `from``s` bigint(20) unsigned GENERATED ALWAYS AS ROW START,\n"
           "  `to` bigint(20) unsigned GENERATED ALWAYS AS ROW END,\n"
           "  PERIOD FOR SYSTEM_TIME (`from``s`, `to`)\n) WITH SYSTEM VERSIONING")
    assert system_time(ddl, {"from`s": "bigint", "to": "bigint"}).to_json() == {
        "start": "from`s", "end": "to", "history": False}


def test_an_export_of_versioned_tables_reloads_their_history_with_the_stock_client(
        mariadb, fresh_db, repo, tmp_path):
    conn = make_versioned(mariadb, fresh_db)
    before, history = db_state(conn, fresh_db), versions(conn, fresh_db)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    conn.close()
    export_and_reload(mariadb, repo, fresh_db, description, tmp_path / "database.sql")
    conn = mariadb.connect(fresh_db)
    assert versions(conn, fresh_db) == history
    assert_same(db_state(conn, fresh_db), before)


def test_a_server_that_cannot_write_periods_refuses_the_restore_and_keeps_its_data(
        mariadb, fresh_db, repo, tmp_path):
    """``secure_timestamp = YES`` forbids writing ROW_START/ROW_END: the restore must be
    refused before the cut-over, naming the table, not load the history as current rows."""
    conn = make_versioned(mariadb, fresh_db)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    conn.close()
    secure = PrivateMariaDB(tmp_path / "secure", ("--secure-timestamp=YES",))
    secure.start()
    try:
        other = secure.connect(autocommit=True)
        run(other, f"CREATE DATABASE {q(fresh_db)}", f"USE {q(fresh_db)}",
            "CREATE TABLE explicit (kept INT)", "INSERT INTO explicit VALUES (42)")
        before = db_state(other, fresh_db)
        with pytest.raises(PermissionDenied) as refused:
            prepare_restore(target_for(secure, fresh_db), description, repo, Recorder())
        assert "secure_timestamp" in str(refused.value) and "`explicit`" in str(refused.value)
        assert db_state(other, fresh_db) == before
        assert {r[0] for r in rows(other, "SHOW DATABASES")} & {shadow_name(fresh_db)} == set()
    finally:
        secure.stop()


def test_hold_writes_holds_the_versioned_tables_too(mariadb, fresh_db):
    conn = make_versioned(mariadb, fresh_db)
    writer = mariadb.connect(fresh_db, autocommit=True)
    run(writer, "SET SESSION lock_wait_timeout = 1")
    with hold_writes(target_for(mariadb, fresh_db), Recorder()):
        with pytest.raises(pymysql.err.OperationalError) as held:
            run(writer, "UPDATE implicit SET v = v + 1")
        assert held.value.args[0] == 1205  # lock wait timeout: the write waited
    run(writer, "UPDATE implicit SET v = v + 1")
    writer.close()
    conn.close()


@pytest.mark.parametrize("period", ["", "trx"])
def test_a_system_versioned_table_with_secondary_keys_is_restored(
        mariadb, fresh_db, repo, period):
    """Found by the generative test: the shadow load adds secondary keys by ALTER TABLE,
    which MariaDB refuses on a system-versioned table unless its session keeps history
    (``system_versioning_alter_history = KEEP``)."""
    conn = mariadb.connect(fresh_db)
    columns = ("s BIGINT UNSIGNED GENERATED ALWAYS AS ROW START INVISIBLE, "
               "e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END INVISIBLE, "
               "PERIOD FOR SYSTEM_TIME (s, e), ") if period == "trx" else ""
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE v (id INT PRIMARY KEY, d DATE NOT NULL, n INT, {columns}"
                    "UNIQUE KEY u (d), KEY k (n)) ENGINE=InnoDB WITH SYSTEM VERSIONING")
        cur.execute("INSERT INTO v VALUES (1, '2020-01-01', 5)")
        cur.execute("UPDATE v SET d = '2021-01-01'")
    before = db_state(conn, fresh_db)
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    with conn.cursor() as cur:
        cur.execute("DROP TABLE v")
    restore_database(target, description, repo)
    if period == "trx":  # current rows only (see the warning test above)
        with conn.cursor() as cur:
            cur.execute("SELECT id, CAST(d AS CHAR), n FROM v")
            assert cur.fetchall() == ((1, "2021-01-01", 5),)
            cur.execute("SHOW CREATE TABLE v")
            assert "UNIQUE KEY `u`" in cur.fetchone()[1]
    else:
        assert_same(db_state(conn, fresh_db), before)
