"""The backup use case: pause (unless live), dump the database, walk the mounts,
commit the manifest. The manifest is written last; nothing before it is visible.

The environment's ``before_snapshot`` hooks run before anything is paused (a failing one
under the ``fail`` policy ends the activity with nothing taken); its ``after_snapshot``
hooks run once the snapshot is committed and listed."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.errors import ConfigError, HookError, SnapkeepError
from snapkeep.faults import crash_point
from snapkeep.ids import new_id
from snapkeep.policy import expires_at
from snapkeep.repository import SnapshotManifest
from snapkeep.services import gitinfo
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target, mount_dir, pause_entries
from snapkeep.services.sizes import mib
from snapkeep.services.snapshots import hooks, pause
from snapkeep.services.snapshots.listing import row_from_manifest, writing

LOCK_WAIT = 10.0  # seconds a snapshot waits for a prune's exclusive lock


def check_sources(env: EnvironmentConfig) -> None:
    """Refuse early, before anything is paused, when a source cannot be read."""
    if env.database is None and not env.mounts:
        raise ConfigError(f"environment {env.name} has no database and no mounts: nothing to "
                          "snapshot; set `database` and `mounts` in snapkeep.toml")
    for m in env.mounts:
        if not mount_dir(env, m).is_dir():
            raise ConfigError(f"mount {m} of environment {env.name} does not exist "
                              f"({mount_dir(env, m)}); create it or remove it from `mounts`")


def _parent_mounts(ctx: Context, env: EnvironmentConfig) -> dict:
    """The newest snapshot's mount descriptions: the files cache for this snapshot.

    Unchanged files (same path, inode, size, mtime, ctime) reuse its blobs unread.
    """
    for row in ctx.catalog.list_snapshots(env.name):
        try:
            return ctx.repository.load_snapshot(row.id).mounts
        except SnapkeepError:
            continue  # gone or damaged: try an older one; no cache is fine too
    return {}


def _estimate(parent: dict | None) -> int:
    """The progress total of a mount from its previous snapshot's bytes (0: none), so that
    a re-snapshot does not walk the mount twice; the bar stops at 99 % until the end, so an
    estimate that falls short only makes it reach 99 % early."""
    size = parent.get("bytes") if isinstance(parent, dict) else None
    return size if isinstance(size, int) and size > 0 else 0


def _physical_workdir(ctx: Context, env: EnvironmentConfig) -> Path:
    """Where mariadb-backup's copy of the environment's database goes (one copy of its
    InnoDB files, docs/physical.md): beside the project's state, not a RAM-backed /tmp.
    What a killed backup left there is removed now (one activity per environment)."""
    work = ctx.state_path("physical", env.name)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def backup(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder, *, live: bool,
           automated: bool = False, threads: int | None = None) -> str:
    repo = ctx.repository
    snapshot_id = new_id()
    rec.log(f"Creating backup of {env.name}")
    check_sources(env)
    target = database_target(env)
    pages: mysql.Locality | None = None  # the physical mover's place, when it runs
    if target is not None:
        mysql.check_connection(target)
        pages = mysql.choose_engine(env.engine, target, rec)
        rec.add_total(mysql.estimate_size(target))
    parent = _parent_mounts(ctx, env)
    for m in env.mounts:
        rec.add_total(_estimate(parent.get(m)) or volumes.measure_mount(mount_dir(env, m)))
    live_var = {"SNAPKEEP_LIVE": "1" if live else "0"}
    hooks.run_hook(ctx, env, "before_snapshot", rec, live_var)
    created = ctx.clock()
    commit = gitinfo.head_commit(env.root)
    services: dict = {}
    mounts: dict = {}
    # The session holds a shared repository lock (prune waits) and records every chunk
    # the snapshot references; its commit writes packs, index, then the manifest.
    with writing(repo, rec, wait=LOCK_WAIT) as session:
        with nullcontext() if live else pause.paused(ctx, env, rec, rec.fence), \
                nullcontext() if live or target is None or pages is not None \
                else mysql.hold_writes(target, rec):  # a physical dump holds them itself
            crash_point("backup.paused")
            if target is not None and pages is not None:
                services["database"] = mysql.dump_physical(
                    target, session, rec, pages, threads=threads,
                    zstd_level=ctx.config.compression_level, writes_held=not live,
                    workdir=_physical_workdir(ctx, env))
            elif target is not None:
                services["database"] = mysql.dump_database(
                    target, session, rec, threads=threads,
                    zstd_level=ctx.config.compression_level, writes_held=not live)
            for m in env.mounts:
                mounts[m] = volumes.snapshot_mount(mount_dir(env, m), session, rec,
                                                   exclude=pause_entries(env, m),
                                                   parent=parent.get(m))

        size = sum(int(s.get("size_bytes", 0)) for s in services.values()) + \
            sum(int(d.get("bytes", 0)) for d in mounts.values())
        # Manual snapshots live for the restore window; automated ones by retention policy.
        expires = None if automated else expires_at(created, ctx.config.restore_window_days)
        manifest = SnapshotManifest(
            id=snapshot_id, project=ctx.config.id, environment=env.name,
            environment_type=env.type, created_at=created.isoformat(),
            expires_at=expires.isoformat() if expires else None,
            live=live, automated=automated, commit_id=commit, services=services,
            mounts=mounts, size_bytes=size)
        rec.point_of_no_return("the snapshot's commit")  # no cancel once it is listed
        session.commit(manifest)
    ctx.catalog.put_snapshot(row_from_manifest(manifest))
    rec.log(f"Created backup {snapshot_id} ({mib(size)} of data, {mib(manifest.added_bytes)} "
            "added to the repository)")
    # Recorded now: the activity names its snapshot even if an after_snapshot hook fails it.
    ctx.catalog.update_activity(rec.activity.id, snapshot_id=snapshot_id)
    try:
        hooks.run_hook(ctx, env, "after_snapshot", rec,
                       {**live_var, "SNAPKEEP_SNAPSHOT_ID": snapshot_id})
    except HookError as e:
        raise HookError(f"backup {snapshot_id} was created (it is listed and can be restored), "
                        f"but {e}") from None
    return snapshot_id
