"""Metadata the server prints with bytes that are not UTF-8 — a binary column's DEFAULT —
is captured and replayed byte for byte (found by the generative test: the snapshot failed
with a bare UnicodeDecodeError)."""

from __future__ import annotations

from snapkeep.engines.mysql import dump_database
from tests.helpers.dbstate import restore_database, target_for
from tests.helpers.recording import Recorder
from tests.helpers.stock_client import export_and_reload

TABLE = ("CREATE TABLE b (id INT PRIMARY KEY, v VARBINARY(10) DEFAULT X'FF00FE5C', "
         "w BINARY(3) DEFAULT 'a\\\\', x VARBINARY(4) DEFAULT X'E9', y BLOB DEFAULT X'C3A9')")


def raw_state(mariadb, db: str) -> tuple:
    conn = mariadb.connect(db, use_unicode=False)
    with conn.cursor() as cur:
        cur.execute("SHOW CREATE TABLE b")
        create = cur.fetchone()[1]
        cur.execute("INSERT INTO b (id) VALUES (2)")  # the defaults, as the server applies them
        cur.execute("SELECT id, HEX(v), HEX(w), HEX(x), HEX(y) FROM b ORDER BY id")
        rows = cur.fetchall()
        cur.execute("DELETE FROM b WHERE id = 2")
    return create, rows


def test_a_binary_default_that_is_not_utf8_is_snapshotted_and_restored(
        mariadb, fresh_db, repo, tmp_path):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute(TABLE)
        cur.execute("INSERT INTO b (id) VALUES (1)")
    before = raw_state(mariadb, fresh_db)
    assert b"\xff" in before[0]  # the server prints the raw bytes: what this test is about
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    with conn.cursor() as cur:
        cur.execute("DROP TABLE b")
    restore_database(target, description, repo)
    assert raw_state(mariadb, fresh_db) == before

    export_and_reload(mariadb, repo, fresh_db, description, tmp_path / "database.sql")
    assert raw_state(mariadb, fresh_db) == before
