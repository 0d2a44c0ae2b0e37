"""``snapshot:expire`` (services.snapshots.retention / operations.expire_snapshots) never
leaves a point-in-time environment without a base snapshot (docs/pitr.md, Retention)."""

from __future__ import annotations

import os

from snapkeep.config import load_config
from snapkeep.repository import Repository, SnapshotManifest
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.snapshots import retention
from snapkeep.storage import LocalBackend


def _project(tmp_path, point_in_time: bool) -> Context:
    (tmp_path / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        'database = "mysql://root@127.0.0.1:1/shop"\n'
        f"point_in_time = {'true' if point_in_time else 'false'}\n"
        "retention = {keep_last = 1}\n")
    repo = Repository.init(LocalBackend(tmp_path / "repo"),
                           key_file=tmp_path / "repository.key")
    # a, b record binlog positions; c, the newest, does not (log_bin was off meanwhile)
    for sid, day, pos in (("a", 1, 1000), ("b", 2, 2000), ("c", 3, None)):
        s = repo.begin_snapshot()
        desc = {"kind": "mysql", "dump": s.put_blob(os.urandom(100)).to_json()}
        if pos is not None:
            desc["binlog"] = {"file": "mysql-bin.000001", "position": pos, "gtid": "0-1-1",
                              "method": "binlog_snapshot"}
        s.commit(SnapshotManifest(
            id=sid, project="shop", environment="production", environment_type="production",
            created_at=f"2026-12-0{day}T00:00:00+00:00", expires_at=None, live=False,
            automated=True, commit_id=None, services={"database": desc}))
    return Context(load_config(str(tmp_path / "snapkeep.toml")))


def test_expire_keeps_the_newest_base_when_the_policy_keeps_none(tmp_path):
    ctx = _project(tmp_path, point_in_time=True)
    env = ctx.config.environment("production")
    plan = {d.snapshot.id: (d.keep, d.reason) for d in retention.plan(ctx, env)}
    assert plan["a"] == (False, "not selected by any keep rule")
    assert plan["b"][0] and "the only base of the point-in-time window" in plan["b"][1]
    assert plan["c"] == (True, "keep-last 1")
    operations.expire_snapshots(ctx, env)
    assert sorted(ctx.repository.snapshot_ids()) == ["b", "c"]
    again = {d.snapshot.id: d.keep for d in retention.plan(ctx, env)}
    assert again == {"b": True, "c": True}  # the base stays, expire after expire


def test_without_point_in_time_the_policy_alone_decides(tmp_path):
    ctx = _project(tmp_path, point_in_time=False)
    env = ctx.config.environment("production")
    assert {d.snapshot.id: d.keep for d in retention.plan(ctx, env)} == {
        "a": False, "b": False, "c": True}
