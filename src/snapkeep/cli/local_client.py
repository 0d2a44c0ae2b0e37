"""``LocalClient``: the services, in this process (see ``client.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snapkeep.cli.client import EnvironmentRef, RestorePreview
from snapkeep.config import EnvironmentConfig
from snapkeep.services import environments
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities import operations
from snapkeep.services.activities.info import RUNNING, ActivityInfo, LogLine
from snapkeep.services.activities.recorder import Observer
from snapkeep.services.context import Context
from snapkeep.services.snapshots import integrity, restore, retention
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.listing import SnapshotInfo
from snapkeep.services.snapshots.restore_scope import RestoreScope

LOCAL_POLL = 0.5  # seconds between two looks at a local activity's log


class LocalClient:
    """The services, in this process, as the local operator (project admin)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def project_id(self) -> str:
        return self.ctx.config.id

    def _env(self, name: str) -> EnvironmentConfig:
        return self.ctx.config.environment(name)

    def environment(self, name: str | None) -> EnvironmentRef:
        env = environments.resolve(self.ctx, name)
        return EnvironmentRef(env.name, env.type)

    def list_snapshots(self, env: str) -> list[SnapshotInfo]:
        return snapshots.list_snapshots(self.ctx, self._env(env))

    def get_snapshot(self, env: str, snapshot_id: str | None) -> SnapshotInfo:
        return snapshots.get_snapshot(self.ctx, self._env(env), snapshot_id)

    def restore_preview(self, env: str, snapshot_id: str) -> RestorePreview:
        manifest = snapshots.load_manifest(self.ctx, snapshot_id)
        return RestorePreview(tuple(manifest.mounts),
                              restore.code_note(self._env(env), manifest),
                              "database" in manifest.services)

    def create_snapshot(self, env: str, *, live: bool, threads: int | None, wait: bool,
                        observer: Observer | None) -> ActivityInfo:
        return operations.start_backup(self.ctx, self._env(env), live=live, threads=threads,
                                       detach=not wait, observer=observer)

    def restore_snapshot(self, env: str, snapshot_id: str | None, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None,
                         at: str | None = None) -> ActivityInfo:
        return operations.start_restore(
            self.ctx, self._env(env), snapshot_id, threads=threads, detach=not wait,
            observer=observer, target=self._env(target) if target else None, scope=scope,
            at=at)

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> ActivityInfo:
        return operations.delete_snapshot(self.ctx, self._env(env), snapshot_id,
                                          observer=observer)

    def expire_snapshots(self, env: str, *, dry_run: bool) -> list[retention.Decision]:
        if dry_run:
            return retention.plan(self.ctx, self._env(env))
        return operations.expire_snapshots(self.ctx, self._env(env))[1]

    def verify_snapshot(self, env: str, snapshot_id: str, reporter: Any) -> Any:
        return integrity.verify_snapshot(self.ctx, self._env(env), snapshot_id, reporter)

    def drill_snapshot(self, env: str, snapshot_id: str, *, threads: int | None, wait: bool,
                       observer: Observer | None) -> ActivityInfo:
        return operations.start_drill(self.ctx, self._env(env), snapshot_id, threads=threads,
                                      detach=not wait, observer=observer)

    def list_activities(self, env: str | None, *, limit: int) -> list[ActivityInfo]:
        name = environments.resolve(self.ctx, env).name if env else None
        return activities.list_activities(self.ctx, name, limit=limit)

    def get_activity(self, activity_id: str) -> ActivityInfo:
        return activities.get_activity(self.ctx, activity_id)

    def follow_log(self, activity_id: str, *, follow: bool) -> Iterator[LogLine]:
        last = 0
        while True:
            for line in activities.activity_log(self.ctx, activity_id, last):
                last = line.id
                yield line
            a = activities.get_activity(self.ctx, activity_id)
            if not follow or a.state not in RUNNING:
                # lines written between the two reads above
                for line in activities.activity_log(self.ctx, activity_id, last):
                    last = line.id
                    yield line
                return
            time.sleep(LOCAL_POLL)

    def cancel_activity(self, activity_id: str) -> ActivityInfo:
        return activities.cancel_activity(self.ctx, activity_id)

    def export_snapshot(self, env: str, snapshot_id: str, dest: Path, *, force: bool,
                        wait: bool, observer: Observer | None) -> ActivityInfo | None:
        return operations.start_export(self.ctx, self._env(env), snapshot_id, dest,
                                       force=force, detach=not wait, observer=observer)

    def import_snapshot(self, env: str, source: Path, *, threads: int | None, wait: bool,
                        observer: Observer | None) -> ActivityInfo:
        return operations.start_import(self.ctx, self._env(env), source, threads=threads,
                                       detach=not wait, observer=observer)
