"""What a database looks like, for comparing a restore with its original.

``db_state(conn, db)`` collects ``SHOW CREATE DATABASE``, every table's ``SHOW CREATE``,
``CHECKSUM TABLE … EXTENDED``, row count and AUTO_INCREMENT, every view, trigger,
procedure, function, event and sequence definition (with their sql_mode and charset
context), and the sequences' state. A system-versioned table is compared by its
``SHOW CREATE``, a digest of every row version (``FOR SYSTEM_TIME ALL``) with its exact
period values, its current row count and AUTO_INCREMENT; a table of a kind not known
here by its presence and kind. Two states compare equal with ``==``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _rows(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def db_state(conn: Any, db: str) -> dict[str, Any]:
    conn.select_db(db)
    state: dict[str, Any] = {"database": _rows(conn, f"SHOW CREATE DATABASE {q(db)}")[0][1]}
    listed = _rows(conn, "SELECT TABLE_NAME, TABLE_TYPE, AUTO_INCREMENT FROM "
                         "information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
                   (db,))
    virtual = {r[0] for r in _rows(conn, "SELECT DISTINCT TABLE_NAME FROM "
                                         "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                                         "AND EXTRA LIKE '%%GENERATED'", (db,))}
    tables: dict[str, Any] = {}
    for name, kind, auto_inc in listed:
        if kind == "BASE TABLE":
            tables[name] = {
                "create": _rows(conn, f"SHOW CREATE TABLE {q(name)}")[0][1],
                "checksum": (_content_digest(conn, name) if name in virtual else
                             _rows(conn, f"CHECKSUM TABLE {q(name)} EXTENDED")[0][1]),
                "rows": _rows(conn, f"SELECT COUNT(*) FROM {q(name)}")[0][0],
                "auto_increment": auto_inc,
            }
        elif kind == "SEQUENCE":
            tables[name] = {"create": _rows(conn, f"SHOW CREATE SEQUENCE {q(name)}")[0][1],
                            "state": _rows(conn, f"SELECT * FROM {q(name)}")}
        elif kind == "VIEW":
            tables[name] = {"view": _rows(conn, f"SHOW CREATE VIEW {q(name)}")[0]}
        elif kind == "SYSTEM VERSIONED":
            create = _rows(conn, f"SHOW CREATE TABLE {q(name)}")[0][1]
            tables[name] = {
                "create": create,
                "versions": _versions_digest(conn, name, create),
                "rows": _rows(conn, f"SELECT COUNT(*) FROM {q(name)}")[0][0],
                "auto_increment": auto_inc,
            }
        else:  # a kind this helper does not know: at least its presence is compared
            tables[name] = {"kind": kind}
    state["tables"] = tables
    state["triggers"] = {
        name: _rows(conn, f"SHOW CREATE TRIGGER {q(name)}")[0][:6]  # without "Created"
        for (name,) in _rows(conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                                   "WHERE TRIGGER_SCHEMA = %s", (db,))}
    state["trigger_order"] = _rows(conn, "SELECT EVENT_OBJECT_TABLE, ACTION_TIMING, "
                                         "EVENT_MANIPULATION, ACTION_ORDER, TRIGGER_NAME FROM "
                                         "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
                                         "ORDER BY 1, 2, 3, 4", (db,))
    state["routines"] = {
        (kind, name): _rows(conn, f"SHOW CREATE {kind} {q(name)}")[0]
        for kind, name in _rows(conn, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM "
                                      "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                                (db,))}
    state["events"] = {
        name: _rows(conn, f"SHOW CREATE EVENT {q(name)}")[0]
        for (name,) in _rows(conn, "SELECT EVENT_NAME FROM information_schema.EVENTS "
                                   "WHERE EVENT_SCHEMA = %s", (db,))}
    return state


_PERIOD = re.compile(r"^\s*PERIOD FOR SYSTEM_TIME \(`((?:[^`]|``)+)`, ?`((?:[^`]|``)+)`\)",
                     re.MULTILINE)


def period_columns(create: str) -> tuple[str, str]:
    """A system-versioned table's ROW START and ROW END columns (the hidden pseudo-columns
    when its DDL names no ``PERIOD FOR SYSTEM_TIME``)."""
    m = _PERIOD.search(create)
    if m is None:
        return "ROW_START", "ROW_END"
    return m.group(1).replace("``", "`"), m.group(2).replace("``", "`")


def all_versions(conn: Any, table: str, create: str) -> list[tuple[Any, ...]]:
    """Every row version of a system-versioned table (``FOR SYSTEM_TIME ALL``), each with
    its exact period values (as text, in UTC) last, sorted."""
    start, end = period_columns(create)
    with conn.cursor() as cur:
        cur.execute("SET @saved_tz = @@time_zone, time_zone = '+00:00'")
        try:
            cur.execute(f"SELECT *, CAST({q(start)} AS CHAR), CAST({q(end)} AS CHAR) "
                        f"FROM {q(table)} FOR SYSTEM_TIME ALL")
            rows = list(cur.fetchall())
        finally:
            cur.execute("SET time_zone = @saved_tz")
    return sorted(rows, key=repr)


def _versions_digest(conn: Any, table: str, create: str) -> str:
    return hashlib.sha256(repr(all_versions(conn, table, create)).encode()).hexdigest()


def _content_digest(conn: Any, table: str) -> str:
    """CHECKSUM TABLE also hashes the record buffer of VIRTUAL columns, which MariaDB does
    not keep stable for rows written by UPDATE (the same rows copied by INSERT … SELECT
    checksum differently), and gives a table with a STORED generated DECIMAL filled by
    INSERT … SELECT a different checksum on each call, so tables with generated columns
    are compared by their content instead."""
    rows = _rows(conn, f"SELECT * FROM {q(table)}")
    return hashlib.sha256(repr(sorted(rows, key=repr)).encode()).hexdigest()


def exact_values(conn: Any, db: str) -> dict[str, list[tuple]]:
    """Values whose text form is exact, for the types checksums alone would hide (the
    tables of ``tests/integration/engines/mysql/sql/type_coverage.sql``)."""
    conn.select_db(db)
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT id, CAST(CAST(f AS DOUBLE) AS CHAR), CAST(d AS CHAR), "
                    "CAST(CAST(fp AS DOUBLE) AS CHAR), CAST(r AS CHAR), CAST(dec65 AS CHAR), "
                    "HEX(b1), HEX(b10), HEX(b64), ATAN2(d, -1) FROM numbers ORDER BY id")
        out["numbers"] = cur.fetchall()
        cur.execute("SELECT id, HEX(c), HEX(vc), HEX(l1), HEX(b8), HEX(vb), HEX(bl), HEX(tx), "
                    "HEX(cb), e + 0, e2 + 0, s + 0, HEX(j), u, ip FROM strings ORDER BY id")
        out["strings"] = cur.fetchall()
        cur.execute("SELECT id, HEX(g), HEX(p), HEX(poly), ST_SRID(g) FROM shapes ORDER BY id")
        out["shapes"] = cur.fetchall()
        cur.execute("SELECT id, CAST(d AS CHAR), CAST(dt AS CHAR), CAST(ts AS CHAR), "
                    "UNIX_TIMESTAMP(ts0), CAST(t AS CHAR), CAST(t0 AS CHAR) FROM temporal "
                    "ORDER BY id")
        out["temporal"] = cur.fetchall()
        cur.execute("SELECT id, a, doubled, label, hidden, note FROM `generated` ORDER BY id")
        out["generated"] = cur.fetchall()
    return out


def databases(conn: Any) -> set[str]:
    return {r[0] for r in _rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")}


def load_sql_file(server: Any, db: str, path: Path) -> None:
    """Run a .sql file with the mariadb client into ``db``; raise on any client error."""
    with path.open("rb") as f:
        res = subprocess.run([*server.client_args(), "--default-character-set=utf8mb4", db],
                             stdin=f, capture_output=True, check=False)
    err = res.stderr.decode(errors="replace")
    if res.returncode != 0 or "ERROR" in err:
        raise AssertionError(f"loading {path.name} failed:\n{err[-3000:]}")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two states differ, as readable lines (empty when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'second' if key not in a else 'first'}")
            else:
                out += differences(a[key], b[key], f"{path}/{key}")
        return out
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def assert_same(actual: dict[str, Any], expected: dict[str, Any], what: str = "") -> None:
    diff = differences(actual, expected)
    if diff:
        raise AssertionError(f"{what} differs:\n" + "\n".join(line[:600] for line in diff))


def target_for(server, db: str):
    """The engine's target for database ``db`` on a PrivateMariaDB ``server``."""
    from snapkeep.engines.mysql import MySQLTarget

    return MySQLTarget(server.host, server.port, server.user, None, db)


def restore_database(target, description: dict[str, Any], repo: Any) -> None:
    """A whole restore through the engine: shadow, cut-over, finish."""
    from snapkeep.engines.mysql import prepare_restore
    from tests.helpers.recording import Recorder

    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    prepared.finish()


def no_helpers_left(conn: Any, db: str) -> None:
    """No shadow, old or journal database of a restore of ``db`` is left on the server."""
    assert {shadow_name(db), old_name(db), journal_name(db)} & databases(conn) == set()
