"""A restore killed with SIGKILL at exact points: the next cleanup_leftovers leaves the live
database entirely old or entirely new (tables, rows, triggers, views, routines, events).

The restore runs in a subprocess with ``SNAPKEEP_CRASH_AT`` naming a
``snapkeep.faults.crash_point`` of ``engines/mysql/restore.py``; the process SIGKILLs
itself there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.engines.mysql import MySQLTarget, cleanup_leftovers, dump_database
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import recut_parts
from tests.helpers.dbstate import assert_same, databases, db_state, load_sql_file
from tests.helpers.restore_child import RESTORE

SQL_DIR = Path(__file__).parent / "sql"


def change_live(conn, db: str) -> None:
    conn.select_db(db)
    with conn.cursor() as cur:
        for sql in ("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
                    "DELETE FROM strings WHERE id IN (5, 7)",
                    "INSERT INTO parent (name) VALUES ('fires the trigger')",
                    "DROP TABLE aria_log",
                    "CREATE TABLE extra_live_only (id INT PRIMARY KEY) ENGINE=InnoDB",
                    "DROP VIEW a_top",
                    "CREATE VIEW live_only_view AS SELECT 1 AS one",
                    "DROP TRIGGER parent_bi2",
                    "CREATE TRIGGER live_only_trg BEFORE UPDATE ON numbers FOR EACH ROW "
                    "SET NEW.d = NEW.d",
                    "DROP PROCEDURE `count strings`",
                    "CREATE PROCEDURE live_only_proc() SELECT 1"):
            cur.execute(sql)


@pytest.fixture
def scenario(mariadb, fresh_db, tmp_path):
    """(new state, old state, run(point, then)) for the type-coverage schema."""
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    new = db_state(conn, fresh_db)
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, fresh_db)
    description = recut_parts(dump_database(target, repo, NullReporter()), repo, parts=2)
    repo.flush()  # the subprocess reads the packs from disk
    change_live(conn, fresh_db)
    old = db_state(conn, fresh_db)
    desc_file = tmp_path / "desc.json"
    desc_file.write_text(json.dumps(description))

    def run(point: str, then: str = "finish") -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), SNAPKEEP_CRASH_AT=point)
        res = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "repo"),
                              str(desc_file), str(mariadb.port), fresh_db, then],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == -signal.SIGKILL, f"not killed at {point}:\n{res.stderr[-6000:]}"

    return conn, target, new, old, run


def settle(conn, target, db: str) -> dict:
    cleanup_leftovers(target, NullReporter())
    cleanup_leftovers(target, NullReporter())  # idempotent
    assert {shadow_name(db), old_name(db), journal_name(db)} & databases(conn) == set()
    return db_state(conn, db)


@pytest.mark.parametrize("point", ["mysql.loading", "mysql.journal-written"])
def test_killed_before_the_swap_leaves_the_live_database_untouched(scenario, fresh_db, point):
    conn, target, _new, old, run = scenario
    run(point)
    assert_same(db_state(conn, fresh_db), old, "the live database right after the kill")
    assert shadow_name(fresh_db) in databases(conn)
    assert_same(settle(conn, target, fresh_db), old, "after cleanup")


def test_killed_after_dropping_the_triggers_before_the_rename_is_rolled_back(
        scenario, fresh_db):
    conn, target, _new, old, run = scenario
    run("mysql.triggers-dropped")
    assert db_state(conn, fresh_db)["triggers"] == {}  # old tables without their triggers
    assert_same(settle(conn, target, fresh_db), old, "after cleanup")


@pytest.mark.parametrize("point", ["mysql.after-rename", "mysql.objects-half"])
def test_killed_after_the_rename_is_completed_with_the_snapshot_objects(
        scenario, fresh_db, point):
    conn, target, new, old, run = scenario
    run(point)
    mixed = db_state(conn, fresh_db)
    assert mixed != new and mixed != old  # new tables, objects not (all) there
    assert mixed["tables"]["strings"]["rows"] == new["tables"]["strings"]["rows"]
    assert_same(settle(conn, target, fresh_db), new, "after cleanup")


def test_killed_inside_a_rollback_is_rolled_back(scenario, fresh_db):
    conn, target, _new, old, run = scenario
    run("mysql.rollback-renamed", then="rollback")
    assert_same(settle(conn, target, fresh_db), old, "after cleanup")


def test_killed_after_the_rename_of_a_restore_that_created_the_database(
        mariadb, scenario, fresh_db):
    conn, target, new, _old, run = scenario
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{fresh_db}`")
    run("mysql.after-rename")
    assert_same(settle(conn, target, fresh_db), new, "after cleanup")


def test_the_caller_can_settle_a_cutover_killed_after_the_rename_as_old(scenario, fresh_db):
    conn, target, _new, old, run = scenario
    run("mysql.objects-half")
    cleanup_leftovers(target, NullReporter(), keep_new=False)
    assert_same(settle(conn, target, fresh_db), old, "after cleanup")


def test_the_caller_can_settle_a_cutover_killed_before_the_rename_as_new(scenario, fresh_db):
    conn, target, new, _old, run = scenario
    run("mysql.triggers-dropped")
    cleanup_leftovers(target, NullReporter(), keep_new=True)
    assert_same(settle(conn, target, fresh_db), new, "after cleanup")
