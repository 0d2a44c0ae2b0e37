"""ENUM/SET members and literal defaults with 4-byte characters survive a snapshot.

MariaDB prints them as '?' in ``SHOW CREATE TABLE`` (metadata goes through utf8mb3), so a
table recreated from the printed statement used to lose them (``members.py``). Every
check here reads the restored table's stored bytes with ``HEX()``: one row per member
(by index), and the defaults of a row inserted with its id only.
"""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.engines.mysql import MySQLTarget, dump_database, hold_writes, prepare_restore
from tests.helpers.dbstate import target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run
from tests.helpers.stock_client import export_and_reload

# Members with 4-byte characters, alone and mixed with the characters the server escapes;
# an ENUM member may also hold a comma (a SET member cannot).
MEMBERS = ["a", "😀", "it's 🎉", "back\\slash 🐍", "x😀y", "new\nline 🎈",
           "quote '' twice 🎃", "tab\there 🚀"]
ENUM_MEMBERS = [*MEMBERS, "comma, 🍕"]
CODECS = {"utf8mb4": "utf-8", "utf16": "utf-16-be", "utf32": "utf-32-be"}


def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n") + "'"


def make_table(conn: Any, charset: str) -> None:
    enum = ", ".join(sql_string(m) for m in ENUM_MEMBERS)
    members = ", ".join(sql_string(m) for m in MEMBERS)
    run(conn, f"CREATE TABLE e (id INT PRIMARY KEY, "
              f"c ENUM({enum}) CHARACTER SET {charset} NOT NULL DEFAULT {sql_string('😀')}, "
              f"s SET({members}) CHARACTER SET {charset} DEFAULT {sql_string('a,x😀y')}, "
              f"v VARCHAR(20) CHARACTER SET {charset} DEFAULT {sql_string('🎈 ok')}, "
              f"w CHAR(5) CHARACTER SET {charset} NOT NULL DEFAULT {sql_string('🐍')}, "
              f"KEY (c))")
    # one row per member, by index (the last SET empty); row 0 holds every SET member
    values = [f"({i}, {i}, {set_index(i)}, NULL, '')" for i in range(1, len(ENUM_MEMBERS) + 1)]
    run(conn, f"INSERT INTO e VALUES (0, 1, {(1 << len(MEMBERS)) - 1}, 'v', 'w'), "
              + ", ".join(values))


def set_index(i: int) -> int:
    return 1 << (i - 1) if i <= len(MEMBERS) else 0


def expected(charset: str) -> list[tuple[Any, ...]]:
    codec = CODECS[charset]

    def h(text: str) -> str:
        return text.encode(codec).hex().upper()

    out = [(0, h(MEMBERS[0]), h(",".join(MEMBERS)), h("v"), h("w"))]
    out += [(i, h(m), h(MEMBERS[i - 1]) if set_index(i) else "", None, "")
            for i, m in enumerate(ENUM_MEMBERS, 1)]
    out.append((100, h("😀"), h("a,x😀y"), h("🎈 ok"), h("🐍")))  # the defaults
    return out


def stored(conn: Any) -> list[tuple[Any, ...]]:
    run(conn, "INSERT INTO e (id) VALUES (100)")
    return rows(conn, "SELECT id, HEX(c), HEX(s), HEX(v), HEX(w) FROM e ORDER BY id")


def show_create(conn: Any, table: str) -> bytes:
    with conn.cursor() as cur:
        cur.execute("SET SESSION character_set_results = binary")
        cur.execute(f"SHOW CREATE TABLE `{table}`")
        return bytes(cur.fetchone()[1])


def restore(mariadb: Any, db: str, description: dict[str, Any], repo: Any) -> None:
    prepared = prepare_restore(target_for(mariadb, db), description, repo, Recorder())
    prepared.swap()
    prepared.finish()


@pytest.mark.parametrize("charset", sorted(CODECS))
def test_members_and_defaults_outside_the_bmp_come_back_exactly(mariadb, fresh_db, repo,
                                                                charset):
    conn = mariadb.connect(fresh_db)
    make_table(conn, charset)
    printed = show_create(conn, "e")
    assert b"'?'" in printed  # what the server prints: the reason for members.py
    progress = Recorder()
    description = dump_database(target_for(mariadb, fresh_db), repo, progress)
    assert not [line for line in progress.lines if line.startswith("warning:")]
    run(conn, "DROP TABLE e")
    restore(mariadb, fresh_db, description, repo)
    conn = mariadb.connect(fresh_db)
    assert stored(conn) == expected(charset)
    assert show_create(conn, "e") == printed


def test_the_sql_export_keeps_them_through_the_stock_client(mariadb, fresh_db, repo, tmp_path):
    conn = mariadb.connect(fresh_db)
    make_table(conn, "utf8mb4")
    printed = show_create(conn, "e")
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    export_and_reload(mariadb, repo, fresh_db, description, tmp_path / "db.sql")
    conn = mariadb.connect(fresh_db)
    assert stored(conn) == expected("utf8mb4")
    assert show_create(conn, "e") == printed


def test_a_binary_enum_keeps_its_bytes(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE b (id INT PRIMARY KEY, "
              "c ENUM('a', X'F09F9880', X'FF00', 'q''?') CHARACTER SET binary)",
        "INSERT INTO b VALUES (1, 1), (2, 2), (3, 3), (4, 4)")
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    run(conn, "DROP TABLE b")
    restore(mariadb, fresh_db, description, repo)
    assert rows(mariadb.connect(fresh_db), "SELECT HEX(c) FROM b ORDER BY id") == [
        (b.hex().upper(),) for b in (b"a", b"\xf0\x9f\x98\x80", b"\xff\x00", b"q'?")]


def test_other_table_kinds_and_a_held_database(mariadb, fresh_db, repo):
    """Writes held for the whole dump (the coordinator still makes its temporary table),
    a MyISAM table, a system-versioned one and a generated ENUM column."""
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE m (id INT PRIMARY KEY, c ENUM('a', '😀') CHARACTER SET utf8mb4) "
              "ENGINE=MyISAM",
        "CREATE TABLE v (id INT PRIMARY KEY, c SET('a', '🎉') CHARACTER SET utf8mb4) "
        "WITH SYSTEM VERSIONING",
        "CREATE TABLE g (id INT PRIMARY KEY, g ENUM('a', '😀') CHARACTER SET utf8mb4 "
        "AS (IF(id > 1, '😀', 'a')) STORED) CHARACTER SET utf8mb4",
        "INSERT INTO m VALUES (1, '😀')", "INSERT INTO v VALUES (1, 'a,🎉')",
        "UPDATE v SET c = '🎉'", "INSERT INTO g (id) VALUES (1), (2)")
    query = ("SELECT HEX(c) FROM m UNION ALL SELECT HEX(c) FROM v FOR SYSTEM_TIME ALL "
             "UNION ALL SELECT HEX(g) FROM g")
    before = sorted(rows(conn, query))
    assert len(before) == 5
    target = target_for(mariadb, fresh_db)
    progress = Recorder()
    with hold_writes(target, progress):
        description = dump_database(target, repo, progress, writes_held=True)
    assert not [line for line in progress.lines if line.startswith("warning:")]
    run(conn, "DROP TABLE m, v, g")
    restore(mariadb, fresh_db, description, repo)
    assert sorted(rows(mariadb.connect(fresh_db), query)) == before


def temporary_tables_made(conn: Any) -> int:
    """The server's count of CREATE TEMPORARY TABLE statements, all sessions."""
    return int(rows(conn, "SHOW GLOBAL STATUS LIKE 'Com_create_temporary_table'")[0][1])


def test_statements_without_lost_characters_are_kept_as_printed(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    # no 4-byte character, no '?' (or one in latin1): no extra work, the statement verbatim
    run(conn, "CREATE TABLE n (id INT PRIMARY KEY, c ENUM('a', 'b') DEFAULT 'b', "
              "s SET('é', '€') CHARACTER SET utf8mb4, l ENUM('?', 'x') CHARACTER SET latin1)")
    created = temporary_tables_made(conn)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    assert temporary_tables_made(conn) == created
    assert description["tables"][0]["create"].encode() == show_create(conn, "n")
    # a real '?' makes three columns suspect: each is read exactly (one temporary table),
    # and written back escaped as the server writes it, so the statements are unchanged
    run(conn, "CREATE TABLE q (id INT PRIMARY KEY, c ENUM('?', 'it''s', 'a\\\\b', 'n\\nl', "
              "'z\\0y', 't\\tb', 'cr\\r', 'é €') CHARACTER SET utf8mb4 DEFAULT '?')",
        "CREATE TABLE r (id INT PRIMARY KEY, c SET('a?', 'b') CHARACTER SET utf16 "
        "DEFAULT 'a?,b', v VARCHAR(5) DEFAULT 'w?') CHARACTER SET utf8mb4")
    created = temporary_tables_made(conn)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    assert temporary_tables_made(conn) == created + 3
    for t in description["tables"]:
        assert t["create"].encode() == show_create(conn, t["name"]), t["name"]


def test_a_user_who_cannot_make_temporary_tables_is_warned(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE e (id INT PRIMARY KEY, c ENUM('a', '😀') CHARACTER SET utf8mb4)",
        "CREATE USER IF NOT EXISTS 'sk_notemp'@'%' IDENTIFIED BY 'pw'",
        "GRANT SELECT, SHOW VIEW, LOCK TABLES, RELOAD ON *.* TO 'sk_notemp'@'%'")
    try:
        target = MySQLTarget(mariadb.host, mariadb.port, "sk_notemp", "pw", fresh_db)
        progress = Recorder()
        description = dump_database(target, repo, progress)
    finally:
        run(conn, "DROP USER IF EXISTS 'sk_notemp'@'%'")
    warnings = [line for line in progress.lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "column `c` of table `e`" in warnings[0], progress.lines
    assert description["tables"][0]["create"].encode() == show_create(conn, "e")

