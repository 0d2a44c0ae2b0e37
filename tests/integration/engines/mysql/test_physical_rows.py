"""The row counts a physical snapshot tells from its pages (``ibd_rows.py``), for restore
drills: equal to ``COUNT(*)`` (every version of a system-versioned table) on the tables
stored as pages, delete-marked records not yet purged left out; absent, and said, where
the pages do not tell it (``ROW_FORMAT=COMPRESSED``); the sakila corpus likewise."""

from __future__ import annotations

from pathlib import Path

from snapkeep.engines.mysql import MySQLTarget, choose_engine, dump_physical
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import load_unit, unit
from tests.helpers.dbstate import load_sql_file, q
from tests.integration.engines.mysql.test_physical import Log

SQL_DIR = Path(__file__).parent / "sql"


def _counts(conn, d: dict) -> dict[str, int]:
    out = {}
    with conn.cursor() as cur:
        for t in d["tables"]:
            if "physical" not in t:
                continue
            every = " FOR SYSTEM_TIME ALL" if t.get("system_time") else ""
            cur.execute(f"SELECT COUNT(*) FROM {q(t['name'])}{every}")
            out[t["name"]] = cur.fetchone()[0]
    return out


def test_the_pages_tell_every_paged_tables_row_count(mariadb, fresh_db, tmp_path):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    reader = mariadb.connect(fresh_db)  # its read view keeps the deleted rows unpurged
    with conn.cursor() as cur:
        with reader.cursor() as r:
            r.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        for sql in ("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB",
                    "INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_30000",
                    "COMMIT",
                    "DELETE FROM big WHERE id % 7 = 0",
                    "CREATE TABLE nokey (v INT) ENGINE=InnoDB",
                    "INSERT INTO nokey SELECT seq FROM seq_1_to_5000",
                    "CREATE TABLE versions (id INT PRIMARY KEY, x INT) ENGINE=InnoDB "
                    "WITH SYSTEM VERSIONING", "INSERT INTO versions VALUES (1, 1), (2, 1)",
                    "UPDATE versions SET x = 2",
                    "CREATE TABLE packed (id INT PRIMARY KEY) ENGINE=InnoDB "
                    "ROW_FORMAT=COMPRESSED", "INSERT INTO packed VALUES (1)",
                    "CREATE TABLE wide (id INT PRIMARY KEY) ENGINE=InnoDB",
                    "INSERT INTO wide SELECT seq FROM seq_1_to_100",
                    "ALTER TABLE wide ADD COLUMN later INT DEFAULT 7, ALGORITHM=INSTANT",
                    "INSERT INTO wide (id) VALUES (101)"):
            cur.execute(sql)
    conn.commit()
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, fresh_db)
    log = Log()
    where = choose_engine("physical", target, log)
    assert where is not None
    d = dump_physical(target, repo, log, where, threads=2)
    reader.close()
    told = {t["name"]: t["physical"].get("rows") for t in d["tables"] if "physical" in t}
    want = _counts(conn, d)
    assert told.pop("packed") is None, [ln for ln in log.lines if "row count" in ln]
    assert any("`packed`: its row count could not be told from its pages" in line
               for line in log.lines)
    del want["packed"]
    assert told == want, [ln for ln in log.lines if "row count" in ln]
    assert want["big"] == 30000 - 30000 // 7 and want["versions"] == 4


def test_the_pages_tell_the_sakila_corpus_row_counts(mariadb, tmp_path):
    u = unit("sakila_mariadb")
    load_unit(mariadb, u)
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    try:
        for db in u["databases"]:
            conn = mariadb.connect(db)
            target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, db)
            log = Log()
            where = choose_engine("physical", target, log)
            assert where is not None
            d = dump_physical(target, repo, log, where, threads=2)
            told = {t["name"]: t["physical"].get("rows") for t in d["tables"]
                    if "physical" in t}
            assert told and told == _counts(conn, d), log.lines
            conn.close()
    finally:
        conn = mariadb.connect()
        with conn.cursor() as cur:
            for db in u["databases"]:
                cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        conn.close()
