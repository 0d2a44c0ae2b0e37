"""Getting data out of snapkeep and in from other tools: snapshot export and import.

- **Export** writes one stored snapshot of an environment into a directory, as files the
  stock tools read (``exportdir.py``): the database as a SQL script for the ``mariadb``
  client, each mount as a tar, all zstd-compressed. Any stored snapshot may be exported:
  the restore window does not apply. ``stream_export`` sends one such file to an HTTP
  client instead (``export_stream.py``).
- **Import** makes a NEW snapshot of an environment from an export directory, or from a
  plain ``mysqldump``/``mariadb-dump`` file with mount directories or tars
  (``import_source.py``), never touching the environment's live database or files: the
  SQL is loaded with the stock client into a scratch database on a private throwaway
  MariaDB server (``engines/mysql/import_server.py``, ``sqlfile.py``), where nothing
  else is reachable; it is snapshotted from there like a live database, and the server
  removed; mounts are snapshotted from their directories or from a tar extracted into a
  temporary directory.

Both run as activities (``environment.backup.export``, ``environment.backup.import``) of
the environment, so they show in ``activity:list``, can be cancelled, and take the
environment's one activity slot. The workers run them through ``run_export`` and
``run_import`` (``operations.execute``).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.ids import new_id
from snapkeep.policy import Action, expires_at, require_active, require_role
from snapkeep.repository import SnapshotManifest
from snapkeep.services.activities.claims import Claim, claim
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target, pause_entries
from snapkeep.services.sizes import mib
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.listing import row_from_manifest
from snapkeep.services.transfer import import_source
from snapkeep.services.transfer.export_stream import EXPORT, stream_export
from snapkeep.services.transfer.exportdir import (
    DATABASE_PART,
    ExportWriter,
    check_destination,
    mount_part,
    parts_of,
)

IMPORT = "environment.backup.import"
LOCK_WAIT = 10.0  # seconds an export or import waits for a prune's exclusive lock
IMPORTS_DIR = "imports"  # under .snapkeep/: where an import extracts mount tars

__all__ = ["EXPORT", "IMPORT", "export_facts", "run_export", "run_import", "claim_export",
           "claim_import", "stream_export"]


def _state(later: bool) -> str:
    return "pending" if later else "in_progress"


# -- export --------------------------------------------------------------------------------------

def facts_of(manifest: SnapshotManifest) -> dict[str, Any]:
    """What snapkeep-export.json says about the exported snapshot (without its files)."""
    db = manifest.services.get("database")
    return {
        "project": manifest.project, "snapshot_id": manifest.id,
        "environment": manifest.environment, "environment_type": manifest.environment_type,
        "created_at": manifest.created_at, "commit_id": manifest.commit_id,
        "live": manifest.live, "database": db is not None,
        "database_name": db.get("database") if db else None,
        "database_defaults": {k: db.get(k) or "" for k in ("charset", "collation", "comment")}
        if db else None,
        "mounts": list(manifest.mounts),
    }


def export_facts(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None) -> dict[str, Any]:
    """What an export of the snapshot (the newest without ID) holds: snapkeep-export.json
    without ``files``, plus ``parts`` (the file names). Needs Admin on ``env``."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_EXPORT)
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    facts = facts_of(snapshots.load_manifest(ctx, snap.id))
    return {**facts, "parts": parts_of(facts["database"], facts["mounts"])}


def claim_export(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, dest: Path, *,
                 later: bool, force: bool = False) -> Claim:
    """Claim the export of a stored snapshot of ``env`` (the newest without ID) into the
    directory ``dest`` (created if missing), to run now or (``later``) by a worker;
    ``operations.start_export`` runs it. Needs Admin on ``env``; any stored
    snapshot qualifies (the restore window does not apply). UsageError when ``dest``
    already holds an export, unless ``force`` (it is then replaced)."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_EXPORT)
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    dest = dest.expanduser().absolute()
    check_destination(dest, force=force)
    desc = f"{ctx.actor.name} exported backup {snap.id} of {env.name}"
    return claim(ctx, env.name, EXPORT, desc,
                 {"snapshot_id": snap.id, "dest": str(dest), "force": force},
                 state=_state(later))


def run_export(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
               params: dict[str, Any]) -> None:
    """The work of an export activity (``params``: snapshot_id, dest, force)."""

    manifest = snapshots.load_manifest(ctx, params["snapshot_id"])
    dest = Path(params["dest"])
    rec.log(f"Exporting backup {manifest.id} of {env.name} to {dest}")
    repo = ctx.repository
    writer = ExportWriter(dest, force=bool(params.get("force")), clock=ctx.clock)
    try:
        # A shared repository lock: a prune cannot delete what is being read.
        with repo.lock(exclusive=False, wait=LOCK_WAIT):
            db = manifest.services.get("database")
            if db is not None:
                with writer.part(DATABASE_PART) as out:
                    mysql.export_sql(db, repo, out, rec)
                rec.log(f"wrote {DATABASE_PART} ({mib(writer.files[DATABASE_PART]['size'])})")
            for m, desc in manifest.mounts.items():
                with writer.part(mount_part(m)) as out:
                    volumes.export_tar(desc, repo, out, rec)
                rec.log(f"wrote {mount_part(m)} ({mib(writer.files[mount_part(m)]['size'])})")
        rec.point_of_no_return("writing snapkeep-export.json")
        meta = writer.commit(facts_of(manifest))
    except BaseException:
        writer.abort()
        raise
    total = sum(int(f["size"]) for f in meta["files"].values())
    rec.log(f"Exported backup {manifest.id} to {dest} ({len(meta['files'])} files, "
            f"{mib(total)})")


# -- import --------------------------------------------------------------------------------------

def claim_import(ctx: Context, env: EnvironmentConfig, source: Path, *, later: bool,
                 threads: int | None = None) -> Claim:
    """Claim making a new snapshot of ``env`` from ``source`` (an export directory, or a SQL
    dump with mount directories: ``import_source``), to run now or (``later``) by a worker;
    ``operations.start_import`` runs it, and its ``snapshot_id`` is the new snapshot. Needs
    Admin on ``env``, which must be active. The source is checked now (UsageError saying
    what to change); run ``later`` it must stay readable at the same path for the worker."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_IMPORT)
    require_active(env.name, ctx.catalog.environment_status(env.name))
    src = import_source.inspect(env, source)
    if src.sql is not None:  # a missing client or server is said now, not in the worker
        mysql.find_client()
        mysql.check_import_server()
    ctx.repository  # noqa: B018 - fail now, not in the worker, when there is no repository
    desc = f"{ctx.actor.name} imported a backup of {env.name} from {src.describe()}"
    return claim(ctx, env.name, IMPORT, desc, {"source": str(src.path), "threads": threads},
                 state=_state(later))


def run_import(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
               params: dict[str, Any]) -> str:
    """The work of an import activity (``params``: source, threads); the new snapshot's ID.

    Whatever happens, the private server and the temporary directories are removed;
    nothing is listed unless the snapshot was committed.
    """
    src = import_source.inspect(env, Path(params["source"]))
    what = src.describe("the upload" if params.get("upload") else None)
    rec.log(f"Importing a backup of {env.name} from {what}")
    target = database_target(env)
    work = _work_dir(ctx, env, rec)
    try:
        if target is not None:
            _drop_old_scratch(target, rec)
        with contextlib.ExitStack() as stack:
            scratch = None
            if src.sql is not None and target is not None:
                server = stack.enter_context(mysql.private_server(
                    work, mysql.scratch_target(target).database, rec))
                _load(src, target, server, rec, bounded=bool(params.get("upload")))
                scratch = server.admin
            manifest = _snapshot(ctx, env, src, scratch, work, rec,
                                 threads=params.get("threads"),
                                 bounded=bool(params.get("upload")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ctx.catalog.put_snapshot(row_from_manifest(manifest))
    rec.log(f"Created backup {manifest.id} of {env.name} from {what} "
            f"({mib(manifest.size_bytes)} of data, {mib(manifest.added_bytes)} added to the "
            "repository)")
    return manifest.id


def _work_dir(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder) -> Path:
    """``.snapkeep/imports/<env>.<activity>/``, after removing what a killed import of
    ``env`` left there (it holds the environment's activity slot: nothing else is live)."""
    base = ctx.state_path(IMPORTS_DIR, "x").parent
    for old in base.iterdir():
        name, _, activity = old.name.rpartition(".")
        if name == env.name and activity != rec.activity.id:
            if mysql.stop_leftover_server(old):
                rec.log(f"stopped the private MariaDB server in {old}, left by an "
                        "interrupted import")
            rec.log(f"removing {old}, left by an interrupted import")
            shutil.rmtree(old, ignore_errors=True)
    work = base / f"{env.name}.{rec.activity.id}"
    work.mkdir(mode=0o700)
    return work


def _limit(part: Path, bounded: bool) -> int | None:
    # an upload's parts expand at most so much (compression bombs); local files as they are
    return import_source.expansion_limit(part.stat().st_size) if bounded else None


def _drop_old_scratch(target: mysql.MySQLTarget, rec: ActivityRecorder) -> None:
    """Drop the scratch database an import killed before imports used a private server
    left on the environment's server."""
    old = mysql.scratch_target(target)
    if mysql.drop_database(old):
        rec.log(f"dropped the scratch database `{old.database}` an interrupted import left "
                "behind")


def _load(src: import_source.ImportSource, target: mysql.MySQLTarget,
          server: mysql.PrivateServer, rec: ActivityRecorder, *,
          bounded: bool) -> None:
    """Load ``src``'s SQL, as the private server's loader, into its scratch database,
    created with the export's database defaults or those of the environment's database
    (``target``)."""
    assert src.sql is not None
    scratch = server.admin
    defaults = src.database_defaults() or mysql.database_defaults(target)
    mysql.create_database(scratch, defaults)
    rec.add_total(src.sql.stat().st_size)
    name = src.sql.name
    with src.open_part(src.sql, rec.advance) as raw:
        sql = import_source.decompressed(raw, name, _limit(src.sql, bounded))
        result = mysql.load_sql(server.loader, sql,
                                  source_name=str(src.sql), reporter=rec)
        src.check_part(raw, src.sql)
    named = f" (a dump of `{result.database}`; {result.left_out} database statement(s) left " \
        "out)" if result.database else ""
    rec.log(f"loaded {name} into the scratch database `{scratch.database}` on the private "
            f"server with the mariadb client in {result.seconds:.1f} s{named}")


def _snapshot(ctx: Context, env: EnvironmentConfig, src: import_source.ImportSource,
              scratch: mysql.MySQLTarget | None, work: Path, rec: ActivityRecorder, *,
              threads: int | None, bounded: bool) -> SnapshotManifest:
    repo = ctx.repository
    services: dict[str, Any] = {}
    mounts: dict[str, Any] = {}
    created = ctx.clock()
    with snapshots.writing(repo, rec, wait=LOCK_WAIT) as session:
        if scratch is not None:
            assert env.database is not None
            # Its writes held by a table lock: no server-wide backup lock for a private db.
            with mysql.hold_writes(scratch, rec):
                desc = mysql.dump_database(scratch, session, rec, threads=threads,
                                           zstd_level=ctx.config.compression_level,
                                           writes_held=True)
            # restored as the environment's database: its self-references name that one
            services["database"] = mysql.renamed_description(desc, env.database.database)
        for i, (m, path) in enumerate(sorted(src.mounts.items())):
            directory = path if path.is_dir() else \
                _extract(src, m, path, work / str(i), rec, bounded=bounded)
            rec.add_total(volumes.measure_mount(directory))
            mounts[m] = volumes.snapshot_mount(directory, session, rec,
                                               exclude=pause_entries(env, m))
            if directory != path:
                shutil.rmtree(directory, ignore_errors=True)
        size = sum(int(s.get("size_bytes", 0)) for s in services.values()) + \
            sum(int(d.get("bytes", 0)) for d in mounts.values())
        expires = expires_at(created, ctx.config.restore_window_days)
        manifest = SnapshotManifest(
            id=new_id(), project=ctx.config.id, environment=env.name,
            environment_type=env.type, created_at=created.isoformat(),
            expires_at=expires.isoformat(), live=False, automated=False,
            commit_id=(src.export or {}).get("commit_id"), services=services, mounts=mounts,
            size_bytes=size)
        rec.point_of_no_return("the snapshot's commit")  # no cancel once it is listed
        session.commit(manifest)
    return manifest


def _extract(src: import_source.ImportSource, mount: str, tar: Path, dest: Path,
             rec: ActivityRecorder, *, bounded: bool) -> Path:

    dest.mkdir(mode=0o700)
    rec.add_total(tar.stat().st_size)
    with src.open_part(tar, rec.advance) as raw:
        stream = import_source.decompressed(raw, tar.name, _limit(tar, bounded))
        try:
            outside = volumes.extract_tar(stream, dest, warn=rec.log)
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        src.check_part(raw, tar)
    rec.log(f"extracted {tar.name} for mount {mount}")
    if outside:  # kept, as a snapshot keeps them; said so the operator can check them
        shown = ", ".join(f"{path} -> {target}" for path, target in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        rec.log(f"{len(outside)} symlink(s) in mount {mount} point outside it and are kept "
                f"as links: {shown}{more}")
    return dest
