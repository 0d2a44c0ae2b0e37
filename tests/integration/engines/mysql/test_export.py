"""Exporting a snapshot's database as SQL that the stock ``mariadb`` client loads.

Each round trip: a database on the private server, ``dump_database`` into a repository,
``export_sql`` into a file, the database dropped and created empty, the file loaded by the
``mariadb`` command-line client (no options beyond the connection), then compared with
the state recorded before (``db_state``: CHECKSUM TABLE EXTENDED, row counts, SHOW CREATE
of every object). The row rewriting itself is also checked without a server, against a
reference reading of the SQL it writes. Every corpus unit is exported and loaded the
same way by its round trip (``test_corpora_roundtrip.py``), from the snapshot it restores.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest

from snapkeep.engines.mysql import dump_database, export
from snapkeep.engines.mysql.encoding import (
    BIT,
    ESCAPED,
    INDEX,
    PLAIN,
    QUOTED,
    STRING,
    TEXT,
    Column,
    decode_line,
    decode_quoted_line,
    encode_row,
)
from snapkeep.engines.mysql.export import STATEMENT_BYTES, export_sql
from snapkeep.engines.mysql.export_values import (
    BINARY,
    INTRODUCED,
    LineSplitter,
    QuotedLineSplitter,
    rows_converter,
)
from snapkeep.errors import IntegrityError
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import recut_parts
from tests.helpers.damage import flip_chunk_byte
from tests.helpers.dbstate import assert_same, db_state, exact_values, load_sql_file, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run
from tests.helpers.stock_client import export_and_reload

SQL_DIR = Path(__file__).parent / "sql"


# -- type coverage ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [3, 2, 1])
def test_type_coverage_loads_back_exactly_through_the_stock_client(
        mariadb, fresh_db, repo, tmp_path, fmt):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    before, values = db_state(conn, fresh_db), exact_values(conn, fresh_db)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), fmt=fmt)
    assert description["format"] == fmt
    if fmt < 3:
        description = recut_parts(description, repo)  # several parts per table, format 2
    script = tmp_path / "database.sql"
    progress = export_and_reload(mariadb, repo, fresh_db, description, script)

    conn = mariadb.connect(fresh_db)
    assert_same(db_state(conn, fresh_db), before, f"format {fmt}")
    assert exact_values(conn, fresh_db) == values
    assert progress.done == progress.total > 0
    assert any("exported" in line and "tables" in line for line in progress.lines)
    text = script.read_bytes()
    assert text.endswith(b"-- snapkeep export complete\n")
    assert b"CREATE DATABASE" not in text and b"\nUSE " not in text


def test_the_script_sets_the_session_like_mariadb_dump_and_puts_it_back(mariadb, fresh_db, repo):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    out = io.BytesIO()
    export_sql(dump_database(target_for(mariadb, fresh_db), repo, Recorder()), repo, out,
               NullReporter())
    text = out.getvalue()
    head = text[:text.index(b"CREATE TABLE")]
    for setting in (b"SET NAMES utf8mb4", b"TIME_ZONE='+00:00'", b"FOREIGN_KEY_CHECKS=0",
                    b"UNIQUE_CHECKS=0", b"SQL_MODE='NO_AUTO_VALUE_ON_ZERO"):
        assert setting in head
    assert b"SQL_MODE=@OLD_SQL_MODE" in text[-1000:]
    assert b"DELIMITER ;;" in text  # objects without comments go out as mariadb-dump writes them
    assert b"SET NAMES binary;\nINSERT INTO `numbers`" in text


# -- awkward values and large tables ---------------------------------------------------------

AWKWARD = ["'", "\\", "\t", "\n", "\r", "\r\n", "\0", "\x1a", "NULL", "\\N", "'\t", "a'\n'b",
           "", "\\'", "'\\", "--", "#", "/*", ";;", "\\\\N", "NULL\t", "\tNULL"]
SIMPLE = [v for v in AWKWARD if "\t" not in v and "\n" not in v]  # lines split at newlines


def test_awkward_values_and_tables_of_many_statements_load_back_exactly(
        mariadb, fresh_db, repo, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "CLIENT_PACKET_BYTES", 2 << 20)  # the 3 MiB row is "long"
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE wide (id INT PRIMARY KEY, s VARCHAR(40), b VARBINARY(64), "
              "t TEXT CHARACTER SET latin1, d DECIMAL(12,3), f FLOAT, e ENUM('2','1',''), "
              "bits BIT(7), u UUID) ENGINE=InnoDB",
        "CREATE TABLE plain_rows (id INT PRIMARY KEY, s VARCHAR(200), n DOUBLE, "
        "dt DATETIME(6)) ENGINE=InnoDB",
        "CREATE TABLE blobs (id INT PRIMARY KEY, payload LONGBLOB, note TEXT) ENGINE=InnoDB",
        "CREATE TABLE `ünïcødé tåble` (`clé` INT PRIMARY KEY, `välue` VARCHAR(20)) "
        "ENGINE=InnoDB")
    rnd = random.Random(7)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO wide VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", [
            (i, AWKWARD[i % len(AWKWARD)] if i % 7 else None,
             bytes(rnd.randrange(256) for _ in range(i % 64)),
             "café " + AWKWARD[(i * 3) % len(AWKWARD)], None if i % 5 == 0 else f"-{i}.125",
             None if i % 4 == 0 else (-0.0 if i % 3 == 0 else i / 7),
             None if i % 6 == 0 else ["2", "1", ""][i % 3], i % 128 if i % 9 else None,
             None if i % 2 else f"123e4567-e89b-12d3-a456-{i:012d}") for i in range(1, 3000)])
        cur.executemany("INSERT INTO plain_rows VALUES (%s, %s, %s, %s)", [
            (i, f"row {i} " * (i % 20) + SIMPLE[i % len(SIMPLE)], i * 1.5 if i % 11 else None,
             "2024-02-29 12:34:56.789012" if i % 3 else "0000-00-00 00:00:00")
            for i in range(1, 30000)])
        cur.executemany("INSERT INTO blobs VALUES (%s, %s, %s)", [
            (i, bytes(rnd.randrange(256) for _ in range(rnd.randrange(2000))), "x\ny\tz")
            for i in range(1, 400)])
        big = bytes(rnd.randrange(256) for _ in range(3 << 20))  # spans several chunks
        cur.execute("INSERT INTO blobs VALUES (1000, %s, %s)", (big, "big\n" * 1000))
        cur.execute("INSERT INTO `ünïcødé tåble` VALUES (1, 'ü\\'\\n'), (2, NULL), (3, 'NULL')")
    before = db_state(conn, fresh_db)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    script = tmp_path / "database.sql"
    progress = export_and_reload(mariadb, repo, fresh_db, description, script)

    assert_same(db_state(mariadb.connect(fresh_db), fresh_db), before)
    assert any("--max-allowed-packet=" in line for line in progress.lines)
    text = script.read_bytes()
    statements = [m.start() for m in re.finditer(rb"^INSERT INTO `plain_rows`", text, re.M)]
    assert len(statements) >= 3
    ends = [text.index(b";\n", s) for s in statements]
    assert max(e - s for s, e in zip(statements, ends, strict=True)) < STATEMENT_BYTES + 2000
    assert b"INSERT INTO `\xc3\xbcn\xc3\xafc\xc3\xb8d\xc3\xa9 t\xc3\xa5ble`" in text
    assert b",_binary'" in text  # non-ASCII names: the statement stays in utf8mb4


def test_objects_with_comments_crlf_and_other_charsets_keep_their_exact_text(
        mariadb, fresh_db, repo, tmp_path):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "CREATE PROCEDURE commented()\r\nBEGIN\r\n  -- a comment\r\n  /* block; */ SELECT "
        "'x;;y', \"#\" ; # hash\r\nEND",
        "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.v = "
        "CONCAT(NEW.v, '\\\\') /* keep */",
        "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'",
        "CREATE FUNCTION raw_backslash() RETURNS VARCHAR(10) DETERMINISTIC RETURN 'a\\b'",
        "SET NAMES latin1",
        "CREATE VIEW \"vü\" AS SELECT 'é' AS \"é\", id FROM t",
        "SET SESSION sql_mode = DEFAULT",
        "SET NAMES utf8mb4",
        "CREATE EVENT ev ON SCHEDULE EVERY 1 HOUR STARTS '2031-01-01 00:00:00' DISABLE DO "
        "BEGIN\n  -- only a comment\n  DELETE FROM t WHERE id < 0;\nEND",
        "INSERT INTO t VALUES (1, 'a')",
        "SET NAMES gbk")
    with conn.cursor() as cur:  # bytes a utf8 client would split differently
        cur.execute("CREATE PROCEDURE gbk_text() SELECT '中文 表 # 誠' AS x".encode("gbk"))
    run(conn, "SET NAMES utf8mb4")
    before = db_state(conn, fresh_db)
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    script = tmp_path / "database.sql"
    export_and_reload(mariadb, repo, fresh_db, description, script)
    assert_same(db_state(mariadb.connect(fresh_db), fresh_db), before)
    text = script.read_bytes()
    assert text.count(b"EXECUTE IMMEDIATE @snapkeep_statement") >= 4
    assert b"SET @snapkeep_statement = 0x" in text  # the gbk procedure


def test_a_damaged_chunk_makes_the_export_raise_integrity_error(
        mariadb, fresh_db, repo, tmp_path):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    description = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    table = next(t for t in description["tables"] if t["name"] == "strings")
    chunk_id = table["parts"][0]["chunks"][0][0]
    flip_chunk_byte(repo, tmp_path / "repo", chunk_id)
    damaged = Repository.open(LocalBackend(tmp_path / "repo"))  # no cached copy of the pack
    with pytest.raises(IntegrityError):
        export_sql(description, damaged, io.BytesIO(), NullReporter())


# -- the row rewriting, against a reference reading of the SQL ---------------------------------

_SQL_ESCAPES = {ord("0"): b"\0", ord("b"): b"\b", ord("n"): b"\n", ord("r"): b"\r",
                ord("t"): b"\t", ord("Z"): b"\x1a"}


def _sql_string(text: bytes, i: int) -> tuple[bytes, int]:
    """The value of the string literal whose opening quote is at ``i``; the index after it."""
    out = bytearray()
    i += 1
    while text[i] != 0x27:
        if text[i] == 0x5C:
            nxt = text[i + 1]
            out += _SQL_ESCAPES.get(nxt, bytes([nxt]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return bytes(out), i + 1


def read_values(sql: bytes) -> list[tuple[Any, ...]]:
    """The rows of ``(…)\\n,(…)`` VALUES as Python values: None, ("num", digits),
    ("str", bytes) or ("text", bytes) for CONVERT(… USING utf8mb4). Strict about layout."""
    rows: list[tuple[Any, ...]] = []
    i, n = 0, len(sql)
    while i < n:
        assert sql[i:i + 1] == b"(", sql[i:i + 40]
        i += 1
        row: list[Any] = []
        while True:
            if sql.startswith(b"NULL", i):
                row.append(None)
                i += 4
            elif sql.startswith(b"CONVERT(", i):
                i += len(b"CONVERT(")
                i += len(b"_binary") if sql.startswith(b"_binary", i) else 0
                value, i = _sql_string(sql, i)
                assert sql.startswith(b" USING utf8mb4)", i)
                i += len(b" USING utf8mb4)")
                row.append(("text", value))
            elif sql[i:i + 1] in (b"'", b"_"):
                i += len(b"_binary") if sql.startswith(b"_binary", i) else 0
                value, i = _sql_string(sql, i)
                row.append(("str", value))
            else:
                m = re.compile(rb"[0-9]+").match(sql, i)
                assert m, sql[i:i + 40]
                row.append(("num", m.group()))
                i = m.end()
            if sql.startswith(b"\t,", i):
                i += 2
                continue
            assert sql[i:i + 1] == b")", sql[i:i + 40]
            i += 1
            break
        rows.append(tuple(row))
        if i < n:
            assert sql.startswith(b"\n,", i)
            i += 2
    return rows


def _quote(value: bytes) -> bytes:
    """What MariaDB's QUOTE() returns for ``value``."""
    for raw, escaped in ((b"\\", b"\\\\"), (b"'", b"\\'"), (b"\0", b"\\0"), (b"\x1a", b"\\Z")):
        value = value.replace(raw, escaped)
    return b"'" + value + b"'"


_PIECES = [b"'", b"\\", b"\t", b"\n", b"\r", b"\0", b"\x1a", b"NULL", b"\\N", b"N", b"a",
           b"\xc3\xa9", b"\xff", b",", b"(", b")", b"''", b"\\'", b" ", b"\x00\x00", b"_binary'"]


def _random_value(rnd: random.Random, codec: str, encoding: str = QUOTED) -> bytes | None:
    """A value as the dump stores it: numbers for bit/index, the text of a number or date
    for an unquoted plain field, any bytes otherwise."""
    if rnd.random() < 0.15:
        return None
    if codec in (BIT, INDEX):
        return str(rnd.randrange(0, 1 << 20)).encode()
    if codec == PLAIN and (encoding == QUOTED or rnd.random() < 0.5):
        return rnd.choice([b"-0", b"1e300", b"2024-01-02 03:04:05.5", b"-838:59:59",
                           b"0.000000000000000000000000000001", b"18446744073709551615"])
    return b"".join(rnd.choice(_PIECES) for _ in range(rnd.randrange(0, 6)))


def _expected(codec: str, value: bytes | None) -> Any:
    if value is None:
        return None
    if codec in (BIT, INDEX):
        return ("num", value)
    return ("text" if codec == TEXT else "str", value)


def _lines(encoding: str, codecs: list[str], rows: list[tuple[bytes | None, ...]]) -> bytes:
    if encoding == ESCAPED:
        return b"".join(encode_row(r) for r in rows)
    out = []
    for r in rows:
        fields = [(b"NULL" if v is None else _quote(v)) if c in (STRING, TEXT)
                  else (b"\\N" if v is None else v) for c, v in zip(codecs, r, strict=True)]
        out.append(b"\t".join(fields) + b"\n")
    return b"".join(out)


SHAPES = [[PLAIN], [STRING], [PLAIN, STRING], [STRING, PLAIN, STRING], [STRING, STRING],
          [PLAIN, PLAIN, PLAIN], [STRING, BIT, TEXT, INDEX, PLAIN]]


@pytest.mark.parametrize("encoding", [QUOTED, ESCAPED])
@pytest.mark.parametrize("opening", [BINARY, INTRODUCED])
def test_rows_are_rewritten_into_values_that_read_back_as_stored(encoding, opening):
    rnd = random.Random(11)
    for shape in SHAPES:
        # Format 1 and 2 dumps had no string codec: their strings are plain.
        codecs = [PLAIN if c == STRING and encoding == ESCAPED else c for c in shape]
        columns = [Column(f"c{i}", c) for i, c in enumerate(codecs)]
        rows = [tuple(_random_value(rnd, c, encoding) for c in codecs) for _ in range(400)]
        lines = _lines(encoding, codecs, rows)
        # Check the encoder of the test against the engine's own reading of the lines.
        decode = decode_quoted_line if encoding == QUOTED else decode_line
        splitter = QuotedLineSplitter() if encoding == QUOTED else LineSplitter()
        block = splitter.feed(lines)
        assert [decode(line) for line in block.split(b"\n")[:-1]] == rows
        convert = rows_converter(encoding, columns, opening)
        values = convert(block)
        assert read_values(values) == [
            tuple(_expected(c, v) for c, v in zip(codecs, r, strict=True)) for r in rows], shape
        assert b"\r" not in values and b"\0" not in values
        assert values.count(b"\n") == len(rows) - 1  # one row a line


@pytest.mark.parametrize("splitter_class", [QuotedLineSplitter, LineSplitter])
def test_lines_come_out_whole_however_the_chunks_cut_them(splitter_class):
    rnd = random.Random(5)
    codecs = [PLAIN, STRING, STRING]
    rows = [tuple(_random_value(rnd, c) for c in codecs) for _ in range(300)]
    if splitter_class is LineSplitter:  # it needs lines without raw newlines or tabs inside
        rows = [tuple(v and v.replace(b"\n", b"").replace(b"\t", b"") for v in r) for r in rows]
    lines = _lines(QUOTED, codecs, rows)
    whole = QuotedLineSplitter().feed(lines)
    for sizes in ([1], [2, 3], [7, 1, 64], [len(lines)]):
        splitter = splitter_class()
        out, i, k = [], 0, 0
        while i < len(lines):
            size = sizes[k % len(sizes)]
            out.append(splitter.feed(lines[i:i + size]))
            i, k = i + size, k + 1
        assert b"".join(out) == whole and splitter.leftover == 0
