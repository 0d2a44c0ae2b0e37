"""The restore cut-over journal: what a killed restore was swapping, so the next command
can settle it — everything back to the previous data, or (once every part was swapped
in) everything kept new. Never a mix of old and new.

``<root>/.snapkeep-state/journal.json`` — beside the mounts, so a worker of any host that
serves the environment reads it (``shared_state``) — is written durably before the first
swap, marked ``swapped`` when the last swap returned (the commit point of a restore), and
removed after ``finish``. It names the activity and worker that wrote it; whoever settles
it for a dead worker first records itself as ``settled_by``, and the writer, should it
come back, touches nothing the journal no longer says is its own (``owned_by``).
A mount's staging may hold hard links to unchanged live files, and its swap first
rewrites those changed since staging (``volumes`` linking): all of it inside the staging
directory, so the record needs nothing more — a mount not yet swapped is settled by
removing its staging tree (unlinks only), a swapped one by renames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engines import mysql, volumes
from snapkeep.errors import SnapkeepError
from snapkeep.progress import NullReporter
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target, mount_dir
from snapkeep.services.snapshots import shared_state

CUTOVER, SWAPPED = "cutover", "swapped"


@dataclass(frozen=True)
class Settled:
    """How ``recover`` settled a killed restore: ``completed`` (the new data stays) or
    rolled back; ``variables`` and ``foreign`` are what its after-restore steps need."""

    snapshot: str
    completed: bool
    variables: dict[str, str] = field(default_factory=dict)
    foreign: bool = False


class CutoverJournal:
    def __init__(self, ctx: Context, environment: str) -> None:
        env = ctx.config.environments.get(environment)
        self.legacy = shared_state.legacy(ctx, "journal", environment)
        self.path = shared_state.path(env, "journal.json") if env is not None else self.legacy

    def read(self) -> dict[str, Any] | None:
        """The journal (a legacy one on this host's disk if there is no shared one)."""
        for p in dict.fromkeys((self.path, self.legacy)):
            data = shared_state.read(p)
            if data is not None:
                self.path = p
                return data or None  # {}: torn by hand; nothing was swapped from it
        return None

    def _write(self, data: dict[str, Any]) -> None:
        shared_state.write(self.path, data)

    def begin(self, snapshot_id: str, mounts: list[dict[str, Any]], *,
              variables: dict[str, str] | None = None, foreign: bool = False,
              activity: str | None = None, worker: str | None = None) -> None:
        """``variables``/``foreign``: for the after-restore steps of a restore completed by
        ``recover`` after its process was killed; ``activity``/``worker``: who cuts over."""
        self._write({"snapshot": snapshot_id, "phase": CUTOVER, "mounts": mounts,
                     "variables": variables or {}, "foreign": foreign,
                     "activity": activity, "worker": worker})

    def owned_by(self, worker: str | None) -> bool:
        """Whether the journal is still ``worker``'s to act on: it exists, no one else
        settles it. A worker that lost its lease and woke up finds it is not."""
        data = self.read()
        return data is not None and not data.get("settled_by") and data.get("worker") == worker

    def mark_swapped(self) -> None:
        data = self.read() or {}
        data["phase"] = SWAPPED
        self._write(data)

    def clear(self) -> None:
        shared_state.remove(self.path)


def pending(ctx: Context, environment: str) -> dict[str, Any] | None:
    """The cut-over journal a restore left on ``environment``, if any."""
    return CutoverJournal(ctx, environment).read()


def recover(ctx: Context, environment: str, log: Callable[[str], None],
            settler: str | None = None) -> Settled | None:
    """Settle the cut-over a killed restore left; how, or None if there was none.

    Before the journal's commit point everything goes back to the previous data — the
    database too, even if its own RENAME had happened — and after it everything stays
    new. ``settler`` (who settles) is recorded in the journal first. If the database
    cannot be reached, the journal is kept and this runs again.
    """
    journal = CutoverJournal(ctx, environment)
    data = journal.read()
    if data is None:
        return None
    if data and settler is not None and data.get("settled_by") != settler:
        data["settled_by"] = settler
        journal._write(data)
    keep_new = data.get("phase") == SWAPPED
    for record in data.get("mounts", []):
        volumes.recover_cutover(record, keep_new=keep_new)
    env = ctx.config.environments.get(environment)
    target = database_target(env) if env is not None else None
    if target is not None:
        mysql.cleanup_leftovers(target, _LogReporter(log), keep_new=keep_new)
    log(f"An interrupted restore of snapshot {data.get('snapshot')} was "
        f"{'completed' if keep_new else 'rolled back'}: database and mounts are "
        f"{'all from the snapshot' if keep_new else 'all as they were before it'}.")
    journal.clear()
    variables = data.get("variables")
    return Settled(str(data.get("snapshot")), keep_new,
                   dict(variables) if isinstance(variables, dict) else {},
                   bool(data.get("foreign")))


def drop_prepared(ctx: Context, environment: str, log: Callable[[str], None]) -> None:
    """Remove what a restore killed while preparing left (no journal yet): its mounts'
    staging directories and the shadow database. A database that cannot be reached keeps
    its shadow for the next restore, which drops it first."""
    env = ctx.config.environments.get(environment)
    if env is None:
        return
    for m in env.mounts:
        volumes.cleanup_leftovers(mount_dir(env, m))
    target = database_target(env)
    if target is not None:
        try:
            mysql.cleanup_leftovers(target, _LogReporter(log))
        except SnapkeepError as e:
            log(f"The shadow database of the interrupted restore could not be dropped yet "
                f"({e}); the next restore of {environment} drops it.")


class _LogReporter(NullReporter):
    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log

    def log(self, message: str) -> None:
        self._log(message)
