"""The one client interface of the snapshot:* and activity:* commands (DESIGN.md §2).

``LocalClient`` (``local_client.py``) runs the services in this process against
./snapkeep.toml; ``RemoteClient`` (``remote_client.py``) asks a ``snapkeep serve`` over its
REST API. ``connect`` picks one: remote when ``SNAPKEEP_URL`` is set (token in
``SNAPKEEP_TOKEN``) or ``snapkeep auth:login`` stored a server (``credentials.py``), local
otherwise. Both return the same types and raise the same SnapkeepError subclasses for the
same refusals, so a command prints the same either way. The token is sent in a header
only: never printed, logged or put in an argv.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from snapkeep.services.activities.info import ActivityInfo, LogLine
from snapkeep.services.activities.recorder import Observer
from snapkeep.services.context import Context
from snapkeep.services.snapshots import retention
from snapkeep.services.snapshots.listing import SnapshotInfo
from snapkeep.services.snapshots.restore_scope import RestoreScope


@dataclass(frozen=True)
class EnvironmentRef:
    name: str
    type: str


@dataclass(frozen=True)
class RestorePreview:
    """What restoring a snapshot replaces, for the confirmation."""

    mounts: tuple[str, ...]
    code_note: str | None
    database: bool = True  # whether the snapshot holds a database


class Client(Protocol):
    """What the commands ask for. Environments are passed by name.

    ``create_snapshot``/``restore_snapshot``/``delete_snapshot`` run the activity to its
    end, reporting to ``observer``, and return it as it ended (raising what it failed
    with); with ``wait=False`` they return it queued. ``follow_log`` yields log lines,
    until the activity ends when ``follow``.
    """

    @property
    def project_id(self) -> str: ...

    def environment(self, name: str | None) -> EnvironmentRef: ...

    def list_snapshots(self, env: str) -> list[SnapshotInfo]: ...

    def get_snapshot(self, env: str, snapshot_id: str | None) -> SnapshotInfo: ...

    def restore_preview(self, env: str, snapshot_id: str) -> RestorePreview: ...

    def create_snapshot(self, env: str, *, live: bool, threads: int | None, wait: bool,
                        observer: Observer | None) -> ActivityInfo: ...

    def restore_snapshot(self, env: str, snapshot_id: str | None, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None,
                         at: str | None = None) -> ActivityInfo: ...

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> ActivityInfo: ...

    def expire_snapshots(self, env: str, *, dry_run: bool) -> list[retention.Decision]: ...

    def verify_snapshot(self, env: str, snapshot_id: str, reporter: Any) -> Any: ...

    def drill_snapshot(self, env: str, snapshot_id: str, *, threads: int | None, wait: bool,
                       observer: Observer | None) -> ActivityInfo: ...

    def list_activities(self, env: str | None, *, limit: int) -> list[ActivityInfo]: ...

    def get_activity(self, activity_id: str) -> ActivityInfo: ...

    def follow_log(self, activity_id: str, *, follow: bool) -> Iterator[LogLine]: ...

    def cancel_activity(self, activity_id: str) -> ActivityInfo: ...

    def export_snapshot(self, env: str, snapshot_id: str, dest: Path, *, force: bool,
                        wait: bool, observer: Observer | None) -> ActivityInfo | None: ...

    def import_snapshot(self, env: str, source: Path, *, threads: int | None, wait: bool,
                        observer: Observer | None) -> ActivityInfo: ...



def connect(load: Callable[[], Context], project: str | None) -> Client:
    """The client for this command: remote when a server is configured (see
    ``remote_settings``), else local over ``load()``."""
    from snapkeep.cli.credentials import remote_settings

    remote = remote_settings()
    if remote is None:
        from snapkeep.cli.local_client import LocalClient

        return LocalClient(load())
    from snapkeep.cli.remote_client import RemoteClient

    return RemoteClient(remote.url, remote.token, project)

