from datetime import UTC, datetime

import sqlalchemy as sa

from snapkeep.catalog import Activity, Catalog, Snapshot
from snapkeep.catalog.catalog import HEAD
from tests.helpers.catalog import OLD_SNAPSHOT_ROW, catalog_at_revision


def test_a_catalog_at_an_older_revision_is_migrated_on_open_keeping_its_rows(tmp_path):
    catalog_at_revision(tmp_path, "0001", OLD_SNAPSHOT_ROW)
    cat = Catalog.at(tmp_path)
    with cat.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    (snap,) = cat.list_snapshots("dev")
    assert snap.id == "s1" and snap.added_bytes is None
    assert snap.created_at.tzinfo is not None


def test_activities_and_their_log_round_trip(tmp_path):
    cat = Catalog.at(tmp_path)
    now = cat.clock()
    cat.add_activity(Activity(id="a1", environment="dev", type="environment.backup",
                              state="in_progress", result=None, description="d",
                              created_at=now, completion_percent=0, parameters={"live": True}))
    cat.append_log("a1", "first")
    cat.append_log("a1", "second")
    cat.update_activity("a1", state="complete", result="success", completion_percent=100)
    a = cat.get_activity("a1")
    assert (a.state, a.result, a.parameters) == ("complete", "success", {"live": True})
    lines = cat.log_lines("a1")
    assert [line.message for line in lines] == ["first", "second"]
    assert [line.message for line in cat.log_lines("a1", lines[0].id)] == ["second"]
    assert cat.list_activities("dev", states=("pending",)) == []


def test_snapshot_listing_is_newest_first_per_environment(tmp_path):
    cat = Catalog.at(tmp_path)
    for i, env in enumerate(["dev", "dev", "prod"]):
        cat.put_snapshot(Snapshot(id=f"s{i}", environment=env,
                                  created_at=datetime(2026, 11, 20 + i, tzinfo=UTC),
                                  expires_at=None, live=False, automated=False, commit_id=None,
                                  size_bytes=1, added_bytes=1, status="complete"))
    assert [s.id for s in cat.list_snapshots("dev")] == ["s1", "s0"]
    cat.delete_snapshot("s1")
    assert cat.snapshot_ids() == {"s0", "s2"}


def test_migration_0005_adds_the_drill_outcome_and_a_pass_records_its_time(tmp_path):
    catalog_at_revision(tmp_path, "0004", OLD_SNAPSHOT_ROW)
    cat = Catalog.at(tmp_path)
    snap = cat.get_snapshot("s1")
    assert (snap.verified_at, snap.verified_ok) == (None, None)
    passed = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    cat.record_drill("s1", True, passed)
    snap = cat.get_snapshot("s1")
    assert (snap.verified_at, snap.verified_ok) == (passed, True)
    cat.record_drill("s1", False, datetime(2026, 12, 2, 4, 0, tzinfo=UTC))
    snap = cat.get_snapshot("s1")
    assert (snap.verified_at, snap.verified_ok) == (passed, False)  # the last pass, failed now


def _pragma(tx, name: str):
    return tx.rows(f"PRAGMA {name}")[0][0]


def test_progress_and_log_lines_commit_without_waiting_for_the_disk(tmp_path):
    """An activity's progress and log lines go through a connection with
    synchronous=NORMAL (no fdatasync per commit); every other write keeps SQLite's FULL,
    whose next commit also syncs those earlier ones (one WAL)."""
    cat = Catalog.at(tmp_path)
    now = cat.clock()
    cat.add_activity(Activity(id="a1", environment="dev", type="environment.backup",
                              state="in_progress", result=None, description="d",
                              created_at=now, completion_percent=0, parameters={}))
    cat.append_log("a1", "a line")
    cat.update_activity("a1", completion_percent=40)
    assert len(cat._progress_pool._idle) == 1  # the connection append_log and update used
    with cat._sql("progress") as tx:
        assert _pragma(tx, "synchronous") == 1  # NORMAL
        assert _pragma(tx, "foreign_keys") == 1
    for kind in ("read", "write", "queue"):
        with cat._sql(kind) as tx:
            assert _pragma(tx, "synchronous") == 2  # FULL
            assert _pragma(tx, "journal_mode") == "wal"
    with cat.session() as s:  # the ORM's connections too
        assert s.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 2
    assert cat.get_activity("a1").completion_percent == 40  # seen by the other connection
    assert [line.message for line in cat.log_lines("a1")] == ["a line"]


def test_rows_written_by_sqlite3_and_by_the_orm_read_back_alike(tmp_path):
    """The stdlib-sqlite3 statements (catalog/sql.py) store values as SQLAlchemy's SQLite
    dialect does: rows written by either are read back equal by the other (a catalog
    written by an older snapkeep, or by the ORM-mapped rest, stays readable)."""
    from snapkeep.catalog import models

    cat = Catalog.at(tmp_path)
    t = datetime(2026, 12, 6, 1, 2, 3, 4005, tzinfo=UTC)
    fields = dict(environment="dev", type="environment.backup", state="complete",
                  result="success", description="d", created_at=t, started_at=t,
                  completed_at=t, completion_percent=100, snapshot_id="s1",
                  parameters={"live": True, "threads": None}, pid=7, error=None,
                  worker="h:7:0", lease_expires_at=t, cancel_requested=True, actor="me",
                  warnings=["w"])
    cat.add_activity(Activity(id="by-sql", **fields))
    with cat.session() as s:
        s.add(models.Activity(id="by-orm", project=cat.project, **fields))
    for a in (cat.get_activity("by-sql"), cat.get_activity("by-orm")):
        assert {k: getattr(a, k) for k in fields} == fields
    with cat.session() as s:
        orm = s.get(models.Activity, "by-sql")
        assert {k: getattr(orm, k) for k in fields} == {
            **fields, **{k: t.replace(tzinfo=None) for k in
                         ("created_at", "started_at", "completed_at", "lease_expires_at")}}
    with cat.engine.connect() as conn:  # byte for byte the same stored text
        stored = conn.execute(sa.text("SELECT * FROM activities ORDER BY id")).all()
    assert stored[0][1:] == stored[1][1:]
    cat.put_snapshot(Snapshot(id="s1", environment="dev", created_at=t, expires_at=None,
                              live=True, automated=False, commit_id=None, size_bytes=5,
                              added_bytes=None, status="complete"))
    with cat.session() as s:
        assert s.get(models.Snapshot, (cat.project, "s1")).created_at == t.replace(tzinfo=None)
