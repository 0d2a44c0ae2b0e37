"""A long-lived worker stays healthy (issue 19, item 3): a storage outage fails the
activity it hits and nothing after it; a catalog outage is waited out. Real SeaweedFS S3
and a private PostgreSQL; one ``Context`` kept across activities, as in `snapkeep worker`
and `snapkeep serve`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.activities.workers import Worker, start_worker_threads
from snapkeep.services.context import Context
from tests.helpers.postgres import PrivatePostgres, bindir
from tests.helpers.server import wait_for


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


def test_a_catalog_outage_is_waited_out_by_the_worker_threads(tmp_path):
    """The PostgreSQL catalog killed and brought back under running worker threads: they
    report the outage, keep polling, and run what is queued once it is back."""
    found = bindir()
    if found is None:
        pytest.skip("no PostgreSQL server binaries to start a private server")
    pg = PrivatePostgres(found).start()
    try:
        data = tmp_path / "dev" / "data"
        data.mkdir(parents=True)
        (data / "file.txt").write_text("first\n")
        (tmp_path / "snapkeep.toml").write_text(
            '[project]\nid = "shop"\nplan = "starter"\n'
            f'catalog = "{pg.url}/postgres"\n\n'
            '[repository]\nkey_file = ".snapkeep/repository.key"\n\n'
            '[environments.dev]\nroot = "dev"\nmounts = ["data"]\n')

        def load() -> Context:
            return Context(load_config(str(tmp_path / "snapkeep.toml")))

        ctx = load()
        ctx.init_repository()
        dev = ctx.config.environment("dev")
        stop = threading.Event()
        said: list[str] = []
        threads = start_worker_threads(load, 1, stop, poll_interval=0.1, report=said.append)
        try:
            first = operations.start_backup(ctx, dev, live=True, queue=True)
            wait_for(lambda: ctx.catalog.get_activity(first.id).state == "complete",
                     "the first backup")
            pg.kill()
            wait_for(lambda: any("retrying" in line for line in said),
                     "the worker to meet the outage")
            pg.restart()
            second = operations.start_backup(ctx, dev, live=True, queue=True)
            done = wait_for(lambda: (a := ctx.catalog.get_activity(second.id)).state ==
                            "complete" and a, "the backup queued after the outage")
            assert done.result == "success", done.error
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert len(ctx.catalog.list_snapshots("dev")) == 2
    finally:
        pg.stop()
