"""The restore use case: prepare everything beside the live data, then cut over.

1. prepare: every mount into a staging directory, the database into a shadow database
   (every chunk hash-checked on the way; damage stops here, nothing live touched);
2. cut-over, with the app paused for just this step: swap each prepared part in, the
   mounts first and the database last; any failure rolls back the parts already swapped,
   and a killed process is settled by the next command from the cut-over journal;
3. finish: drop what the swap replaced.
"""

from __future__ import annotations

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.errors import ConfigError, IntegrityError
from snapkeep.faults import crash_point
from snapkeep.repository import SnapshotManifest
from snapkeep.services import gitinfo, pause
from snapkeep.services.context import Context
from snapkeep.services.cutover import CutoverJournal
from snapkeep.services.engines import database_target, mount_dir, pause_entries
from snapkeep.services.recorder import ActivityRecorder

LOCK_WAIT = 30.0  # seconds a restore waits for a prune's exclusive lock


def code_note(env: EnvironmentConfig, manifest: SnapshotManifest) -> str | None:
    """A warning when the code checked out differs from the snapshot's commit."""
    current = gitinfo.head_commit(env.root)
    if manifest.commit_id and current and current != manifest.commit_id:
        return (f"The code of {env.name} is at commit {current[:12]}; the snapshot was taken at "
                f"{manifest.commit_id[:12]}. Restoring does not change code: to roll code back, "
                f"use `git log --oneline` and `git revert`.")
    return None


def restore(ctx: Context, env: EnvironmentConfig, manifest: SnapshotManifest,
            rec: ActivityRecorder, *, threads: int | None = None) -> str:
    repo = ctx.repository
    rec.log(f"Restoring backup {manifest.id} to {env.name}")
    note = code_note(env, manifest)
    if note:
        rec.log(note)
    target = database_target(env)
    db_desc = manifest.services.get("database")
    if db_desc is not None and target is None:
        raise ConfigError(f"snapshot {manifest.id} holds a database but environment {env.name} "
                          "has no `database` configured; add it to snapkeep.toml")
    if target is not None:
        mysql.check_connection(target)
        mysql.cleanup_leftovers(target, rec)
    for m in manifest.mounts:
        volumes.cleanup_leftovers(mount_dir(env, m))
    rec.add_total(manifest.size_bytes)

    prepared: list = []
    mounts: list = []
    try:
        # A shared repository lock: a prune cannot delete what is being read.
        with repo.lock(exclusive=False, wait=LOCK_WAIT):
            for m, desc in manifest.mounts.items():
                mounts.append(volumes.prepare_restore(mount_dir(env, m), desc, repo, rec,
                                                      keep=pause_entries(env, m)))
            prepared += mounts
            # The database swaps last: once it has swapped, every part is new.
            if db_desc is not None and target is not None:
                prepared.append(mysql.prepare_restore(target, db_desc, repo, rec,
                                                      threads=threads))
        # A cancel stops a restore up to here (the prepared parts are dropped), never in
        # its cut-over: a half-done one is never left by choice.
        rec.point_of_no_return("the cut-over")
    except BaseException as e:
        for p in prepared:
            p.abort()
        if isinstance(e, IntegrityError):
            raise IntegrityError(
                f"snapshot {manifest.id} is damaged ({e}); nothing in {env.name} was changed. "
                "Run `snapkeep repository:check --read-data` and restore another snapshot."
            ) from e
        raise

    journal = CutoverJournal(ctx, env.name)
    journal.begin(manifest.id, [volumes.cutover_record(p) for p in mounts])
    swapped: list = []
    with pause.paused(ctx, env, rec):
        try:
            for p in prepared:
                p.swap()
                swapped.append(p)
                crash_point(f"restore.after-swap-{len(swapped)}")
        except BaseException:
            rec.log("The cut-over failed; putting the previous data back")
            for p in reversed(swapped):
                p.rollback()
            for p in prepared:
                if p not in swapped:
                    p.abort()
            journal.clear()
            raise
        journal.mark_swapped()  # the commit point: from here on the new data stays
    for p in prepared:
        p.finish()
    journal.clear()
    rec.log(f"Restored backup {manifest.id} to {env.name}")
    return manifest.id
