"""A long-lived worker stays healthy: a storage outage fails the activity it hits and
nothing after it (issue 19, item 3). Real SeaweedFS S3, one ``Worker`` and one
``Context`` kept across activities, as in `snapkeep worker` and `snapkeep serve`."""

from __future__ import annotations

import os
from pathlib import Path

from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.activities.workers import Worker
from snapkeep.services.context import Context


def project(tmp_path: Path, s3) -> Context:
    data = tmp_path / "dev" / "data"
    data.mkdir(parents=True)
    (data / "file.txt").write_text("first\n")
    (tmp_path / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nplan = "starter"\n' + s3.config_toml("health") +
        'key_file = ".snapkeep/repository.key"\n\n'
        '[environments.dev]\nroot = "dev"\nmounts = ["data"]\n')
    ctx = Context(load_config(str(tmp_path / "snapkeep.toml")))
    ctx.init_repository()
    return ctx


def backup(ctx: Context, worker: Worker):
    queued = operations.start_backup(ctx, ctx.config.environment("dev"), live=True,
                                     queue=True)
    ran = worker.run_once()
    assert ran is not None and ran.id == queued.id
    return ctx.catalog.get_activity(queued.id)


def test_a_storage_outage_fails_one_backup_and_the_next_succeeds(tmp_path,
                                                                 private_seaweed_s3):
    s3 = private_seaweed_s3
    ctx = project(tmp_path, s3)
    worker = Worker(ctx)
    assert backup(ctx, worker).result == "success"

    # new bytes, so the backup during the outage has packs to upload
    (tmp_path / "dev" / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
    s3.kill()
    try:
        failed = backup(ctx, worker)
    finally:
        s3.start()
    assert failed.result == "failure"

    (tmp_path / "dev" / "data" / "more.bin").write_bytes(os.urandom(1 << 20))
    after = backup(ctx, worker)
    assert after.result == "success", [line.message for line in
                                       ctx.catalog.log_lines(after.id)]
    snaps = ctx.catalog.list_snapshots("dev")
    assert len(snaps) == 2
    # the snapshot taken after the outage is whole: every chunk it names is stored
    fresh = Context(load_config(str(tmp_path / "snapkeep.toml")))
    assert fresh.repository.check(read_data=True).ok
