"""The physical mover (docs/physical.md) on the session's private server, which runs on
this machine with a data directory this process owns: InnoDB tables go as pages
(mariadb-backup, IMPORT TABLESPACE), the rest as rows, and the restored database has the
source's fingerprint (``CHECKSUM TABLE … EXTENDED``, row counts, ``SHOW CREATE`` of every
object, ``tests/helpers/dbstate.py``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pymysql
import pytest

from snapkeep.engines.mysql import (
    MySQLTarget,
    choose_engine,
    cleanup_leftovers,
    dump_physical,
    physical_env,
    prepare_restore,
)
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.errors import IntegrityError, ServiceUnavailable, UsageError
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import load_unit, unit
from tests.helpers.dbstate import assert_same, databases, db_state, load_sql_file, q
from tests.helpers.restore_child import RESTORE
from tests.helpers.stock_client import export_and_reload

SQL_DIR = Path(__file__).parent / "sql"


class Log(NullReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def _target(mariadb, db: str, host: str | None = None) -> MySQLTarget:
    return MySQLTarget(host or mariadb.host, mariadb.port, mariadb.user, None, db)


def _physical(mariadb, db: str, repo: Repository, log: Log | None = None) -> dict[str, Any]:
    target = _target(mariadb, db)
    log = log or Log()
    where = choose_engine("physical", target, log)
    assert where is not None
    return dump_physical(target, repo, log, where, threads=2)


def _run(conn, *statements: str) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def _restore(mariadb, db: str, description: dict[str, Any], repo: Repository) -> Log:
    log = Log()
    prepared = prepare_restore(_target(mariadb, db), description, repo, log, threads=2)
    prepared.swap()
    prepared.finish()
    return log


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"))


def test_type_coverage_round_trips_through_pages(mariadb, fresh_db, repo):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    before = db_state(conn, fresh_db)
    log = Log()
    d = _physical(mariadb, fresh_db, repo, log)
    assert d["engine"] == "physical" and d["format"] == 4
    paged = [t["name"] for t in d["tables"] if "physical" in t]
    rows = [t["name"] for t in d["tables"] if "physical" not in t]
    assert paged and rows  # the schema has InnoDB tables and others (Aria, MyISAM…)
    json.dumps(d)
    # the live database changed in every way a restore must undo
    _run(conn, "SET SESSION foreign_key_checks = 0", f"DROP TABLE {q(paged[0])}",
         f"DELETE FROM {q(paged[-1])}", "CREATE TABLE live_only (id INT PRIMARY KEY)")
    restored = _restore(mariadb, fresh_db, d, repo)
    assert any(f"imported {len(paged)} InnoDB tables as pages" in line
               for line in restored.lines), restored.lines
    assert_same(db_state(conn, fresh_db), before, "type coverage, physical restore")
    assert {shadow_name(fresh_db), old_name(fresh_db), journal_name(fresh_db)} & databases(
        conn) == set()


def test_tables_that_cannot_go_as_pages_are_dumped_as_rows_and_say_why(mariadb, fresh_db,
                                                                       repo):
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE plain (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
         "INSERT INTO plain VALUES (1, 1), (2, 2)",
         "CREATE TABLE parted (id INT PRIMARY KEY) ENGINE=InnoDB "
         "PARTITION BY HASH(id) PARTITIONS 3", "INSERT INTO parted VALUES (1), (2), (3)",
         "CREATE TABLE words (id INT PRIMARY KEY, t TEXT, FULLTEXT(t)) ENGINE=InnoDB",
         "INSERT INTO words VALUES (1, 'hello world')",
         "CREATE TABLE packed (id INT PRIMARY KEY, t TEXT) ENGINE=InnoDB "
         "ROW_FORMAT=COMPRESSED", "INSERT INTO packed VALUES (1, REPEAT('x', 5000))",
         "CREATE TABLE versions (id INT PRIMARY KEY, x INT) ENGINE=InnoDB "
         "WITH SYSTEM VERSIONING", "INSERT INTO versions VALUES (1, 1)",
         "UPDATE versions SET x = 2",
         "CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES "
         "plain (id)) ENGINE=InnoDB", "INSERT INTO child VALUES (1, 2)")
    before = db_state(conn, fresh_db)
    log = Log()
    d = _physical(mariadb, fresh_db, repo, log)
    how = {t["name"]: "physical" in t for t in d["tables"]}
    assert how == {"plain": True, "packed": True, "versions": True, "child": True,
                   "parted": False, "words": False}
    assert any("`parted`: dumped as rows, not pages (partitioned" in line for line in log.lines)
    assert any("`words`: dumped as rows, not pages (a FULLTEXT index" in line
               for line in log.lines)
    _run(conn, "DROP TABLE child", "DELETE FROM versions")
    _restore(mariadb, fresh_db, d, repo)
    assert_same(db_state(conn, fresh_db), before, "kinds, physical restore")
    with conn.cursor() as cur:
        cur.execute("SELECT id, x FROM versions FOR SYSTEM_TIME ALL ORDER BY x")
        assert cur.fetchall() == ((1, 1), (1, 2))  # the history came back with the pages
        cur.execute("SELECT id FROM words WHERE MATCH(t) AGAINST ('hello')")
        assert cur.fetchall() == ((1,),)


def test_sakila_round_trips_through_pages(mariadb, repo):
    u = unit("sakila_mariadb")
    load_unit(mariadb, u)
    conn = mariadb.connect()
    try:
        for db in u["databases"]:
            before = db_state(conn, db)
            d = _physical(mariadb, db, repo)
            assert any("physical" in t for t in d["tables"])
            _run(conn, f"DROP DATABASE {q(db)}")
            _restore(mariadb, db, d, repo)
            assert_same(db_state(conn, db), before, f"sakila: {db}, physical restore")
    finally:
        for db in u["databases"]:
            _run(conn, f"DROP DATABASE IF EXISTS {q(db)}")


def test_an_unchanged_database_adds_almost_nothing_the_second_time(mariadb, fresh_db, tmp_path):
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB",
         "INSERT INTO big SELECT seq, CONCAT(SHA2(seq, 256), SHA2(-seq, 256), SHA2(seq, 224)) "
         "FROM seq_1_to_400000")  # big enough that a chunk's size (seeded) is noise
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    sizes = []
    for _ in range(2):
        _physical(mariadb, fresh_db, repo)
        repo.flush()
        sizes.append(_stored(tmp_path / "repo"))
    first, second = sizes[0], sizes[1] - sizes[0]
    assert first > 1 << 20
    assert second < first * 0.05, (first, second)  # unchanged pages deduplicate
    _run(conn, "UPDATE big SET v = REVERSE(v) WHERE id BETWEEN 200001 AND 204000")  # 1 %
    _physical(mariadb, fresh_db, repo)
    repo.flush()
    third = _stored(tmp_path / "repo") - sizes[1]
    assert third < first * 0.10, (first, third)


def _stored(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_physical_on_a_remote_server_is_refused_in_one_line(mariadb, fresh_db):
    remote = MySQLTarget("db.example.invalid", 3306, "shop", None, fresh_db)
    with pytest.raises(UsageError) as e:
        choose_engine("physical", remote, NullReporter())
    text = str(e.value)
    assert "\n" not in text and "is not on this machine" in text and "engine" in text
    log = Log()
    assert choose_engine("auto", remote, log) is None
    assert log.lines == [f"engine auto: logical, because the server of {remote.describe()} "
                         "is not on this machine (neither a unix socket nor a loopback "
                         "address)"]
    assert choose_engine("logical", _target(mariadb, fresh_db), Log()) is None


def test_a_user_without_mariadb_backups_grants_is_refused_or_falls_back(mariadb, fresh_db,
                                                                        repo):
    user = f"nb_{fresh_db}"[:32]
    conn = mariadb.connect()
    _run(conn, f"CREATE TABLE {q(fresh_db)}.t (id INT PRIMARY KEY) ENGINE=InnoDB",
         f"INSERT INTO {q(fresh_db)}.t VALUES (1), (2)",
         f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
         f"GRANT ALL ON {q(fresh_db)}.* TO '{user}'@'%'")
    try:
        target = MySQLTarget(mariadb.host, mariadb.port, user, "pw", fresh_db)
        with pytest.raises(UsageError) as e:
            choose_engine("physical", target, NullReporter())
        text = str(e.value)
        assert "\n" not in text and f"the user {user} lacks what mariadb-backup needs: " \
            "RELOAD, PROCESS, BINLOG MONITOR (GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* " \
            "TO it)" in text, text
        log = Log()
        assert choose_engine("auto", target, log) is None
        assert log.lines[0].startswith(f"engine auto: logical, because the user {user} lacks")
        _run(conn, f"GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO '{user}'@'%'")
        where = choose_engine("auto", target, Log())
        assert where is not None  # and with them mariadb-backup works
        d = dump_physical(target, repo, Log(), where, threads=2)
        assert [t["physical"]["rows"] for t in d["tables"]] == [2]
    finally:
        _run(conn, f"DROP USER '{user}'@'%'")


def test_a_physical_snapshot_restores_logically_where_pages_cannot_go(
        mariadb, fresh_db, repo, tmp_path, monkeypatch):
    """Another server (here: the session's, taken for remote by counting no address as
    loopback) gets the pages as rows, read back on a private server; an export too."""
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    before = db_state(conn, fresh_db)
    d = _physical(mariadb, fresh_db, repo)
    export_and_reload(mariadb, repo, fresh_db, d, tmp_path / "export.sql")
    assert_same(db_state(conn, fresh_db), before, "physical snapshot, exported, reloaded")
    monkeypatch.setattr(physical_env, "LOOPBACK", frozenset())
    _run(conn, f"DROP DATABASE {q(fresh_db)}")
    log = _restore(mariadb, fresh_db, d, repo)
    assert any("are restored as rows, because the server of" in line for line in log.lines)
    assert any("importing them into a private server" in line for line in log.lines)
    assert_same(db_state(conn, fresh_db), before, "physical snapshot, restored as rows")


def test_physical_restore_says_it_places_pages(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO t VALUES (1)")
    d = _physical(mariadb, fresh_db, repo)
    log = _restore(mariadb, fresh_db, d, repo)
    assert any(line.startswith("restoring 1 InnoDB tables as pages") for line in log.lines)


def test_killed_during_the_import_leaves_the_live_database_untouched(mariadb, fresh_db, repo,
                                                                     tmp_path):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    d = _physical(mariadb, fresh_db, repo)
    repo.flush()  # the child reads the packs from disk
    paged = [t["name"] for t in d["tables"] if "physical" in t]
    _run(conn, "SET SESSION foreign_key_checks = 0", f"DELETE FROM {q(paged[0])}")
    old = db_state(conn, fresh_db)
    desc = tmp_path / "desc.json"
    desc.write_text(json.dumps(d))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
               SNAPKEEP_CRASH_AT="mysql.physical.importing")
    res = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "repo"), str(desc),
                          str(mariadb.port), fresh_db, "finish"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-4000:]
    assert_same(db_state(conn, fresh_db), old, "the live database right after the kill")
    assert shadow_name(fresh_db) in databases(conn)  # with placed files, not yet imported
    cleanup_leftovers(_target(mariadb, fresh_db), NullReporter())
    assert {shadow_name(fresh_db), old_name(fresh_db), journal_name(fresh_db)} & databases(
        conn) == set()
    assert_same(db_state(conn, fresh_db), old, "after the cleanup")


def test_a_non_live_snapshot_holds_the_writes_itself_and_reads_the_files_in_place(
        mariadb, fresh_db, repo, tmp_path):
    """Not live: the paged tables are flushed for export and read in the data directory
    (no mariadb-backup copy in the work directory), the others read-locked; no write to
    either kind gets through while the snapshot runs."""
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
         "INSERT INTO t SELECT seq, seq FROM seq_1_to_5000",
         "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM", "INSERT INTO m VALUES (7)")
    before = db_state(conn, fresh_db)
    target = _target(mariadb, fresh_db)
    tried: dict[str, int | None] = {}

    class Probe(Log):
        def log(self, message: str) -> None:
            super().log(message)
            if message.startswith("dumped "):  # the logical part, inside the held writes
                other = mariadb.connect(fresh_db)
                try:
                    _run(other, "SET SESSION lock_wait_timeout = 1")
                    for table in ("t", "m"):
                        try:
                            _run(other, f"INSERT INTO {table} (id) VALUES (99999)")
                            tried[table] = None
                        except pymysql.MySQLError as e:
                            tried[table] = e.args[0]
                finally:
                    other.close()

    log = Probe()
    where = choose_engine("physical", target, log)
    assert where is not None
    work = tmp_path / "work"
    work.mkdir()
    d = dump_physical(target, repo, log, where, threads=2, writes_held=True, workdir=work)
    assert tried == {"t": 1205, "m": 1205}  # lock wait timeouts: both kinds held
    assert any("flushed for export and read in place" in line for line in log.lines)
    assert not any("mariadb-backup copied" in line for line in log.lines)
    assert list(work.iterdir()) == []
    assert [t["name"] for t in d["tables"] if "physical" in t] == ["t"]
    _run(conn, "DELETE FROM t", "DELETE FROM m")  # writes go through again
    _restore(mariadb, fresh_db, d, repo)
    assert_same(db_state(conn, fresh_db), before, "non-live physical snapshot")


def test_some_tables_restore_through_pages(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB",
         "INSERT INTO parent VALUES (1), (2)",
         "CREATE TABLE child (id INT PRIMARY KEY, p INT, KEY (p), FOREIGN KEY (p) "
         "REFERENCES parent (id)) ENGINE=InnoDB", "INSERT INTO child VALUES (10, 1), (11, 2)")
    before = db_state(conn, fresh_db)
    d = _physical(mariadb, fresh_db, repo)
    _run(conn, "DELETE FROM child WHERE id = 11", "INSERT INTO parent VALUES (3)")
    prepared = prepare_restore(_target(mariadb, fresh_db), d, repo, NullReporter(),
                               threads=2, tables=["child"])
    prepared.swap()
    prepared.finish()
    after = db_state(conn, fresh_db)
    assert after["tables"]["child"] == before["tables"]["child"]
    assert after["tables"]["parent"] != before["tables"]["parent"]  # not restored
    with conn.cursor() as cur:  # the restored child's foreign key names the live parent
        cur.execute("SELECT UNIQUE_CONSTRAINT_SCHEMA FROM information_schema."
                    "REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s", (fresh_db,))
        assert cur.fetchall() == ((fresh_db,),)


def test_a_snapshot_right_after_a_physical_restore_takes_the_imported_tables_as_rows(
        mariadb, fresh_db, repo):
    """mariadb-backup skips a tablespace imported since the last checkpoint (it reads the
    DISCARD in the redo as a drop): that table is dumped as rows, saying why."""
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
         "INSERT INTO t SELECT seq, seq FROM seq_1_to_1000")
    before = db_state(conn, fresh_db)
    _restore(mariadb, fresh_db, _physical(mariadb, fresh_db, repo), repo)
    log = Log()
    d = _physical(mariadb, fresh_db, repo, log)
    skipped = [line for line in log.lines if "did not copy its tablespace" in line]
    paged = [t["name"] for t in d["tables"] if "physical" in t]
    assert (skipped and not paged) or (paged == ["t"] and not skipped)  # a checkpoint may
    _run(conn, "DELETE FROM t")                                          # have come between
    _restore(mariadb, fresh_db, d, repo)
    assert_same(db_state(conn, fresh_db), before, "snapshot after a physical restore")


_AS_NOBODY = """
import sys
from snapkeep.engines.mysql import MySQLTarget, choose_engine
from snapkeep.errors import UsageError
from snapkeep.progress import NullReporter

class Log(NullReporter):
    def log(self, message):
        print("LOG", message)

target = MySQLTarget("127.0.0.1", int(sys.argv[1]), "root", None, sys.argv[2])
print("AUTO", choose_engine("auto", target, Log()))
try:
    choose_engine("physical", target, Log())
except UsageError as e:
    print("REFUSED", e)
"""


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a process as another user")
def test_a_process_that_may_not_use_the_data_directory_is_refused_in_one_line(
        mariadb, fresh_db):
    """snapkeep running as a user who may not write the server's data directory (here:
    nobody, allowed only to read and search — the Python of the tests lives under /root):
    ``physical`` refuses in one line naming the directory and the user, ``auto`` takes
    rows and says why — no traceback."""
    nobody = 65534
    res = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}",
                          "--clear-groups", "--inh-caps=+dac_read_search",
                          "--ambient-caps=+dac_read_search",
                          sys.executable, "-c", _AS_NOBODY, str(mariadb.port), fresh_db],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                         cwd="/")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert "AUTO None" in lines, lines
    logged = [line for line in lines if line.startswith("LOG engine auto: logical")]
    refused = [line for line in lines if line.startswith("REFUSED ")]
    assert len(logged) == 1 and len(refused) == 1, lines
    for line in (logged[0], refused[0]):
        assert f"uid {nobody}" in line and "data directory" in line, line


def test_mariadb_backup_failing_before_its_stop_fails_the_snapshot_in_one_line(
        mariadb, fresh_db, repo, tmp_path):
    """A user without RELOAD: mariadb-backup cannot take its backup stages and exits
    before the stop the logical dump waits for; the snapshot fails naming it, in one line,
    and leaves no work directory."""
    user = f"norel_{fresh_db[-8:]}"
    root = mariadb.connect(fresh_db)
    _run(root, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
         "INSERT INTO t VALUES (1)", f"CREATE USER '{user}'@'%'",
         f"GRANT SELECT, SHOW VIEW, LOCK TABLES, PROCESS ON *.* TO '{user}'@'%'")
    try:
        target = MySQLTarget(mariadb.host, mariadb.port, user, None, fresh_db)
        # the grants check would refuse this user first (physical_env): the place is
        # root's, to see mariadb-backup itself fail
        where = choose_engine("physical", _target(mariadb, fresh_db), Log())
        assert where is not None
        work = tmp_path / "work"
        work.mkdir()
        with pytest.raises(ServiceUnavailable) as e:
            dump_physical(target, repo, Log(), where, threads=2, workdir=work)
        text = str(e.value)
        assert "\n" not in text and "mariadb-backup --backup of" in text and "failed" in text
        assert list(work.iterdir()) == []
    finally:
        _run(root, f"DROP USER '{user}'@'%'")


def test_unused_pages_are_allocated_not_written_and_the_table_is_the_same(mariadb, fresh_db,
                                                                          repo):
    """A tablespace's unused pages (zeros, where InnoDB extended the file) are chunks of
    their own: the restore allocates their range (no hole, no bytes copied)."""
    conn = mariadb.connect(fresh_db)
    _run(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(250)) ENGINE=InnoDB",
         "INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_40000")
    d = _physical(mariadb, fresh_db, repo)
    ref = next(t["physical"]["ibd"] for t in d["tables"] if t["name"] == "t")
    zeros = sum(n for cid, n in ref["chunks"] if cid == repo.chunk_id(bytes(n)))
    assert zeros > 0, "no chunk of zeros in the tablespace: the test proves nothing"
    before = db_state(conn, fresh_db)
    log = _restore(mariadb, fresh_db, d, repo)
    line = next(x for x in log.lines if x.startswith("imported 1 InnoDB tables as pages"))
    assert f"{zeros} bytes of unused pages allocated, not written" in line
    conn = mariadb.connect(fresh_db)
    assert_same(db_state(conn, fresh_db), before, "after the restore")
    with conn.cursor() as cur:
        cur.execute("SELECT @@datadir")
        datadir = Path(cur.fetchone()[0])
    ibd = datadir / fresh_db / "t.ibd"
    assert ibd.stat().st_blocks * 512 >= ibd.stat().st_size  # no holes


def test_writers_and_importing_connections_restore_exactly_or_not_at_all(
        mariadb, fresh_db, repo, tmp_path):
    """The writers hand each written .ibd to a connection for its IMPORT and go on with the
    next table: the restore equals the snapshot; a damaged chunk in one table fails the
    restore naming that table, with the live database as it was and no writer left."""
    conn = mariadb.connect(fresh_db)
    for name, rows in (("big", 60000), ("mid", 20000), ("small", 300)):
        _run(conn, f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(200), KEY (v)) "
                   "ENGINE=InnoDB",
             f"INSERT INTO {name} SELECT seq, SHA2(seq * {len(name)}, 256) "
             f"FROM seq_1_to_{rows}")
    d = _physical(mariadb, fresh_db, repo)
    repo.flush()
    snapshot_state = db_state(conn, fresh_db)
    _run(conn, "DELETE FROM big WHERE id % 3 = 0", "UPDATE mid SET v = 'changed'",
         "DROP TABLE small")
    _restore(mariadb, fresh_db, d, repo)
    conn = mariadb.connect(fresh_db)
    assert_same(db_state(conn, fresh_db), snapshot_state, "restored from pieces")

    _run(conn, "DELETE FROM big WHERE id % 5 = 0")
    live = db_state(conn, fresh_db)
    ibd = next(t["physical"]["ibd"] for t in d["tables"] if t["name"] == "big")
    # The last chunk holding data, so some tables are written before the damage is met; the
    # file's tail can be all zero pages (allocated, unused), whose chunks are never read.
    holding_data = [c for c, n in ibd["chunks"] if c != repo.chunk_id(bytes(n))]
    assert len(holding_data) > 1, ibd["chunks"]
    cid = holding_data[-1]
    key, offset, _length = repo.locate_chunk(cid)
    pack = tmp_path / "repo" / key
    data = bytearray(pack.read_bytes())
    data[offset + 40] ^= 1
    pack.write_bytes(bytes(data))
    damaged = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(IntegrityError, match="the pages of table `big`"):
        _restore(mariadb, fresh_db, d, damaged)
    assert_same(db_state(conn, fresh_db), live, "after the refused restore")
    assert shadow_name(fresh_db) not in databases(conn)
    assert not [t for t in threading.enumerate() if t.name.startswith("snapkeep-write")]
