"""The quoted line encoding (description format 3): the server composes each row's line,
LOAD DATA reads it back exactly, and a line too long for one packet falls back to the
escaped encoding for its part only."""

from __future__ import annotations

import shutil

import pytest

from snapkeep.engines.mysql import dump_database, prepare_restore, ranges
from snapkeep.engines.mysql.encoding import decode_quoted_line, split_quoted_lines
from snapkeep.repository import BlobRef, Repository
from snapkeep.storage import LocalBackend
from tests.helpers.dbstate import assert_same, db_state, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run

AWKWARD = ("'", "\\", "\t", "\n", "\r", "\0", "\x1a", "NULL", "\\N", "'\t", "a'\n'b", "")


def rows_of(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(ranges, "MIN_PART_ROWS", 1000)
    monkeypatch.setattr(ranges, "MAX_PART_ROWS", 1000)


def test_quoted_lines_hold_exactly_the_rows_the_server_has(mariadb, fresh_db, repo, small_parts):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1, "
              "b VARBINARY(20), u TEXT CHARACTER SET utf8mb4, n DECIMAL(10,2)) ENGINE=InnoDB")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)", [
            (i, AWKWARD[i % len(AWKWARD)] if i % 5 else None,
             bytes([i % 256, 0, 39, 92, 9, 10]), "ünïcødé ✓ " + AWKWARD[i % len(AWKWARD)],
             None if i % 7 == 0 else f"{i}.25") for i in range(1, 2500)])
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2,
                      use_pump=False)
    assert d["format"] == 3
    (t,) = d["tables"]
    assert len(t["parts"]) > 1 and {p["encoding"] for p in t["parts"]} == {"quoted"}
    lines = [decode_quoted_line(line) for p in t["parts"]
             for line in split_quoted_lines(repo.read_blob(BlobRef.from_json(p)))]
    raw = mariadb.connect(fresh_db, conv={}, use_unicode=False)
    run(raw, "SET NAMES binary")
    assert lines == rows_of(raw, "SELECT * FROM t ORDER BY id")


def test_a_row_longer_than_max_allowed_packet_is_read_field_by_field(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB, note TEXT) ENGINE=InnoDB",
        "CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB",
        "INSERT INTO small VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO big VALUES (1, 'short', 'x'), (3, 'tail', 'y')")
    with conn.cursor() as cur:  # one value with every byte, over the packet limit below
        cur.execute("INSERT INTO big VALUES (2, %s, 'it''s\t\n')", (bytes(range(256)) * 6000,))
    before = db_state(conn, fresh_db)
    old = rows_of(conn, "SELECT @@GLOBAL.max_allowed_packet")[0][0]
    run(conn, "SET GLOBAL max_allowed_packet = 1048576")  # new connections only
    try:
        progress = Recorder()
        d = dump_database(target_for(mariadb, fresh_db), repo, progress, threads=2,
                          use_pump=False)
    finally:
        run(conn, f"SET GLOBAL max_allowed_packet = {int(old)}")
    parts = {t["name"]: [p["encoding"] for p in t["parts"]] for t in d["tables"]}
    assert parts == {"big": ["escaped"], "small": ["quoted"]}
    assert any("max_allowed_packet" in line for line in progress.lines)
    run(conn, "DELETE FROM big", "DROP TABLE small")
    prepared = prepare_restore(target_for(mariadb, fresh_db), d, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert_same(db_state(mariadb.connect(fresh_db), fresh_db), before)


def test_the_compression_level_decides_how_small_the_rows_are_stored(mariadb, fresh_db, tmp_path):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB",
        "INSERT INTO t SELECT seq, CONCAT_WS(' ', ELT(1 + seq * 7 % 9, 'red', 'green', 'blue', "
        "'shirt', 'large', 'cotton', 'sale', 'new', 'gift'), MD5(seq % 5000), seq % 977) "
        "FROM seq_1_to_40000")
    # Two copies of one empty repository: the same key, so the same chunk cuts; only the
    # compression level differs.
    Repository.init(LocalBackend(tmp_path / "repo1"))
    shutil.copytree(tmp_path / "repo1", tmp_path / "repo19")
    sizes = {}
    for level in (1, 19):
        repo = Repository.open(LocalBackend(tmp_path / f"repo{level}"))
        dump_database(target_for(mariadb, fresh_db), repo, Recorder(), zstd_level=level)
        repo.flush()
        sizes[level] = sum(f.stat().st_size for f in (tmp_path / f"repo{level}" / "data").rglob("*")
                           if f.is_file())
    assert sizes[19] < sizes[1] * 0.95, sizes
