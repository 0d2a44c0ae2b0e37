"""MySQL engine round trips against a real MariaDB: dump, change, restore, compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.engines.mysql import (
    cleanup_leftovers,
    dump_database,
    hold_writes,
    prepare_restore,
)
from snapkeep.engines.mysql.names import old_name, shadow_name
from snapkeep.errors import IntegrityError, SnapkeepError
from snapkeep.repository import BlobRef
from tests.helpers.corpora import load_unit, unit
from tests.helpers.damage import flip_chunk_byte
from tests.helpers.dbstate import (
    assert_same,
    databases,
    db_state,
    exact_values,
    load_sql_file,
    q,
    target_for,
)
from tests.helpers.recording import Recorder
from tests.helpers.restore_child import RESTORE
from tests.helpers.sql import run

SQL_DIR = Path(__file__).parent / "sql"


def load_type_coverage(mariadb, db: str) -> None:
    load_sql_file(mariadb, db, SQL_DIR / "type_coverage.sql")


def snapshotted_type_coverage(mariadb, db: str, repo):
    """The type-coverage schema loaded into ``db`` and dumped into ``repo``: a connection
    to ``db``, its target and the dump's description."""
    load_type_coverage(mariadb, db)
    conn = mariadb.connect(db)
    target = target_for(mariadb, db)
    return conn, target, dump_database(target, repo, Recorder())


def change_live_database(conn, db: str) -> None:
    conn.select_db(db)
    run(conn,
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
        "UPDATE numbers SET f = 2.5, d = -1 WHERE id IN (1, 2)",
        "DELETE FROM strings WHERE id IN (5, 7)",
        "INSERT INTO parent (name) VALUES ('fires the trigger')",
        "DROP TABLE aria_log",
        "CREATE TABLE extra_live_only (id INT PRIMARY KEY) ENGINE=InnoDB",
        "INSERT INTO extra_live_only VALUES (1)",
        "DROP VIEW a_top",
        "CREATE VIEW live_only_view AS SELECT 1 AS one",
        "DROP TRIGGER parent_bi2",
        "DROP PROCEDURE `count strings`",
        "CREATE PROCEDURE live_only_proc() SELECT 1",
        "DROP EVENT nightly_cleanup",
        "SELECT NEXTVAL(seq_orders)",
        "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci COMMENT 'changed'")


def test_type_coverage_round_trips_exactly_after_the_live_database_changed(
        mariadb, fresh_db, repo):
    load_type_coverage(mariadb, fresh_db)
    conn = mariadb.connect(fresh_db)
    before, values = db_state(conn, fresh_db), exact_values(conn, fresh_db)
    target = target_for(mariadb, fresh_db)
    progress = Recorder()
    with hold_writes(target, progress):
        description = dump_database(target, repo, progress, writes_held=True)
    json.dumps(description)  # the manifest must be able to hold it
    assert any("held for" in line for line in progress.lines)
    assert description["backup_lock"] is None  # told writes are held: no lock of its own

    change_live_database(conn, fresh_db)
    assert db_state(conn, fresh_db) != before

    restore_progress = Recorder()
    prepared = prepare_restore(target, description, repo, restore_progress)
    assert shadow_name(fresh_db) in databases(conn)
    prepared.swap()
    prepared.finish()

    after = db_state(conn, fresh_db)
    assert_same(after, before)
    assert exact_values(conn, fresh_db) == values
    assert restore_progress.done == restore_progress.total > 0
    assert {shadow_name(fresh_db), old_name(fresh_db)} & databases(conn) == set()


def test_the_description_names_every_object_and_stores_rows_as_blobs(mariadb, fresh_db, repo):
    load_type_coverage(mariadb, fresh_db)
    d = dump_database(target_for(mariadb, fresh_db), repo, Recorder())
    assert d["kind"] == "mysql" and d["format"] == 3 and d["database"] == fresh_db
    assert (d["charset"], d["collation"]) == ("utf8mb4", "utf8mb4_unicode_ci")
    tables = {t["name"]: t for t in d["tables"]}
    assert "we`ird.na me%" in tables and "seq_orders" not in tables
    assert [s["name"] for s in d["sequences"]] == ["seq_orders"]
    assert [v["name"] for v in d["views"]].index("z_base") < [
        v["name"] for v in d["views"]].index("a_top")
    assert tables["heap_myisam"]["row_count"] == 6
    assert tables["numbers"]["auto_increment"] == 1000
    generated_cols = [c[0] for c in tables["generated"]["columns"]]
    assert generated_cols == ["id", "a", "hidden", "note"]
    rows = b"".join(repo.read_blob(BlobRef.from_json(p)) for p in tables["parent"]["parts"])
    assert rows.startswith(b"0\tzero id\n")  # the escaped encoding of the C row pump
    assert {p["encoding"] for t in d["tables"] for p in t["parts"]} == {"escaped"}
    assert d["size_bytes"] == sum(p["size"] for t in d["tables"] for p in t["parts"])


def test_an_unchanged_table_encodes_to_the_same_bytes_in_the_next_snapshot(
        mariadb, fresh_db, repo):
    load_type_coverage(mariadb, fresh_db)
    target = target_for(mariadb, fresh_db)
    first = dump_database(target, repo, Recorder())
    second = dump_database(target, repo, Recorder())
    assert [t["parts"] for t in first["tables"]] == [t["parts"] for t in second["tables"]]


def test_rollback_after_swap_puts_the_previous_tables_and_objects_back(
        mariadb, fresh_db, repo):
    conn, target, description = snapshotted_type_coverage(mariadb, fresh_db, repo)
    change_live_database(conn, fresh_db)
    changed = db_state(conn, fresh_db)

    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    assert db_state(conn, fresh_db) != changed
    prepared.rollback()

    assert_same(db_state(conn, fresh_db), changed)
    assert {shadow_name(fresh_db), old_name(fresh_db)} & databases(conn) == set()


def test_an_expired_not_preserve_event_is_reported_not_fatal(mariadb, fresh_db, repo):
    load_type_coverage(mariadb, fresh_db)
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    for event in description["events"]:
        event["create"] = event["create"].replace("2037-01-01", "2001-01-01")
    progress = Recorder()
    prepared = prepare_restore(target, description, repo, progress)
    prepared.swap()
    prepared.finish()
    assert any("far_future_once" in line and "warning" in line for line in progress.lines)
    conn = mariadb.connect(fresh_db)
    assert set(db_state(conn, fresh_db)["events"]) == {"nightly_cleanup"}


def test_a_restore_failing_part_way_leaves_the_live_database_as_it_was(
        mariadb, fresh_db, repo, tmp_path):
    conn, target, description = snapshotted_type_coverage(mariadb, fresh_db, repo)
    change_live_database(conn, fresh_db)
    changed = db_state(conn, fresh_db)

    # Damage the rows of a table in the middle of the restore order.
    table = next(t for t in description["tables"] if t["name"] == "strings")
    chunk_id = table["parts"][0]["chunks"][0][0]
    flip_chunk_byte(repo, tmp_path / "repo", chunk_id)

    with pytest.raises(IntegrityError):
        prepare_restore(target, description, repo, Recorder())
    assert_same(db_state(conn, fresh_db), changed)
    assert {shadow_name(fresh_db), old_name(fresh_db)} & databases(conn) == set()


def test_a_server_error_while_loading_drops_the_shadow(mariadb, fresh_db, repo):
    conn, target, description = snapshotted_type_coverage(mariadb, fresh_db, repo)
    before = db_state(conn, fresh_db)
    broken = next(t for t in description["tables"] if t["name"] == "parent")
    broken["create"] = broken["create"].replace("CREATE TABLE", "CREATE TABEL")
    with pytest.raises(SnapkeepError) as info:
        prepare_restore(target, description, repo, Recorder())
    assert target.describe() in str(info.value)
    assert_same(db_state(conn, fresh_db), before)
    assert shadow_name(fresh_db) not in databases(conn)


def test_cleanup_removes_the_shadow_of_a_restore_killed_with_sigkill(
        mariadb, fresh_db, repo, tmp_path):
    conn, target, description = snapshotted_type_coverage(mariadb, fresh_db, repo)
    repo.flush()  # the subprocess reads the packs from disk
    before = db_state(conn, fresh_db)
    desc_file = tmp_path / "desc.json"
    desc_file.write_text(json.dumps(description))
    # killed by its crash point as it starts loading a table into the shadow database
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), SNAPKEEP_CRASH_AT="mysql.loading")
    res = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "repo"), str(desc_file),
                          str(mariadb.port), fresh_db, "finish"], env=env, timeout=600,
                         check=False)
    assert res.returncode == -signal.SIGKILL
    assert shadow_name(fresh_db) in databases(conn)

    progress = Recorder()
    cleanup_leftovers(target, progress)
    assert shadow_name(fresh_db) not in databases(conn)
    assert any(shadow_name(fresh_db) in line for line in progress.lines)
    assert_same(db_state(conn, fresh_db), before)


def test_a_restore_creates_a_missing_live_database(mariadb, fresh_db, repo):
    load_type_coverage(mariadb, fresh_db)
    conn = mariadb.connect()
    before = db_state(conn, fresh_db)
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    run(conn, f"DROP DATABASE {q(fresh_db)}")
    prepared = prepare_restore(target, description, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert_same(db_state(conn, fresh_db), before)


# -- corpora -------------------------------------------------------------------------------

def round_trip_unit(mariadb, repo, name: str, drop_first: bool) -> dict[str, dict]:
    u = unit(name)
    load_unit(mariadb, u)
    conn = mariadb.connect()
    states = {}
    try:
        for db in u["databases"]:
            before = db_state(conn, db)
            target = target_for(mariadb, db)
            description = dump_database(target, repo, Recorder())
            if drop_first:
                run(conn, f"DROP DATABASE {q(db)}")
            prepared = prepare_restore(target, description, repo, Recorder())
            prepared.swap()
            prepared.finish()
            after = db_state(conn, db)
            assert_same(after, before, f"{name}: {db} differs after the round trip")
            assert {shadow_name(db), old_name(db)} & databases(conn) == set()
            states[db] = after
    finally:
        for db in u["databases"]:
            run(conn, f"DROP DATABASE IF EXISTS {q(db)}")
        conn.close()
    return states


def test_sakila_round_trips_with_its_trigger_filled_film_text(mariadb, repo):
    u = unit("sakila_mariadb")
    load_unit(mariadb, u)
    conn = mariadb.connect("sakila")
    try:
        before = db_state(conn, "sakila")
        target = target_for(mariadb, "sakila")
        description = dump_database(target, repo, Recorder())
        run(conn, "SET foreign_key_checks = 0", "DELETE FROM payment WHERE payment_id < 500",
            "UPDATE customer SET first_name = 'X'", "DROP TABLE film_text",
            "DROP VIEW actor_info", "SET foreign_key_checks = 1")
        prepared = prepare_restore(target, description, repo, Recorder())
        prepared.swap()
        prepared.finish()
        after = db_state(conn, "sakila")
        assert_same(after, before)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM film_text")
            assert cur.fetchone()[0] == 1000
        assert sum(t["rows"] for t in after["tables"].values() if "rows" in t) == 47273
    finally:
        run(conn, "DROP DATABASE IF EXISTS sakila")
        conn.close()


@pytest.mark.parametrize("name", [
    "mydumper_specific_1",       # InnoDB + MyISAM
    "mydumper_specific_4",       # RANGE partitions
    "mydumper_specific_10",      # BLOB / VARBINARY
    "mydumper_specific_11",      # routines + SQL SECURITY INVOKER view
    "mydumper_specific_15",      # an empty database
    "mydumper_specific_16",      # table names with % * ? . /
    "mydumper_specific_20",      # latin1_bin PK with case variants
    "mydumper_specific_22",      # rows that exist only through a trigger
    "mydumper_specific_26",      # three collations
    "mydumper_specific_32",      # database `db.dot`
    "mydumper_testing_db_template",
    "ghost_json", "ghost_bit_dml", "ghost_geometry", "ghost_spatial", "ghost_gbk_charset",
    "ghost_datetime_with_zero", "ghost_generated_columns", "ghost_enum", "ghost_latin1",
    "ghost_mixed_charset", "ghost_tz_datetime_ts", "ghost_trigger_advanced_features",
    "ghost_decimal", "ghost_keyword_column", "ghost_unsigned",
    "debezium_float_test", "debezium_real_test", "debezium_default_value_all_zero_time",
    "debezium_geometry_test_8", "debezium_mysql_test_create", "debezium_db_default_charset",
    "debezium_nationalized_character_test", "debezium_table_column_comment_test",
])
def test_corpus_unit_round_trips(mariadb, repo, name):
    round_trip_unit(mariadb, repo, name, drop_first=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["magento_mariadb106", "employees_partitioned_partial",
                                  "mydumper_dynamic_sakila_event", "sakila_original"])
def test_larger_corpus_unit_round_trips_into_a_dropped_database(mariadb, repo, name):
    round_trip_unit(mariadb, repo, name, drop_first=True)
