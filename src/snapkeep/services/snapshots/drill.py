"""Restore drills: a snapshot proven restorable by restoring it beside the live data.

``snapkeep snapshot:verify ID --restore`` (the activity ``environment.backup.verify``)
restores every part of the snapshot exactly as a restore would, but into scratch copies
that nothing uses, then recomputes their digests and compares them with the ones the
snapshot recorded:

- each mount into ``.snapkeep/drills/<env>/<token>/mounts/<mount>`` (the project's state
  directory, on the host running the drill; ``volumes.prepare_restore`` + ``swap`` +
  ``finish``, then ``volumes.tree_digest``);
- the database into ``<db>__skdrill_<token>`` on the environment's server, a database
  that did not exist (``mysql.prepare_restore`` + ``swap`` + ``finish``).

The live database and mounts are never touched. The scratch copies are removed whatever
happens; a drill killed before it could (SIGKILL, a lost host) leaves its work directory,
whose name carries the token and which holds the scratch database's name, so the next
activity of the environment on this host removes both (``cleanup_leftovers``, called by
``operations.execute`` before any activity's work).

The outcome is recorded on the snapshot's catalog row (``Catalog.record_drill``):
``verified_ok`` true when every part was verified identical (a table the snapshot
stored as pages: verified by its pages' checks, ``CHECK TABLE … EXTENDED`` and the row
count the snapshot told from its pages, ``verify_pages.py``), false on any mismatch or
damage (the activity then fails naming each mismatch); ``verified_at`` is the time of
the last drill that passed. A part recorded before digests existed is restored and
reported "not verifiable"; a drill with such a part passes nothing (``verified_ok``
stays unset) unless another part fails.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from snapkeep.config import EnvironmentConfig, safe_name
from snapkeep.engines import mysql, volumes
from snapkeep.errors import IntegrityError, RepositoryError, SnapkeepError
from snapkeep.faults import crash_point
from snapkeep.progress import Reporter
from snapkeep.repository import SnapshotManifest
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target

VERIFY = "environment.backup.verify"
DRILLS_DIR = "drills"  # under .snapkeep/: drills/<environment>/<token>/
DATABASE_FILE = "database"  # in a drill's work dir: the scratch database's name
LOCK_WAIT = 30.0  # seconds a drill waits for a prune's exclusive lock


@dataclass
class DrillResult:
    """What a drill found: parts verified identical, parts without a recorded digest, and
    one line per mismatch or damage."""

    verified: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool | None:
        """True: all verified; False: a mismatch; None: nothing wrong, not all verifiable."""
        if self.mismatches:
            return False
        return None if self.unverifiable else True


def _drills(ctx: Context, env: EnvironmentConfig) -> Path:
    return ctx.config.state_dir / DRILLS_DIR / safe_name(env.name)


def cleanup_leftovers(ctx: Context, env: EnvironmentConfig, reporter: Reporter) -> None:
    """Remove what killed drills of ``env`` left on this host: their scratch databases
    (with the helpers a restore into them made) and work directories. Call with the
    environment's lock held (no drill of it runs here then). Cheap when there is none."""
    base = _drills(ctx, env)
    try:
        left = sorted(p for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return
    for work in left:
        _remove(work, _scratch_of(env, work), reporter, leftover=True)


def _scratch_of(env: EnvironmentConfig, work: Path) -> mysql.MySQLTarget | None:
    target = database_target(env)
    try:
        name = (work / DATABASE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return target.with_database(name) if target is not None and name else None


def _remove(work: Path, scratch: mysql.MySQLTarget | None, reporter: Reporter, *,
            leftover: bool) -> None:
    """Drop the scratch database (and its restore helpers), then the work directory — in
    that order, so a failure leaves the directory that names the database to drop."""
    why = " left by an interrupted restore drill" if leftover else ""
    if scratch is not None:
        mysql.cleanup_leftovers(scratch, reporter)  # its shadow/old/journal, if any
        if mysql.drop_database(scratch):
            reporter.log(f"dropped the scratch database `{scratch.database}`{why}")
    if work.exists():
        volumes.remove_tree(work)
        if leftover:
            reporter.log(f"removed the scratch directory {work}{why}")


def drill(ctx: Context, env: EnvironmentConfig, manifest: SnapshotManifest,
          reporter: Reporter, *, threads: int | None = None) -> DrillResult:
    """Restore ``manifest`` into scratch copies, compare their digests with the recorded
    ones, remove the copies; record and return the outcome. Raises IntegrityError (after
    recording ``verified_ok`` false) when anything differs or is damaged."""
    repo = ctx.repository
    cleanup_leftovers(ctx, env, reporter)
    db_desc = manifest.services.get("database")
    target = database_target(env) if db_desc is not None else None
    if db_desc is not None and target is None:
        raise SnapkeepError(
            f"snapshot {manifest.id} holds a database but environment {env.name} has none "
            "configured to restore a scratch copy on; add `database` to it in snapkeep.toml")
    if target is not None:
        mysql.check_connection(target)
    token = secrets.token_hex(4)
    work = _drills(ctx, env) / token
    work.mkdir(parents=True)
    scratch = target.with_database(mysql.drill_name(target.database, token)) if target else None
    if scratch is not None:
        (work / DATABASE_FILE).write_text(scratch.database + "\n")
    reporter.log(f"Restore drill of backup {manifest.id}: restoring it into scratch copies "
                 f"({work}" + (f", database `{scratch.database}`" if scratch else "")
                 + "); the live data is not touched")
    reporter.add_total(2 * sum(int(d.get("bytes", 0)) for d in manifest.mounts.values())
                       + (int(db_desc.get("size_bytes", 0)) if db_desc else 0))
    result = DrillResult()
    try:
        with repo.lock(exclusive=False, wait=LOCK_WAIT):
            for name, desc in manifest.mounts.items():
                _drill_mount(repo, name, desc, work / "mounts" / name, reporter, result)
            if db_desc is not None and scratch is not None:
                _drill_database(repo, db_desc, scratch, reporter, result, threads)
    finally:
        try:
            _remove(work, scratch, reporter, leftover=False)
        except SnapkeepError as e:  # the next activity of the environment retries
            reporter.log(f"could not remove the drill's scratch copies yet ({e}); the next "
                         f"activity of {env.name} removes them")
    return _record(ctx, manifest, result, reporter)


class _Prepared(Protocol):
    def swap(self) -> object: ...

    def finish(self) -> object: ...


def _restored(prepare: Callable[[], _Prepared], what: str, result: DrillResult) -> bool:
    """Restore one part into the drill's scratch place; False, with ``what`` recorded as
    a mismatch, when the snapshot's part cannot be restored."""
    try:
        prepared = prepare()
        prepared.swap()
        prepared.finish()
    except (IntegrityError, RepositoryError) as e:
        result.mismatches.append(f"{what}: cannot be restored: {e}")
        return False
    return True


def _drill_mount(repo: Any, name: str, desc: dict[str, Any], where: Path,
                 reporter: Reporter, result: DrillResult) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    if not _restored(lambda: volumes.prepare_restore(where, desc, repo, reporter),
                     f"mount {name}", result):
        return
    crash_point("drill.mount-restored")
    want = volumes.recorded_digest(desc)
    if want is None:
        result.unverifiable.append(f"mount {name}")
        reporter.log(f"mount {name}: restored, not verifiable (the snapshot was taken before "
                     "snapkeep recorded digests)")
        return
    owner = volumes.restorer_owner()
    if owner is not None:
        # Not root: the copy's files are ours, whatever owners the snapshot holds. Compare
        # against the snapshot's tree with its owners replaced likewise (the tree itself
        # was checked against the recorded digest while restoring).
        with io.BufferedReader(repo.open_blob(volumes.tree_ref(desc, "verify")), 1 << 16) as s:
            want = volumes.owned_by(volumes.decode_tree(s), owner)
    found = volumes.tree_digest(where, repo, reporter, owner=owner)
    if found != want:
        result.mismatches.append(f"mount {name}: the restored copy's digest {found} differs "
                                 f"from the snapshot's {want}")
    else:
        result.verified.append(f"mount {name}")
        reporter.log(f"mount {name}: restored and verified identical ({want})")
    volumes.remove_tree(where)  # space for the next part


def _drill_database(repo: Any, desc: dict[str, Any], scratch: mysql.MySQLTarget,
                    reporter: Reporter, result: DrillResult, threads: int | None) -> None:
    if not _restored(lambda: mysql.prepare_restore(scratch, desc, repo, reporter,
                                                   threads=threads), "database", result):
        return
    crash_point("drill.database-restored")
    found = mysql.table_digests(scratch, desc, reporter, threads=threads)
    pages = mysql.check_paged(scratch, desc, reporter, threads=threads)
    lines = mysql.compare_digests(desc, found) + mysql.compare_paged(desc, pages)
    # both name two kinds: a table that cannot be checked (recorded before digests, in
    # mixed encodings, pages without a recorded count) says "not verifiable"; every
    # other line differs.
    unverifiable = [x for x in lines if "not verifiable" in x]
    mismatches = [x for x in lines if "not verifiable" not in x]
    result.mismatches += [f"database: {x}" for x in mismatches]
    for x in unverifiable:
        reporter.log(f"database: {x}")
    total = len(found) + len(pages)
    if unverifiable:
        result.unverifiable.append(f"database ({len(unverifiable)} of {total} tables)")
    elif not mismatches:
        how = f"the rows of its {len(found)} tables verified identical" if found else ""
        if pages:
            how += (" and " if how else "") + (
                f"its {len(pages)} tables stored as pages verified by their page checks, "
                "CHECK TABLE … EXTENDED and row counts")
        result.verified.append(f"database ({total} tables)")
        reporter.log(f"database: restored and {how}")


def _record(ctx: Context, manifest: SnapshotManifest, result: DrillResult,
            reporter: Reporter) -> DrillResult:
    if ctx.replica is None:  # the catalog's verdicts are the primary's snapshots'
        ctx.catalog.record_drill(manifest.id, result.ok, ctx.clock())
    for line in result.mismatches:
        reporter.log(f"MISMATCH {line}")
    if result.ok is False:
        raise IntegrityError(
            f"the restore drill of backup {manifest.id} failed: "
            + "; ".join(result.mismatches)
            + ". The live data was not touched. Run `snapkeep repository:check --read-data` "
            "and rely on another snapshot")
    if result.ok:
        reporter.log(f"Restore drill of backup {manifest.id}"
                     + (f" in replica {ctx.replica}" if ctx.replica else "") + " passed: "
                     f"{', '.join(result.verified)} restored and verified identical")
    else:
        reporter.log(f"Restore drill of backup {manifest.id}: everything restored; "
                     f"not verifiable: {', '.join(result.unverifiable)}"
                     + (f"; verified identical: {', '.join(result.verified)}"
                        if result.verified else "")
                     + " (not recorded as verified)")
    return result
