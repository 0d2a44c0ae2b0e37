"""Restore drills against real files and a real MariaDB: a snapshot restored into scratch
copies, verified against its digests, the result recorded; damage fails it; a killed
drill's leftovers go with the next activity; a schedule runs it."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.errors import IntegrityError
from snapkeep.repository import SnapshotManifest
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.schedules import scheduler
from snapkeep.services.snapshots import drill
from tests.helpers.dbstate import databases, db_state
from tests.helpers.shop import Cli, cli_env
from tests.helpers.trees import listing

# row digests are the logical path's; the default (auto) stores this server's InnoDB tables
# as pages, whose drills test_drill_physical.py covers
LOGICAL = 'engine = "logical"\n'


class Project:
    """Environment ``dev``: mounts ``data`` and ``pub/media``, and (given) a database."""

    def __init__(self, base: Path, database_url: str | None = None, extra: str = "") -> None:
        self.base = base
        self.root = base / "app"
        for d in ("data/deep/er", "pub/media", "var"):
            (self.root / d).mkdir(parents=True)
        (self.root / "data" / "f.txt").write_text("data\n")
        (self.root / "data" / "deep" / "er" / "big.bin").write_bytes(os.urandom(1 << 20))
        os.chmod(self.root / "data" / "f.txt", 0o640)
        os.symlink("deep/er/big.bin", self.root / "data" / "link")
        (self.root / "pub" / "media" / "cat.jpg").write_bytes(b"\xff\xd8meow" * 1000)
        self.config = base / "snapkeep.toml"
        self.config.write_text(
            '[project]\nid = "drill"\n[repository]\nkey_file = ".snapkeep/repository.key"\n'
            '[environments.dev]\nroot = "app"\nmounts = ["data", "pub/media"]\n'
            + (f'database = "{database_url}"\n' if database_url else "") + extra)
        self.ctx = Context(load_config(str(self.config)))
        self.ctx.init_repository()
        self.env = self.ctx.config.environment("dev")

    def backup(self) -> str:
        return operations.start_backup(self.ctx, self.env, live=True).snapshot_id

    def mounts(self) -> dict:
        return {m: listing(self.root / m) for m in self.env.mounts}

    def drills_left(self) -> list[str]:
        base = self.ctx.config.state_dir / "drills" / "dev"
        return sorted(os.listdir(base)) if base.exists() else []

    def cli(self, **env: str) -> Cli:
        return Cli(self.base, {**cli_env(), **env})

    def listed(self) -> dict:
        out = self.cli().run("snapshot:list", "-e", "dev", "--format", "json").stdout
        return {s["id"]: s for s in json.loads(out)}

    def log(self, activity_id: str) -> list[str]:
        return [ln.message for ln in self.ctx.catalog.log_lines(activity_id)]


def scratch_dbs(mariadb, db: str) -> set[str]:
    conn = mariadb.connect()
    try:
        return {n for n in databases(conn) if n.startswith(db[:20]) and "__sk" in n}
    finally:
        conn.close()


def state(mariadb, db: str) -> dict:
    conn = mariadb.connect(db)
    try:
        return db_state(conn, db)
    finally:
        conn.close()


def test_a_drill_passes_and_the_listing_shows_it_verified(tmp_path):
    p = Project(tmp_path)
    sid = p.backup()
    assert p.listed()[sid]["verified_ok"] is None and p.listed()[sid]["verified_at"] is None
    before = p.mounts()
    res = p.cli().run("snapshot:verify", "-e", "dev", sid, "--restore")
    assert "succeeded" in res.stderr + res.stdout
    listed = p.listed()[sid]
    assert listed["verified_ok"] is True and listed["verified_at"] is not None
    assert p.mounts() == before and p.drills_left() == []
    (a,) = [a for a in p.ctx.catalog.list_activities("dev") if a.type == drill.VERIFY]
    log = p.log(a.id)
    assert any("mount data: restored and verified identical" in m for m in log)
    assert any("mount pub/media: restored and verified identical" in m for m in log)


def test_a_drill_of_a_database_verifies_every_tables_rows_and_touches_nothing_live(
        tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), LOGICAL)
    sid = p.backup()
    live_db, live_mounts = state(mariadb, shop), p.mounts()
    a = operations.start_drill(p.ctx, p.env, sid)
    assert a.result == "success"
    log = p.log(a.id)
    tables = len(p.ctx.repository.load_snapshot(sid).services["database"]["tables"])
    assert any(f"rows of its {tables} tables verified identical" in m for m in log), log
    assert any(f"`{shop}__skdrill_" in m for m in log)  # restored beside the live one
    row = p.ctx.catalog.get_snapshot(sid)
    assert row.verified_ok is True and row.verified_at is not None
    assert state(mariadb, shop) == live_db and p.mounts() == live_mounts
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()


def test_a_drill_finds_a_table_whose_recorded_rows_differ(tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), LOGICAL)
    sid = p.backup()
    repo = p.ctx.repository
    data = json.loads(repo.load_snapshot(sid).to_json())
    t = next(t for t in data["services"]["database"]["tables"] if t["name"] == "sales_order")
    t["digest"]["rows"] += 1
    repo.put_manifest(SnapshotManifest.from_json(json.dumps(data).encode()))
    with pytest.raises(IntegrityError, match="sales_order"):
        operations.start_drill(p.ctx, p.env, sid)
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is False
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()


def _tamper_digest(p: Project, sid: str, mount: str) -> None:
    """Real damage to what the snapshot recorded: its manifest rewritten (sealed with the
    repository's key, as a writer with the key could) with one hex digit of the mount's
    digest changed."""
    repo = p.ctx.repository
    m = repo.load_snapshot(sid)
    data = json.loads(m.to_json())
    d = data["mounts"][mount]["digest"]
    data["mounts"][mount]["digest"] = d[:-1] + ("0" if d[-1] != "0" else "1")
    repo.put_manifest(SnapshotManifest.from_json(json.dumps(data).encode()))


def test_a_drill_of_a_snapshot_whose_recorded_digest_differs_fails_and_records_it(
        tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop))
    sid = p.backup()
    live_db, live_mounts = state(mariadb, shop), p.mounts()
    _tamper_digest(p, sid, "pub/media")
    with pytest.raises(IntegrityError, match="pub/media"):
        operations.start_drill(p.ctx, p.env, sid)
    row = p.ctx.catalog.get_snapshot(sid)
    assert row.verified_ok is False and row.verified_at is None
    (a,) = [a for a in p.ctx.catalog.list_activities("dev") if a.type == drill.VERIFY]
    assert a.result == "failure" and "digest" in a.error
    assert any(m.startswith("MISMATCH mount pub/media") for m in p.log(a.id))
    assert any("mount data: restored and verified identical" in m for m in p.log(a.id))
    assert state(mariadb, shop) == live_db and p.mounts() == live_mounts
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()
    assert p.listed()[sid]["verified_ok"] is False


def test_a_snapshot_from_before_digests_is_restored_and_reported_not_verifiable(tmp_path):
    p = Project(tmp_path)
    sid = p.backup()
    repo = p.ctx.repository
    data = json.loads(repo.load_snapshot(sid).to_json())
    del data["mounts"]["data"]["digest"]
    repo.put_manifest(SnapshotManifest.from_json(json.dumps(data).encode()))
    a = operations.start_drill(p.ctx, p.env, sid)
    assert a.result == "success"
    log = p.log(a.id)
    assert any("mount data: restored, not verifiable" in m for m in log)
    assert any("not verifiable: mount data" in m and "not recorded as verified" in m
               for m in log)
    row = p.ctx.catalog.get_snapshot(sid)
    assert (row.verified_ok, row.verified_at) == (None, None)


def test_a_killed_drill_leaves_scratch_copies_that_the_next_activity_removes(
        tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop))
    sid = p.backup()
    live_db, live_mounts = state(mariadb, shop), p.mounts()
    res = p.cli(SNAPKEEP_CRASH_AT="drill.database-restored").run(
        "snapshot:verify", "-e", "dev", sid, "--restore", check=False)
    assert res.returncode == -9, res.stderr
    (token,) = p.drills_left()
    left = scratch_dbs(mariadb, shop)
    assert left == {f"{shop}__skdrill_{token}"}
    assert state(mariadb, f"{shop}__skdrill_{token}")["tables"].keys() == \
        live_db["tables"].keys()
    assert state(mariadb, shop) == live_db and p.mounts() == live_mounts

    a = operations.start_backup(p.ctx, p.env, live=True)  # the next activity
    assert a.result == "success"
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()
    assert any("left by an interrupted restore drill" in m for m in p.log(a.id))
    killed = [x for x in p.ctx.catalog.list_activities("dev") if x.type == drill.VERIFY]
    assert killed[0].result == "failure" and "interrupted" in killed[0].error
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is None


def test_the_verify_key_schedules_drills_of_the_newest_snapshot(tmp_path):
    p = Project(tmp_path, extra='verify = "0 4 * * *"\n')
    p.backup()
    newest = p.backup()
    t0 = p.ctx.clock().replace(hour=3, minute=0, second=0, microsecond=0) \
        + timedelta(days=1)
    assert scheduler.tick(p.ctx, t0, detach=False) == []
    (started,) = scheduler.tick(p.ctx, t0 + timedelta(hours=1), detach=False)
    a = p.ctx.catalog.get_activity(started)
    assert (a.type, a.result, a.snapshot_id) == (drill.VERIFY, "success", newest)
    assert p.ctx.catalog.get_snapshot(newest).verified_ok is True
    assert scheduler.tick(p.ctx, t0 + timedelta(hours=2), detach=False) == []


def test_drill_names_fit_mariadbs_limit_with_their_restore_helpers():
    from snapkeep.engines.mysql.names import drill_name, journal_name, shadow_name

    name = drill_name("x" * 64, "0123abcd")
    assert name.endswith("__skdrill_0123abcd")
    assert len(journal_name(name)) <= 64 and journal_name(name).startswith(name)
    assert shadow_name(name).startswith(name)
