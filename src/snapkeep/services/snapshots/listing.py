"""Snapshot listings and lookups. The repository's manifests are the truth; the catalog
mirrors them so listing is one query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from snapkeep.catalog import Snapshot
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import NotFoundError, RepositoryError, SnapkeepError
from snapkeep.policy import Action, is_restorable, require_role
from snapkeep.progress import Reporter
from snapkeep.repository import Repository, SnapshotManifest, SnapshotSession
from snapkeep.services.context import Context
from snapkeep.services.sizes import mib


@contextmanager
def writing(repo: Repository, rec: Reporter, *, wait: float) -> Iterator[SnapshotSession]:
    """A snapshot session; when it ends without a commit, the activity's log says what of
    it was removed from the repository and what is left for `repository:prune`."""
    session = repo.begin_snapshot(wait=wait)
    try:
        with session:
            yield session
    finally:
        gone = session.discarded
        if gone is not None and gone.packs:
            rec.log(f"Removed {gone.packs} pack(s) ({mib(gone.bytes)}) this failed snapshot had "
                    "written to the repository")
        if gone is not None and gone.left:
            rec.log(f"{gone.left} pack(s) of this failed snapshot were indexed already (or "
                    "could not be deleted); `snapkeep repository:prune` removes them")


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    environment: str
    created_at: datetime
    expires_at: datetime | None
    restorable: bool
    live: bool
    automated: bool
    commit_id: str | None
    size_bytes: int
    added_bytes: int | None
    status: str
    verified_at: datetime | None = None  # the last restore drill that passed
    verified_ok: bool | None = None  # the latest drill's outcome; None: none (verifiable) yet
    engine: str | None = None  # "physical" | "logical"; None: no database (docs/physical.md)

    def to_json(self) -> dict:
        return {
            "id": self.id, "environment": self.environment,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "expires_at": self.expires_at.isoformat(timespec="seconds") if self.expires_at
            else None,
            "restorable": self.restorable, "live": self.live, "automated": self.automated,
            "commit_id": self.commit_id, "size_bytes": self.size_bytes,
            "added_bytes": self.added_bytes, "status": self.status,
            "verified_at": self.verified_at.isoformat(timespec="seconds") if self.verified_at
            else None,
            "verified_ok": self.verified_ok, "engine": self.engine,
        }


def row_from_manifest(m: SnapshotManifest) -> Snapshot:
    return Snapshot(
        id=m.id, environment=m.environment, created_at=datetime.fromisoformat(m.created_at),
        expires_at=datetime.fromisoformat(m.expires_at) if m.expires_at else None,
        live=m.live, automated=m.automated, commit_id=m.commit_id, size_bytes=m.size_bytes,
        added_bytes=getattr(m, "added_bytes", None), status="complete",
        engine=engine_of(m))


def engine_of(m: SnapshotManifest) -> str | None:
    """"physical" or "logical" for a snapshot with a database, else None."""
    db = (m.services or {}).get("database")
    return str(db.get("engine", "logical")) if isinstance(db, dict) else None


def _info(row: Snapshot, at: datetime) -> SnapshotInfo:
    return SnapshotInfo(
        id=row.id, environment=row.environment, created_at=row.created_at,
        expires_at=row.expires_at, restorable=is_restorable(row.status, row.expires_at, at),
        live=row.live, automated=row.automated, commit_id=row.commit_id,
        size_bytes=row.size_bytes, added_bytes=row.added_bytes, status=row.status,
        verified_at=row.verified_at, verified_ok=row.verified_ok, engine=row.engine)


def replica_rows(ctx: Context, env: str) -> list[Snapshot]:
    """``env``'s snapshots in the replica ``ctx`` reads (``ctx.replica``), newest first,
    from its manifests: the catalog lists only the primary's."""
    repo = ctx.repository
    rows = [row_from_manifest(m) for m in (repo.load_snapshot(sid)
                                           for sid in repo.snapshot_ids())
            if m.environment == env]
    return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)


def sync(ctx: Context) -> None:
    """Bring the catalog's listing in line with the repository's manifests."""
    if ctx.replica is not None:
        return  # the catalog mirrors the primary only
    repo = ctx.repository
    in_repo = set(repo.snapshot_ids())
    in_catalog = ctx.catalog.snapshot_ids()
    for sid in in_repo - in_catalog:
        ctx.catalog.put_snapshot(row_from_manifest(repo.load_snapshot(sid)))
    for sid in in_catalog - in_repo:
        ctx.catalog.delete_snapshot(sid)


def list_snapshots(ctx: Context, env: EnvironmentConfig, *, limit: int | None = None,
                   offset: int = 0) -> list[SnapshotInfo]:
    """``env``'s snapshots, newest first: all of them, or ``limit`` after the first
    ``offset`` (a page)."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_READ)
    at = ctx.clock()
    if ctx.replica is not None:
        rows = replica_rows(ctx, env.name)[offset:]
        return [_info(r, at) for r in (rows[:limit] if limit is not None else rows)]
    sync(ctx)
    return [_info(r, at) for r in ctx.catalog.list_snapshots(env.name, limit=limit,
                                                              offset=offset)]


def get_snapshot(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None) -> SnapshotInfo:
    """One snapshot of ``env``; the most recent one when ``snapshot_id`` is None."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_READ)
    if ctx.replica is not None:
        return _replica_snapshot(ctx, env, snapshot_id)
    with replica_hint(ctx, snapshot_id):
        sync(ctx)
    if snapshot_id is None:
        rows = ctx.catalog.list_snapshots(env.name)
        if not rows:
            raise NotFoundError(f"environment {env.name} has no snapshots; take one with "
                                f"`snapkeep snapshot:create -e {env.name}`")
        return _info(rows[0], ctx.clock())
    row = ctx.catalog.get_snapshot(snapshot_id)
    if row is None or row.environment != env.name:
        raise NotFoundError(f"snapshot {snapshot_id} does not exist on environment {env.name}; "
                            f"list them with `snapkeep snapshot:list -e {env.name}`")
    return _info(row, ctx.clock())


def _replica_snapshot(ctx: Context, env: EnvironmentConfig,
                      snapshot_id: str | None) -> SnapshotInfo:
    if snapshot_id is None:
        rows = replica_rows(ctx, env.name)
        if not rows:
            raise NotFoundError(f"replica {ctx.replica} holds no snapshot of {env.name}; "
                                f"copy one with `snapkeep snapshot:copy ID --to {ctx.replica}`")
        return _info(rows[0], ctx.clock())
    if not ctx.repository.has_snapshot(snapshot_id):
        raise NotFoundError(f"replica {ctx.replica} does not hold snapshot {snapshot_id}; "
                            f"list what it holds with `snapkeep snapshot:list --from "
                            f"{ctx.replica} -e {env.name}`")
    row = row_from_manifest(ctx.repository.load_snapshot(snapshot_id))
    if row.environment != env.name:
        raise NotFoundError(f"snapshot {snapshot_id} in replica {ctx.replica} is of "
                            f"environment {row.environment}, not {env.name}; pick it with -e")
    return _info(row, ctx.clock())


def load_manifest(ctx: Context, snapshot_id: str) -> SnapshotManifest:
    with replica_hint(ctx, snapshot_id):
        return ctx.repository.load_snapshot(snapshot_id)


def holders(ctx: Context, snapshot_id: str) -> list[str]:
    """The configured replicas that hold ``snapshot_id`` (those that can be opened here)."""
    out = []
    for name in sorted(ctx.config.replicas):
        try:
            if ctx.in_replica(name).repository.has_snapshot(snapshot_id):
                out.append(name)
        except SnapkeepError:
            continue  # unreachable, or its key is not here: not named
    return out


@contextmanager
def replica_hint(ctx: Context, snapshot_id: str | None) -> Iterator[None]:
    """When the primary repository cannot give ``snapshot_id`` (missing, damaged), the
    error also names the replicas holding it and how to restore from one."""
    try:
        yield
    except RepositoryError as e:
        if ctx.replica is not None or snapshot_id is None:
            raise
        held = holders(ctx, snapshot_id)
        if not held:
            raise
        raise type(e)(f"{e}; replica(s) {', '.join(held)} hold snapshot {snapshot_id}: "
                      f"restore it with `snapkeep snapshot:restore {snapshot_id} --from "
                      f"{held[0]}`") from None
