"""The restore use case: prepare everything beside the live data, then cut over.

1. prepare: every mount into a staging directory, the database into a shadow database
   (every chunk hash-checked on the way; damage stops here, nothing live touched; a live
   file already equal to the snapshot's is hard-linked into staging, not rewritten);
2. cut-over, with the app paused for just this step: swap each prepared part in, the
   mounts first (a linked file changed since staging rewritten first) and the database
   last; any failure rolls back the parts already swapped,
   and a killed process is settled by the next command from the cut-over journal;
3. finish: drop what the swap replaced.

A ``RestoreScope`` narrows it to the database, some tables, or some mounts; the rest of
the environment is not touched. A snapshot of another environment restores the same way
into this one (data only), followed by this environment's ``post_restore`` commands.
``before_restore`` hooks run before anything is prepared, ``after_restore`` ones at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.errors import IntegrityError
from snapkeep.faults import crash_point
from snapkeep.repository import Repository, SnapshotManifest
from snapkeep.services import gitinfo, pitr
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target, mount_dir, pause_entries
from snapkeep.services.snapshots import hooks, pause
from snapkeep.services.snapshots.cutover import CutoverJournal
from snapkeep.services.snapshots.restore_scope import RestoreScope

LOCK_WAIT = 30.0  # seconds a restore waits for a prune's exclusive lock


def code_note(env: EnvironmentConfig, manifest: SnapshotManifest) -> str | None:
    """A warning when the code checked out differs from the snapshot's commit."""
    if manifest.environment != env.name:
        return None  # another environment's snapshot: its commit says nothing about ours
    current = gitinfo.head_commit(env.root)
    if manifest.commit_id and current and current != manifest.commit_id:
        return (f"The code of {env.name} is at commit {current[:12]}; the snapshot was taken at "
                f"{manifest.commit_id[:12]}. Restoring does not change code: to roll code back, "
                f"use `git log --oneline` and `git revert`.")
    return None


def restore(ctx: Context, env: EnvironmentConfig, manifest: SnapshotManifest,
            rec: ActivityRecorder, *, threads: int | None = None,
            scope: RestoreScope | None = None, at: pitr.PointInTime | None = None) -> str:
    """Restore ``manifest`` (of ``env`` or of another environment) into ``env``; with
    ``at``, the database as of that point: ``manifest`` is the base, the source
    environment's archived binlog replayed onto it (``services/pitr.py``)."""
    scope = scope or RestoreScope()
    repo = ctx.repository
    source = manifest.environment
    foreign = source != env.name
    what = scope.describe(manifest)
    replay: _Replay | None = None
    if at is not None:
        source_env = ctx.config.environment(source)
        p = pitr.plan(ctx, source_env, at, manifest.id)
        replay = _Replay(at, pitr.pieces(repo, source, p.base, at.time), p.archive_complete)
        rec.log(f"Restoring {env.name}" + (f" from {source}" if foreign else "")
                + f" as of {at.describe()}: base snapshot {manifest.id} (its binlog position "
                f"{p.base.file}:{p.base.position}), then the archived binlog replayed"
                + ("" if scope.tables is None else f" (only {what})"))
        if manifest.mounts:
            rec.log("Mounts are not part of a point-in-time restore: they are left as they "
                    "are (restore a snapshot's mounts without --at)")
        scope = RestoreScope(database=True, mounts=(), tables=scope.tables)
        what = scope.describe(manifest)
    else:
        rec.log(f"Restoring backup {manifest.id}" + (f" of {source}" if foreign else "")
                + f" to {env.name}" + ("" if scope.is_full else f" (only {what})"))
    scope.check(manifest, env)
    note = code_note(env, manifest)
    if note:
        rec.log(note)
    variables = {"SNAPKEEP_SNAPSHOT_ID": manifest.id, "SNAPKEEP_SOURCE_ENVIRONMENT": source,
                 "SNAPKEEP_RESTORED": what}
    hooks.run_hook(ctx, env, "before_restore", rec, variables)
    restore_mounts = scope.mounts_of(manifest)
    db_desc = manifest.services.get("database") if scope.restores_database(manifest) else None
    target = database_target(env) if db_desc is not None else None
    if target is not None and db_desc is not None:  # target is None whenever db_desc is
        mysql.check_restore_target(target)  # a dropped database is recreated
        mysql.cleanup_leftovers(target, rec)
        # every privilege the cut-over and its rollback need, before any mount is staged
        mysql.check_restore_privileges(
            target, db_desc, list(scope.tables) if scope.tables is not None else None)
    for m in restore_mounts:
        volumes.cleanup_leftovers(mount_dir(env, m))
    rec.add_total(sum(int(manifest.mounts[m].get("bytes", 0)) for m in restore_mounts)
                  + (int(db_desc.get("size_bytes", 0)) if db_desc else 0))

    # A shared repository lock: a prune cannot delete what is read, from staging to the
    # cut-over (which rewrites from the repository any linked file changed meanwhile).
    with repo.lock(exclusive=False, wait=LOCK_WAIT):
        mounts, prepared = _prepare(repo, env, manifest, rec, scope=scope, target=target,
                                    db_desc=db_desc, threads=threads, replay=replay)
        _cut_over(ctx, env, manifest, rec, mounts=mounts, prepared=prepared,
                  variables=variables, foreign=foreign)
    rec.log(f"Restored backup {manifest.id} to {env.name}"
            + ("" if scope.is_full else f" (only {what})"))
    after_restore(ctx, env, rec, variables, foreign=foreign)
    return manifest.id


@dataclass(frozen=True)
class _Replay:
    at: pitr.PointInTime
    pieces: list[mysql.ReplayPiece]
    archive_complete: bool


def _prepare(repo: Repository, env: EnvironmentConfig, manifest: SnapshotManifest,
             rec: ActivityRecorder, *, scope: RestoreScope, target: mysql.MySQLTarget | None,
             db_desc: dict[str, Any] | None, threads: int | None,
             replay: _Replay | None = None) -> tuple[list, list]:
    """Stage every part the restore puts back, the live ones untouched: (the mounts'
    prepared parts, every prepared part). On a failure or a cancel the staged parts are
    dropped; a damaged snapshot says so."""
    prepared: list = []
    mounts: list = []
    try:
        for m in scope.mounts_of(manifest):
            mounts.append(volumes.prepare_restore(mount_dir(env, m), manifest.mounts[m],
                                                  repo, rec, keep=pause_entries(env, m)))
        prepared += mounts
        # The database swaps last: once it has swapped, every part is new.
        tables = list(scope.tables) if scope.tables is not None else None
        if db_desc is not None and target is not None and replay is not None:
            restored, result = mysql.prepare_restore_at(
                target, db_desc, repo, rec, pieces=replay.pieces,
                stop=replay.at.stop(), threads=threads, tables=tables,
                allow_archive_end=replay.archive_complete)
            prepared.append(restored)
            reached = result.last_time.strftime("%Y-%m-%dT%H:%M:%SZ") \
                if result.last_time else "no transaction after the snapshot"
            rec.log(f"Replayed {result.transactions} transactions ({result.events} "
                    f"events) onto snapshot {manifest.id}; the last one at {reached}"
                    + (f" (GTID {result.last_gtid})" if result.last_gtid else ""))
        elif db_desc is not None and target is not None:
            prepared.append(mysql.prepare_restore(
                target, db_desc, repo, rec, threads=threads, tables=tables))
        # A cancel stops a restore up to here (the prepared parts are dropped), never in
        # its cut-over: a half-done one is never left by choice.
        rec.point_of_no_return("the cut-over")
    except BaseException as e:
        undo(prepared, [])
        if isinstance(e, IntegrityError):
            raise IntegrityError(
                f"snapshot {manifest.id} is damaged ({e}); nothing in {env.name} was changed. "
                "Run `snapkeep repository:check --read-data` and restore another snapshot."
            ) from e
        raise
    return mounts, prepared


def _cut_over(ctx: Context, env: EnvironmentConfig, manifest: SnapshotManifest,
              rec: ActivityRecorder, *, mounts: list, prepared: list,
              variables: dict[str, str], foreign: bool) -> None:
    """Swap the prepared parts in, paused, under the cut-over journal: until its commit
    point a failure puts the previous data back; after it, the new data stays."""
    journal = CutoverJournal(ctx, env.name)
    worker = rec.activity.worker
    swapped: list = []
    undone = committed = begun = False
    try:
        journal.begin(manifest.id, [volumes.cutover_record(p) for p in mounts],
                      variables=variables, foreign=foreign, activity=rec.activity.id,
                      worker=worker)
        begun = True
        with pause.paused(ctx, env, rec, rec.fence):
            try:
                for p in prepared:
                    rec.fence("the next swap of the cut-over")
                    p.swap()
                    swapped.append(p)
                    crash_point(f"restore.after-swap-{len(swapped)}")
            except BaseException:
                if not _still_ours(journal, worker, rec, begun):
                    undone = True  # another worker settles (or settled) this cut-over
                    raise
                rec.log("The cut-over failed; putting the previous data back")
                undone = True  # while paused; if it fails the journal is kept
                undo(prepared, swapped)
                journal.clear()
                raise
            rec.fence("the commit point of the cut-over")
            journal.mark_swapped()  # the commit point: from here on the new data stays
            committed = True
            crash_point("restore.committed")
    except BaseException:
        if not (committed or undone) and _still_ours(journal, worker, rec, begun):
            undo(prepared, [])  # failed before a swap (the journal, the pause)
            journal.clear()
        raise
    for p in prepared:
        p.finish()
    journal.clear()


def _still_ours(journal: CutoverJournal, worker: str | None, rec: ActivityRecorder,
                begun: bool) -> bool:
    """Whether this worker may still undo its cut-over: not when it lost its lease (a
    reaper declared it interrupted, and a worker of any host settles the journal — or
    already did, and rolling back now would delete what was written since), nor when its
    journal is gone or taken by a settler."""
    if rec.lease_lost():
        return False
    return journal.owned_by(worker) if begun else True


def undo(prepared: list, swapped: list) -> None:
    """Put the ``swapped`` parts back (the last swapped first) and drop the staging copies
    and shadow database of the others, now rather than at the next restore: every part is
    tried, then the first failure is raised."""
    failure: BaseException | None = None
    for p in [*reversed(swapped), *(p for p in prepared if p not in swapped)]:
        try:
            if p in swapped:
                p.rollback()
            else:
                p.abort()
        except BaseException as e:  # noqa: BLE001 - the others are still undone
            failure = failure or e
    if failure is not None:
        raise failure


def after_restore(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
                  variables: dict[str, str], *, foreign: bool) -> None:
    """What follows a restore's cut-over (also one completed after its process was killed,
    ``activities.recover_interrupted``): another environment's data gets this one's
    ``post_restore`` commands, then the ``after_restore`` hooks run."""
    if foreign and env.post_restore:
        # The data is in; these adapt it to this environment (anonymise, base URLs). A
        # failure fails the activity, naming the command: the data stays restored.
        hooks.run_commands(ctx, env, env.post_restore, rec, label="post-restore command",
                           timeout=env.hooks.timeout, on_failure="fail", variables=variables)
    hooks.run_hook(ctx, env, "after_restore", rec, variables)
