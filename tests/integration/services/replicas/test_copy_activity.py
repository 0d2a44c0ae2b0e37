"""The copy as an activity (its log, its result), `/metrics`' replica age, and the
read-only project's refusals, through the services with a ManualClock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.errors import PolicyError
from snapkeep.services import metrics, replicas
from snapkeep.services.activities import listing, operations
from snapkeep.services.context import Context
from tests.helpers.console import make_project


def with_replica(base: Path, clock, extra: str = "") -> Context:
    project = make_project(base)
    with open(project.config, "a") as f:
        f.write(f'\n[replicas.offsite]\nlocation = "{base / "offsite"}"\n{extra}')
    return Context(load_config(str(project.config)), clock=clock)


def test_a_copy_is_an_activity_and_metrics_give_the_newest_copys_age(tmp_path, clock):
    ctx = with_replica(tmp_path, clock)
    env = ctx.config.environment("develop-branch")
    replicas.init_replica(ctx, "offsite")
    assert metrics._replicas(ctx)[1].samples[0].value == 0  # holds none: no age yet
    metrics._replica_cache.clear()
    backup = operations.start_backup(ctx, env, live=True)
    clock.advance(timedelta(minutes=10))
    a = operations.start_copy(ctx, env, "offsite", None)
    assert a is not None and a.type == replicas.COPY and a.result == "success"
    log = [line.message for line in listing.activity_log(ctx, a.id, 0)]
    assert any(f"Copied backup {backup.snapshot_id} to replica offsite" in m for m in log)
    assert operations.start_copy(ctx, env, "offsite", None) is None  # nothing missing
    clock.advance(timedelta(minutes=5))
    age, count = metrics._replicas(ctx)
    created = ctx.in_replica("offsite").repository.load_snapshot(backup.snapshot_id).created_at
    assert age.samples[0].value == (clock() - datetime.fromisoformat(created)).total_seconds()
    assert age.samples[0].labels == (("replica", "offsite"),) and count.samples[0].value == 1
    metrics._replica_cache.clear()


def test_a_read_only_project_refuses_to_write_the_primary(tmp_path, clock):
    ctx = with_replica(tmp_path, clock)
    env = ctx.config.environment("develop-branch")
    sid = operations.start_backup(ctx, env, live=True).snapshot_id
    text = ctx.config.path.read_text().replace('plan = "starter"',
                                               'plan = "starter"\nread_only = true')
    ctx.config.path.write_text(text)
    ro = Context(load_config(str(ctx.config.path)), clock=clock)
    env = ro.config.environment("develop-branch")
    for attempt in (lambda: operations.start_backup(ro, env, live=True),
                    lambda: operations.delete_snapshot(ro, env, sid),
                    lambda: operations.expire_snapshots(ro, env),
                    lambda: operations.start_restore(ro, env, sid)):
        with pytest.raises(PolicyError, match="read_only = true"):
            attempt()
    assert ro.repository.has_snapshot(sid)


def test_a_command_opens_each_repository_once(tmp_path, clock):
    ctx = with_replica(tmp_path, clock)
    replicas.init_replica(ctx, "offsite")
    primary, replica = ctx.repository, ctx.in_replica("offsite").repository
    assert ctx.in_replica(None).repository is primary
    assert ctx.in_replica("offsite").in_replica(None).repository is primary
    assert ctx.in_replica("offsite").repository is replica is not primary
    # another thread's context opens its own (a repository serves one thread)
    own = ctx.with_own_repository()
    assert own.repository is not primary
    assert own.in_replica("offsite").repository is not replica
