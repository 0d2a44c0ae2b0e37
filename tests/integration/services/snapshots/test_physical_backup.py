"""A backup and restore of an environment with ``engine = "physical"`` through the
services (docs/physical.md): the default non-live backup (writes held, mariadb-backup
inside), the activity log naming the engine, the work directory gone, the restore
identical; ``engine = "auto"`` takes the same path when it can."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing
from tests.helpers.dbstate import db_state
from tests.helpers.shop import Cli, cli_env


def _project(base: Path, url: str, engine: str | None, extra: str = ""
             ) -> tuple[Context, object]:
    (base / "app").mkdir()
    config = base / "snapkeep.toml"
    config.write_text('[project]\nid = "phys"\n[repository]\nkey_file = '
                      '".snapkeep/repository.key"\n[environments.dev]\nroot = "app"\n'
                      f'database = "{url}"\n'
                      + (f'engine = "{engine}"\n' if engine else "") + extra)
    ctx = Context(load_config(str(config)))
    ctx.init_repository()
    return ctx, ctx.config.environment("dev")


@pytest.mark.parametrize("engine", ["physical", "auto"])
def test_backup_and_restore_through_pages(mariadb, fresh_db, tmp_path, engine):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        for sql in ("CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT) "
                    "ENGINE=InnoDB", "INSERT INTO orders (total) VALUES (10), (20), (30)",
                    "CREATE TABLE counters (name VARCHAR(10) PRIMARY KEY, n INT) ENGINE=Aria",
                    "INSERT INTO counters VALUES ('orders', 3)",
                    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 15"):
            cur.execute(sql)
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), engine)
    done = operations.start_backup(ctx, env, live=False)
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any(m.startswith(f"engine {engine}: physical") for m in log), log
    assert any("stored 1 InnoDB tables as pages" in m for m in log), log
    assert not any(p.is_file() for p in (ctx.config.state_dir / "physical").rglob("*"))
    manifest = ctx.repository.load_snapshot(done.snapshot_id)
    assert manifest.services["database"]["engine"] == "physical"
    listed = {s.id: s for s in listing.list_snapshots(ctx, env)}
    assert listed[done.snapshot_id].engine == "physical"  # snapshot:list's Engine column
    with conn.cursor() as cur:
        cur.execute("DELETE FROM orders")
        cur.execute("DROP VIEW big_orders")
    restored = operations.start_restore(ctx, env, done.snapshot_id)
    assert restored.result == "success"
    assert db_state(conn, fresh_db) == before


@pytest.mark.parametrize("point", ["mysql.physical.prepare", "mysql.physical.backed_up"])
def test_a_live_backup_killed_in_mariadb_backups_steps_lists_nothing_and_is_swept(
        mariadb, fresh_db, tmp_path, point):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    cli = Cli(tmp_path, {**cli_env(), "SNAPKEEP_CRASH_AT": point})
    res = cli.run("snapshot:create", "--live", "-e", "dev", check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    work = ctx.config.state_dir / "physical" / "dev"
    assert any(work.rglob("ibdata1"))  # mariadb-backup's copy, left by the kill
    assert db_state(conn, fresh_db) == before
    assert listing.list_snapshots(ctx, env) == []
    done = operations.start_backup(ctx, env, live=False)  # the next backup sweeps it
    assert done.result == "success"
    assert not any(p.is_file() for p in work.rglob("*"))
    assert [s.id for s in listing.list_snapshots(ctx, env)] == [done.snapshot_id]


@pytest.mark.parametrize(("extra", "engine"), [
    ("", "physical"),  # the default, auto, takes pages where it can
    ("point_in_time = true\n", "logical"),  # a restore --at needs a logical base (for now)
])
def test_the_default_engine_is_auto_and_logical_where_point_in_time_is_on(
        mariadb, fresh_db, tmp_path, extra, engine):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), None, extra)
    assert env.engine == "auto"
    done = operations.start_backup(ctx, env, live=False)
    log = [ln.message for ln in ctx.catalog.log_lines(done.id)]
    assert any(m.startswith(f"engine auto: {engine}") for m in log), log
    if engine == "logical":
        assert "engine auto: logical, because point-in-time restores (point_in_time = " \
               "true) need a logical base" in log
    manifest = ctx.repository.load_snapshot(done.snapshot_id)
    assert manifest.services["database"].get("engine", "logical") == engine


def test_a_backup_killed_while_its_tables_are_flushed_for_export_frees_them(
        mariadb, fresh_db, tmp_path):
    """Not live, the tables are read in place under ``FLUSH TABLES … FOR EXPORT``: a kill
    there lists nothing, and the server drops the lock (and its .cfg files) with the
    connection — writes go through at once, the next backup succeeds."""
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    before = db_state(conn, fresh_db)
    ctx, env = _project(tmp_path, mariadb.url(fresh_db), "physical")
    cli = Cli(tmp_path, {**cli_env(), "SNAPKEEP_CRASH_AT": "mysql.physical.exported"})
    res = cli.run("snapshot:create", "-e", "dev", check=False)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert db_state(conn, fresh_db) == before
    assert listing.list_snapshots(ctx, env) == []
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute("INSERT INTO t VALUES (3)")  # no lock left behind
    assert not list(mariadb.datadir.glob(f"{fresh_db}/*.cfg"))
    done = operations.start_backup(ctx, env, live=False)
    assert done.result == "success"
    assert [s.id for s in listing.list_snapshots(ctx, env)] == [done.snapshot_id]
