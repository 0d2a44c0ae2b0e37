"""Loading SQL dumps with the stock ``mariadb`` client into a scratch database
(``engines/mysql/sqlfile.py``): real ``mariadb-dump`` output, a real server."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import zstandard

from snapkeep.engines.mysql import sql_statements, sqlfile
from snapkeep.engines.mysql.names import import_name
from snapkeep.errors import Cancelled, UsageError
from snapkeep.services.transfer.import_source import decompressed
from tests.helpers.dbstate import assert_same, databases, target_for
from tests.helpers.recording import Recorder
from tests.helpers.shop import fill
from tests.helpers.transfer import state as state_of


def dump(mariadb, *args: str) -> bytes:
    """What the real ``mariadb-dump`` writes for ``args`` (options, then the database)."""
    tool = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    if tool is None:
        pytest.skip("no mariadb-dump on PATH")
    res = subprocess.run([tool, "--no-defaults", f"--socket={mariadb.socket}",
                          f"--user={mariadb.user}", "--routines", "--events", "--triggers",
                          *args], capture_output=True, check=True, timeout=120)
    return res.stdout


@pytest.fixture
def shop_db(mariadb, fresh_db):
    conn = mariadb.connect(fresh_db)
    fill(conn, products=300, orders=200)
    conn.close()
    return fresh_db


@pytest.fixture
def scratch(mariadb, shop_db):
    """The shop's scratch target, created empty; dropped afterwards."""
    target = sqlfile.scratch_target(target_for(mariadb, shop_db))
    sqlfile.drop_database(target)
    sqlfile.create_database(target, sqlfile.database_defaults(target_for(mariadb, shop_db)))
    yield target
    sqlfile.drop_database(target)


# -- the filter, on its own ----------------------------------------------------------------------

def filtered(data: bytes, piece: int) -> tuple[bytes, sql_statements.DatabaseStatements]:
    f = sql_statements.DatabaseStatements("dump.sql")
    out = [f.feed(data[i:i + piece]) for i in range(0, len(data), piece)]
    return b"".join(out) + f.finish(), f


DATABASES_DUMP = (b"/*M!999999\\- enable the sandbox mode */ \n-- header\n"
                  b"/*!40000 DROP DATABASE IF EXISTS `shop`*/;\n\n"
                  b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER "
                  b"SET latin1 COLLATE latin1_swedish_ci */;\n\nUSE `shop`;\n"
                  b"DROP TABLE IF EXISTS `t`;\nCREATE TABLE `t` (a int);\n"
                  b"/*!50001 CREATE VIEW `v` AS SELECT 1 */;\nINSERT INTO `t` VALUES (1),(2);\n"
                  b"USE `shop`;\n/*!50001 DROP VIEW IF EXISTS `v`*/;")


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 1 << 20])
def test_the_filter_keeps_every_line_number_whatever_the_read_size(piece: int) -> None:
    out, f = filtered(DATABASES_DUMP, piece)
    assert out.count(b"\n") == DATABASES_DUMP.count(b"\n")
    lines = out.split(b"\n")
    assert lines[2] == b"-- snapkeep import: DROP DATABASE left out"
    assert lines[4] == (b"ALTER DATABASE /*!40100 DEFAULT CHARACTER SET latin1 COLLATE "
                        b"latin1_swedish_ci */;")
    assert lines[6] == b"-- snapkeep import: USE left out"
    assert lines[11] == b"-- snapkeep import: USE left out"
    # table-level statements and the dump's own lines pass unchanged
    for i in (0, 1, 3, 5, 7, 8, 9, 10, 12):
        assert lines[i] == DATABASES_DUMP.split(b"\n")[i]
    assert f.database == "shop" and f.left_out == 4


def test_a_dump_of_two_databases_is_refused_naming_the_line() -> None:
    data = b"USE `a`;\nCREATE TABLE t (x int);\nUSE `b`;\n"
    with pytest.raises(UsageError, match=r"more than one database \('a', then 'b' at line 3\)"):
        filtered(data, 5)


def test_a_database_statement_that_cannot_be_rewritten_is_refused() -> None:
    with pytest.raises(UsageError, match="dump.sql line 2: a database-level statement"):
        filtered(b"SELECT 1;\nCREATE DATABASE a; CREATE TABLE b (x int);\n", 4)


def test_lines_of_a_routine_body_are_left_alone() -> None:
    data = (b"DELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\nDROP DATABASE scratch_x;\nEND ;;\n"
            b"DELIMITER ;\nDROP DATABASE `shop`;\n")
    out, f = filtered(data, 5)
    assert out == data.replace(b"DROP DATABASE `shop`;", b"-- snapkeep import: DROP DATABASE "
                                                          b"left out")
    assert f.database == "shop"


def test_long_lines_stream_through_without_being_held(monkeypatch) -> None:
    monkeypatch.setattr(sql_statements, "PEEK", 16)
    line = b"INSERT INTO t VALUES " + b"(1)," * 100 + b"(2);\n"
    f = sql_statements.DatabaseStatements("x.sql")
    first = f.feed(line[:200])
    assert first == line[:200]  # not held back: the line is no database statement
    assert first + f.feed(line[200:] + b"USE `x`;\n") + f.finish() == \
        line + b"-- snapkeep import: USE left out\n"


# -- loading with the client ---------------------------------------------------------------------

def reference(mariadb, data: bytes, name: str) -> dict:
    """The state the stock client gives the plain dump ``data`` in a new database (the
    standard: mariadb-dump itself is not exact, it writes FLOAT with six digits)."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.close()
    res = subprocess.run([*mariadb.client_args(), name], input=data, capture_output=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    try:
        return state_of(mariadb, name)
    finally:
        conn = mariadb.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        conn.close()


@pytest.mark.parametrize("options", [[], ["--databases", "--add-drop-database"]],
                         ids=["plain", "databases"])
def test_a_mariadb_dump_loads_into_the_scratch_database_exactly(mariadb, shop_db, scratch,
                                                                options) -> None:
    expected = reference(mariadb, dump(mariadb, shop_db), f"{shop_db}_ref")
    before = state_of(mariadb, shop_db)
    result = sqlfile.load_sql(scratch, io.BytesIO(dump(mariadb, *options, shop_db)),
                              source_name="shop.sql", reporter=Recorder())
    assert_same(state_of(mariadb, scratch.database), expected, "the loaded scratch database")
    # the dump's DROP DATABASE and USE never reached the live database
    assert_same(state_of(mariadb, shop_db), before, "the live database")
    assert result.database == (shop_db if options else None)
    assert result.left_out == (4 if options else 0)  # DROP, CREATE (as ALTER), USE twice
    assert scratch.database == import_name(shop_db)


@pytest.mark.parametrize("suffix", [".sql.gz", ".sql.zst"])
def test_compressed_dumps_are_read_by_their_suffix(mariadb, shop_db, scratch, suffix) -> None:
    data = dump(mariadb, shop_db)
    packed = gzip.compress(data) if suffix == ".sql.gz" else \
        zstandard.ZstdCompressor().compress(data)
    stream = decompressed(io.BytesIO(packed), "shop" + suffix)
    sqlfile.load_sql(scratch, stream, source_name="shop" + suffix, reporter=Recorder())
    assert_same(state_of(mariadb, scratch.database), reference(mariadb, data, f"{shop_db}_r"),
                "loaded")


def broken_half_way(data: bytes) -> tuple[bytes, int]:
    """``data`` with a broken statement between two statements half-way; its line number."""
    lines = data.split(b"\n")
    at = next(i for i in range(len(lines) // 2, len(lines)) if lines[i - 1].endswith(b";"))
    lines.insert(at, b"INSERT INTO oops VALUES (1,;")
    return b"\n".join(lines), at + 1


def test_a_syntax_error_half_way_names_the_file_and_line(mariadb, shop_db, scratch) -> None:
    data, line = broken_half_way(dump(mariadb, shop_db))
    with pytest.raises(UsageError) as e:
        sqlfile.load_sql(scratch, io.BytesIO(data), source_name="/x/shop.sql",
                         reporter=Recorder())
    assert f"/x/shop.sql line {line}: " in str(e.value)
    assert "SQL syntax" in str(e.value) and "1064" in str(e.value)


def test_client_commands_in_the_file_do_not_run(scratch, tmp_path) -> None:
    """A dump is data: a shell escape in it must not run on snapkeep's host."""
    if not sqlfile.supports_sandbox(sqlfile.find_client()):
        pytest.skip("this mariadb client has no --sandbox option")
    marker = tmp_path / "ran"
    with pytest.raises(UsageError, match=r"evil\.sql line 2: .*sandbox"):
        sqlfile.load_sql(scratch, io.BytesIO(f"SELECT 1;\n\\! touch {marker}\n".encode()),
                         source_name="evil.sql", reporter=Recorder())
    assert not marker.exists()


def test_a_damaged_compressed_file_is_a_clear_error(scratch) -> None:
    packed = gzip.compress(b"CREATE TABLE t (a int);\n" * 1000)
    stream = decompressed(io.BytesIO(packed[:len(packed) // 2]), "d.sql.gz")
    with pytest.raises(UsageError, match="cannot read d.sql.gz"):
        sqlfile.load_sql(scratch, stream, source_name="d.sql.gz", reporter=Recorder())


def test_a_cancel_while_the_client_works_stops_it(mariadb, scratch) -> None:
    """The client is busy with one slow statement; a cancel (raised by the reporter, as the
    activity recorder does) kills it within a few wait steps."""
    rec = Recorder()
    asked = time.monotonic()

    def cancel() -> None:
        if time.monotonic() - asked > 1.0:
            raise Cancelled("cancelled by the test")

    rec.on_advance = cancel
    before = set(_clients())
    with pytest.raises(Cancelled):
        sqlfile.load_sql(scratch, io.BytesIO(b"SELECT SLEEP(600);\n"), source_name="slow.sql",
                         reporter=rec)
    assert set(_clients()) <= before  # no client left running
    assert scratch.database in databases(mariadb.connect())


def _clients() -> list[int]:
    """The pids of running clients that load_sql started (their option file's name)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith((b"/mariadb", b"/mysql")) and \
                any(b"snapkeep-sql-" in a for a in argv):
            found.append(int(proc.name))
    return found


def test_the_password_goes_in_an_option_file_never_in_argv(tmp_path) -> None:
    from snapkeep.engines.mysql import MySQLTarget

    t = MySQLTarget("db.example", 3307, "shop", 's3cr"et\\x', "shop")
    path = sqlfile.option_file(tmp_path, t)
    assert path.stat().st_mode & 0o777 == 0o600
    assert 'password="s3cr\\"et\\\\x"' in path.read_text()
