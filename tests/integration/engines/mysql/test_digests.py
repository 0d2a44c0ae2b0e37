"""Row digests (``digest.py``): recorded by the dump per table on the stream it already
reads, the same whatever the thread count, part cut or reading path; checked by every
restore before its cut-over; recomputed from a restored copy by ``table_digests``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from snapkeep.engines.mysql import (
    compare_digests,
    dump_database,
    prepare_restore,
    ranges,
    table_digests,
)
from snapkeep.engines.mysql.names import shadow_name
from snapkeep.errors import IntegrityError
from snapkeep.repository import BlobRef
from tests.helpers.dbstate import (
    assert_same,
    db_state,
    load_sql_file,
    restore_database,
    target_for,
)
from tests.helpers.recording import Recorder
from tests.helpers.sql import run

SQL_DIR = Path(__file__).parent / "sql"


def digests(d: dict) -> dict[str, dict]:
    return {t["name"]: t["digest"] for t in d["tables"]}


def parts(d: dict, name: str) -> int:
    return len(next(t for t in d["tables"] if t["name"] == name)["parts"])


@pytest.fixture
def shop(mariadb, fresh_db):
    """The type-coverage schema, a table big enough to be cut into parts, one without a
    key (duplicate rows included) and an empty one."""
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(20), b BLOB) ENGINE=InnoDB",
        "INSERT INTO big SELECT seq * 3, CONCAT('v', seq), IF(seq % 7, UNHEX(HEX(seq)), NULL) "
        "FROM seq_1_to_5000",
        "CREATE TABLE nokey (v INT, s TEXT) ENGINE=InnoDB",
        "INSERT INTO nokey SELECT seq % 3, IF(seq % 2, 'x\\ty', NULL) FROM seq_1_to_3000",
        "CREATE TABLE empty (id INT PRIMARY KEY) ENGINE=InnoDB")
    return conn


def small_parts(monkeypatch, rows: int) -> None:
    monkeypatch.setattr(ranges, "MIN_PART_ROWS", rows)
    monkeypatch.setattr(ranges, "MAX_PART_ROWS", rows)


# -- at snapshot time ---------------------------------------------------------------------------

def test_digests_do_not_depend_on_threads_or_the_cut_into_parts(
        mariadb, fresh_db, repo, shop, monkeypatch):
    target = target_for(mariadb, fresh_db)
    one = dump_database(target, repo, Recorder(), threads=1)
    small_parts(monkeypatch, 700)
    four = dump_database(target, repo, Recorder(), threads=4)
    assert parts(one, "big") == 1 and parts(four, "big") > 3
    assert digests(one) == digests(four)
    for t in one["tables"]:
        assert t["digest"]["rows"] == t["row_count"]
        assert t["digest"]["algorithm"] == "xxh64x2" and t["digest"]["encoding"] == "escaped"
    assert digests(one)["big"]["rows"] == 5000 and digests(one)["nokey"]["rows"] == 3000
    assert digests(one)["empty"] == {"algorithm": "xxh64x2", "encoding": "escaped", "rows": 0,
                                     "sum": "0" * 32}


@pytest.mark.parametrize("fmt", [2, 3])
def test_the_pump_and_the_python_paths_give_the_same_digests(
        mariadb, fresh_db, repo, shop, monkeypatch, fmt):
    target = target_for(mariadb, fresh_db)
    pumped = dump_database(target, repo, Recorder(), threads=2)
    small_parts(monkeypatch, 1000)
    python = dump_database(target, repo, Recorder(), threads=3, fmt=fmt, use_pump=False)
    if fmt == 2:  # escaped lines encoded in Python: the pump's lines, the pump's digest
        assert digests(python) == digests(pumped)
        return
    # quoted lines composed by the server: another encoding, the same counts, other sums
    # where a line holds a string (a table of numbers only has the same lines in both)
    for name, d in digests(python).items():
        assert d["encoding"] == "quoted" and d["rows"] == digests(pumped)[name]["rows"]
    for name in ("big", "nokey"):
        assert digests(python)[name]["sum"] != digests(pumped)[name]["sum"]
    again = dump_database(target, repo, Recorder(), threads=1, fmt=3, use_pump=False)
    assert digests(again) == digests(python)


@pytest.mark.parametrize("use_pump", [True, False])
def test_null_empty_the_word_null_and_binary_values_digest_differently(
        mariadb, fresh_db, repo, use_pump):
    conn = mariadb.connect(fresh_db)
    values = ["NULL", "''", "'NULL'", "'\\\\N'", "X'00'", "X'5C'", "'N'", "X'0A'", "X'09'"]
    for i, v in enumerate(values):
        run(conn, f"CREATE TABLE t{i} (id INT PRIMARY KEY, v VARBINARY(10))",
            f"INSERT INTO t{i} VALUES (1, {v})")
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2,
                      use_pump=use_pump)
    sums = [digests(d)[f"t{i}"]["sum"] for i in range(len(values))]
    assert len(set(sums)) == len(values)


# -- the drill's recomputation -------------------------------------------------------------------

@pytest.fixture
def copy_db(mariadb, fresh_db):
    """An empty scratch database beside ``fresh_db``, as the drill restores into."""
    name = f"{fresh_db}_copy"
    run(mariadb.connect(), f"CREATE DATABASE `{name}`")
    yield name
    run(mariadb.connect(), f"DROP DATABASE IF EXISTS `{name}`")


def test_table_digests_of_a_restored_copy_equal_the_recorded_ones(
        mariadb, fresh_db, copy_db, repo, shop, monkeypatch):
    small_parts(monkeypatch, 1000)
    target, scratch = target_for(mariadb, fresh_db), target_for(mariadb, copy_db)
    for use_pump in (True, False):  # escaped, then quoted lines
        d = dump_database(target, repo, Recorder(), threads=3, use_pump=use_pump)
        restore_database(scratch, d, repo)
        found = table_digests(scratch, d, Recorder(), threads=2)
        assert set(found) == set(digests(d))
        for name, want in digests(d).items():
            assert {k: found[name][k] for k in want} == want
        assert compare_digests(d, found) == []


def test_compare_digests_names_a_changed_row_and_missing_tables(
        mariadb, fresh_db, copy_db, repo, shop):
    scratch = target_for(mariadb, copy_db)
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    restore_database(scratch, d, repo)
    conn = mariadb.connect(copy_db)
    run(conn, "UPDATE big SET v = 'changed' WHERE id = 300", "DROP TABLE empty",
        "CREATE TABLE extra (id INT)")
    problems = compare_digests(d, table_digests(scratch, d, Recorder()))
    assert len(problems) == 3, problems
    assert any("`big`: the rows differ" in p for p in problems)
    assert any("`empty`: in the snapshot but missing" in p for p in problems)
    assert any("`extra`: in the restored copy but not in the snapshot" in p for p in problems)
    run(conn, "DROP TABLE extra", "CREATE TABLE empty (id INT PRIMARY KEY) ENGINE=InnoDB",
        "UPDATE big SET v = 'v100' WHERE id = 300", "DELETE FROM nokey LIMIT 1")
    problems = compare_digests(d, table_digests(scratch, d, Recorder()))
    assert problems == ["table `nokey`: 2999 rows in the restored copy, 3000 in the snapshot"]
    old = _without_digests(d)
    problems = compare_digests(old, table_digests(scratch, old, Recorder()))
    assert len(problems) == len(old["tables"])
    assert all("not verifiable (snapshot predates digests)" in p for p in problems)


def _without_digests(d: dict) -> dict:
    old = copy.deepcopy(d)
    for t in old["tables"]:
        del t["digest"]
    return old


def test_a_table_dumped_in_mixed_encodings_is_checked_per_encoding(
        mariadb, fresh_db, copy_db, repo, monkeypatch):
    small_parts(monkeypatch, 1000)
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, payload LONGBLOB) ENGINE=InnoDB",
        "INSERT INTO t SELECT seq, CONCAT('p', seq) FROM seq_1_to_3000")
    with conn.cursor() as cur:  # over the packet limit below as one quoted line
        cur.execute("UPDATE t SET payload = %s WHERE id = 1500", (bytes(range(256)) * 6000,))
    old = conn.cursor()
    old.execute("SELECT @@GLOBAL.max_allowed_packet")
    limit = old.fetchone()[0]
    run(conn, "SET GLOBAL max_allowed_packet = 1048576")  # new connections only
    try:
        d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2,
                          use_pump=False)
    finally:
        run(conn, f"SET GLOBAL max_allowed_packet = {int(limit)}")
    digest = digests(d)["t"]
    assert digest["encoding"] == "mixed" and digest["rows"] == 3000
    assert set(digest["encodings"]) == {"escaped", "quoted"}
    assert sum(e["rows"] for e in digest["encodings"].values()) == 3000
    scratch = target_for(mariadb, copy_db)
    restore_database(scratch, d, repo)  # checked per encoding
    problems = compare_digests(d, table_digests(scratch, d, Recorder()))
    assert problems == ["table `t`: row count matches; digest not verifiable (its parts "
                        "were dumped in escaped/quoted lines)"]
    tampered = _tamper_mixed(d)
    with pytest.raises(IntegrityError, match="digest of the quoted lines"):
        prepare_restore(scratch, tampered, repo, Recorder())


def _tamper_mixed(d: dict) -> dict:
    out = copy.deepcopy(d)
    quoted = out["tables"][0]["digest"]["encodings"]["quoted"]
    quoted["sum"] = ("1" if quoted["sum"][0] != "1" else "2") + quoted["sum"][1:]
    return out


# -- at restore time -------------------------------------------------------------------------------

def test_a_restore_checks_the_digests_and_restores_when_they_match(
        mariadb, fresh_db, repo, shop, monkeypatch):
    small_parts(monkeypatch, 1000)
    target = target_for(mariadb, fresh_db)
    before = db_state(shop, fresh_db)
    d = dump_database(target, repo, Recorder(), threads=3)
    run(shop, "DELETE FROM big WHERE id < 900")
    log = Recorder()
    prepared = prepare_restore(target, d, repo, log)
    prepared.swap()
    prepared.finish()
    assert_same(db_state(shop, fresh_db), before)
    n = len(d["tables"])
    assert any(f"the row digests of {n} of {n} tables match" in line for line in log.lines)


@pytest.mark.parametrize("damage", ["sum", "rows", "encoding"])
def test_a_restore_with_a_tampered_digest_refuses_and_leaves_the_live_database(
        mariadb, fresh_db, repo, shop, damage):
    target = target_for(mariadb, fresh_db)
    d = dump_database(target, repo, Recorder(), threads=2)
    run(shop, "DELETE FROM big WHERE id < 900", "UPDATE nokey SET v = 7")
    live = db_state(shop, fresh_db)
    big = next(t for t in d["tables"] if t["name"] == "big")
    if damage == "sum":
        s = big["digest"]["sum"]
        big["digest"]["sum"] = s[:-1] + ("0" if s[-1] != "0" else "1")
    elif damage == "rows":
        big["digest"]["rows"] += 1
    else:
        big["digest"]["encoding"] = "quoted"
    with pytest.raises(IntegrityError) as err:
        prepare_restore(target, d, repo, Recorder())
    assert "`big`" in str(err.value)
    assert_same(db_state(shop, fresh_db), live)
    assert mariadb.connect().cursor().execute(
        f"SHOW DATABASES LIKE '{shadow_name(fresh_db)}'") == 0


def _rewrite_part(repo, d: dict, name: str, change) -> None:
    """Store ``change(lines)`` of table ``name``'s first part as a new blob in its place:
    rows that differ from the ones the digest was taken of, in a sound blob."""
    table = next(t for t in d["tables"] if t["name"] == name)
    part = table["parts"][0]
    lines = repo.read_blob(BlobRef.from_json(part)).split(b"\n")[:-1]
    writer = repo.blob_writer()
    writer.write(b"".join(line + b"\n" for line in change(lines)))
    part.update(writer.close().to_json())


def test_rows_changed_after_the_digest_was_taken_are_refused(mariadb, fresh_db, repo, shop):
    target = target_for(mariadb, fresh_db)
    d = dump_database(target, repo, Recorder(), threads=2)
    _rewrite_part(repo, d, "big", lambda lines: [lines[0].replace(b"\tv1\t", b"\tv9\t"),
                                                 *lines[1:]])
    run(shop, "DELETE FROM big WHERE id < 900")
    live = db_state(shop, fresh_db)
    with pytest.raises(IntegrityError, match=r"`big`.*digest of the escaped lines"):
        prepare_restore(target, d, repo, Recorder())
    assert_same(db_state(shop, fresh_db), live)


def test_a_load_whose_fields_went_out_of_step_is_refused_without_a_digest(
        mariadb, fresh_db, repo, shop):
    target = target_for(mariadb, fresh_db)
    d = dump_database(target, repo, Recorder(), threads=2)
    for t in d["tables"]:
        del t["digest"]
    # one line loses its last field: the server fills in the column and warns (1261)
    _rewrite_part(repo, d, "big", lambda lines: [lines[0].rsplit(b"\t", 1)[0], *lines[1:]])
    run(shop, "DELETE FROM big WHERE id < 900")
    live = db_state(shop, fresh_db)
    with pytest.raises(IntegrityError, match=r"`big`.*changed values while loading: 1261"):
        prepare_restore(target, d, repo, Recorder())
    assert_same(db_state(shop, fresh_db), live)


def test_a_snapshot_without_digests_still_restores(mariadb, fresh_db, repo, shop):
    target = target_for(mariadb, fresh_db)
    before = db_state(shop, fresh_db)
    d = dump_database(target, repo, Recorder(), threads=2)
    for t in d["tables"]:
        del t["digest"]
    run(shop, "DELETE FROM big WHERE id < 900")
    restore_database(target, d, repo)
    assert_same(db_state(shop, fresh_db), before)


def test_table_digests_of_a_system_versioned_copy_cover_its_history(
        mariadb, fresh_db, copy_db, repo):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE price (id INT PRIMARY KEY, amount INT) WITH SYSTEM VERSIONING",
        "INSERT INTO price VALUES (1, 10), (2, 20)", "UPDATE price SET amount = 11 WHERE id = 1",
        "DELETE FROM price WHERE id = 2")
    scratch = target_for(mariadb, copy_db)
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder(), threads=2)
    assert digests(d)["price"]["rows"] == 3  # one current row version, two in the history
    restore_database(scratch, d, repo)
    assert compare_digests(d, table_digests(scratch, d, Recorder())) == []
    # a history row lost in the copy is found, though every current row is the same
    copy_conn = mariadb.connect(copy_db)
    run(copy_conn, "DELETE HISTORY FROM price")
    problems = compare_digests(d, table_digests(scratch, d, Recorder()))
    assert len(problems) == 1 and "`price`" in problems[0], problems
