"""snapshot:create, snapshot:list, snapshot:get, snapshot:restore, snapshot:delete."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click

from snapkeep.cli.client import Client, connect
from snapkeep.cli.options import environment_options, format_option, load
from snapkeep.cli.render import (
    ActivityDisplay,
    ConsoleReporter,
    print_report,
    say,
    table,
)
from snapkeep.errors import IntegrityError, UsageError
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.sizes import human_size
from snapkeep.services.snapshots.listing import SnapshotInfo
from snapkeep.services.snapshots.restore_scope import RestoreScope

COLUMNS: dict[str, tuple[str, Callable[[SnapshotInfo], str]]] = {
    "created": ("Created", lambda s: s.created_at.isoformat(timespec="seconds")),
    "id": ("Snapshot ID", lambda s: s.id),
    "restorable": ("Restorable", lambda s: str(s.restorable).lower()),
    "expires_at": ("Expires", lambda s: s.expires_at.isoformat(timespec="seconds")
                   if s.expires_at else ""),
    "live": ("Live", lambda s: str(s.live).lower()),
    "automated": ("Automated", lambda s: str(s.automated).lower()),
    "commit_id": ("Commit", lambda s: s.commit_id or ""),
    "size": ("Size", lambda s: human_size(s.size_bytes)),
    "added": ("Added", lambda s: "" if s.added_bytes is None else human_size(s.added_bytes)),
    "status": ("Status", lambda s: s.status),
    "verified": ("Verified", lambda s: _verified(s)),
    "engine": ("Engine", lambda s: s.engine or ""),  # physical | logical (docs/physical.md)
}
DEFAULT_COLUMNS = "created,id,restorable"
def _verified(s: SnapshotInfo) -> str:
    """The restore drills' verdict: ok (when), FAILED, or empty (never drilled)."""
    if s.verified_ok is None:
        return ""
    if s.verified_ok:
        return "ok " + (s.verified_at.isoformat(timespec="seconds") if s.verified_at else "")
    return "FAILED"


def _columns(spec: str) -> list[str]:
    names = [c.strip().lower().replace(" ", "_") for c in spec.split(",") if c.strip()]
    names = ["id" if c in ("snapshot_id", "snapshot") else c for c in names]
    unknown = [c for c in names if c not in COLUMNS]
    if unknown or not names:
        raise UsageError(f"unknown column {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(COLUMNS)}")
    return names


def client_for(config_path: str | None, project: str | None,
               replica: str | None = None) -> Client:
    """This process's services, or the server configured by SNAPKEEP_URL/auth:login;
    ``replica`` (``--from NAME``): the services reading that replica, in this process."""
    if replica is None:
        return connect(lambda: load(config_path, project), project)
    from snapkeep.cli.credentials import remote_settings
    from snapkeep.cli.local_client import LocalClient

    if remote_settings() is not None:
        raise UsageError("--from reads a replica with this machine's config and keys: run "
                         "it where [replicas.NAME] is configured, without SNAPKEEP_URL / "
                         "auth:login (`snapkeep auth:logout`)")
    return LocalClient(load(config_path, project).in_replica(replica))


def from_option(f: Callable) -> Callable:
    return click.option("--from", "replica", metavar="NAME",
                        help="Read the snapshots of replica NAME ([replicas.NAME]) instead "
                             "of the project's repository.")(f)


def follow(start: Callable[[ActivityDisplay], ActivityInfo | None]) -> ActivityInfo:
    """Run (or follow the server run) an activity behind a progress display. (A remote
    export's download is no activity here: the server records its own.)"""
    with ActivityDisplay() as display:
        activity = start(display)
        display.finish("complete")
    if activity is not None:
        say(f"Activity {activity.id} succeeded")
    return activity  # type: ignore[return-value]


def detached(a: ActivityInfo) -> None:
    say(f"Activity {a.id} started ({a.description}); follow it with "
        f"`snapkeep activity:log {a.id}`")
    click.echo(a.id)


@click.command("snapshot:create")
@environment_options
@click.option("--live", is_flag=True, help="Keep the environment running (no pause).")
@click.option("-W", "--no-wait", is_flag=True, help="Start the activity and return its ID.")
@click.option("--threads", "-t", type=click.IntRange(1, 64), default=None,
              help="Database connections dumping in parallel (default: the CPU count).")
def create(config_path, project, environment, live, no_wait, threads) -> None:
    """Make a snapshot of the environment's database and mounts (never code)."""
    client = client_for(config_path, project)
    env = client.environment(environment)
    say(f"Creating a snapshot of {env.name}")
    if no_wait:
        return detached(client.create_snapshot(env.name, live=live, threads=threads,
                                               wait=False, observer=None))
    a = follow(lambda d: client.create_snapshot(env.name, live=live, threads=threads,
                                                wait=True, observer=d))
    click.echo(f"Snapshot name: {a.snapshot_id}")


@click.command("snapshot:list")
@environment_options
@format_option
@click.option("--columns", "-c", default=DEFAULT_COLUMNS, show_default=True,
              help=f"Comma-separated: {', '.join(COLUMNS)}.")
@click.option("--no-header", is_flag=True, help="Leave out the header row.")
@from_option
def list_(config_path, project, environment, fmt, columns, no_header, replica) -> None:
    """List the environment's snapshots, newest first."""
    client = client_for(config_path, project, replica)
    env = client.environment(environment)
    cols = _columns(columns)
    items = client.list_snapshots(env.name)
    if fmt == "table":
        where = f" in replica {replica}" if replica else ""
        say(f"Snapshots on the project ({client.project_id}), environment {env.name} "
            f"(type: {env.type}){where}:")
        if not items:
            say("No snapshots yet. Take one with `snapkeep snapshot:create`.")
            return
    rows = [[COLUMNS[c][1](s) for c in cols] for s in items]
    click.echo(table([COLUMNS[c][0] for c in cols], rows, fmt, not no_header,
                     json_rows=[s.to_json() for s in items]))


@click.command("snapshot:get")
@environment_options
@click.argument("snapshot_id")
@click.option("--property", "-P", "prop", metavar="NAME", help="Print one property only.")
@format_option
@from_option
def get(config_path, project, environment, snapshot_id, prop, fmt, replica) -> None:
    """Show one snapshot's properties."""
    client = client_for(config_path, project, replica)
    env = client.environment(environment)
    data = client.get_snapshot(env.name, snapshot_id).to_json()
    if prop:
        if prop not in data:
            raise UsageError(f"unknown property {prop!r}; choose from {', '.join(data)}")
        value = data[prop]
        click.echo(json.dumps(value) if isinstance(value, bool) or value is None else value)
        return
    rows = [[k, "" if v is None else (json.dumps(v) if isinstance(v, bool) else str(v))]
            for k, v in data.items()]
    click.echo(table(["Property", "Value"], rows, fmt, json_rows=data))


@click.command("snapshot:restore")
@environment_options
@click.argument("snapshot_id", required=False)
@click.option("--target", metavar="ENV",
              help="Restore into this environment instead (data only; Admin there needed).")
@click.option("--only", type=click.Choice(["database", "mounts"]),
              help="Restore only the database, or only the mounts.")
@click.option("--mount", "mounts", multiple=True, metavar="MOUNT",
              help="Restore only this mount (repeatable), e.g. pub/media.")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Restore only this table of the database, with its triggers (repeatable).")
@click.option("-y", "--yes", is_flag=True, help="Answer yes to the confirmation.")
@click.option("-W", "--no-wait", is_flag=True, help="Start the activity and return its ID.")
@click.option("--threads", "-t", type=click.IntRange(1, 64), default=None,
              help="Tables loaded in parallel (default: the CPU count).")
@click.option("--at", "at", metavar="TIME|GTID",
              help="The database as of this time (ISO 8601, e.g. 2026-12-05T10:19:59Z; "
                   "without an offset: this machine's zone) or up to this GTID, from the "
                   "latest snapshot before it (or SNAPSHOT_ID) and the archived binlog.")
@from_option
def restore_(config_path, project, environment, snapshot_id, target, only, mounts, tables,
             yes, no_wait, threads, at, replica) -> None:
    """Restore a snapshot (the most recent when no ID is given). Code is left alone."""
    client = client_for(config_path, project, replica)
    env = client.environment(environment)
    into = client.environment(target) if target else env
    scope = RestoreScope.parse(only, mounts, tables)
    if at is not None:
        return _restore_at(client, env, into, snapshot_id, scope, at, yes=yes,
                           no_wait=no_wait, threads=threads)
    snap = client.get_snapshot(env.name, snapshot_id)
    created = f"created {snap.created_at.isoformat(timespec='seconds')}" \
        f"{' (live)' if snap.live else ''}"
    preview = client.restore_preview(env.name, snap.id)
    what = scope.summary(preview.database, list(preview.mounts))
    if into.name == env.name:
        say(f"Restoring snapshot {snap.id} of {env.name}, {created}.")
        if scope.is_full:
            what = f"the database and the mounts ({', '.join(preview.mounts) or 'none'})"
        say(f"{what[:1].upper()}{what[1:]} will be replaced with the snapshot's contents; "
            "code is not changed.")
        question = f"Are you sure you want to restore {env.name} from {snap.id}?"
    else:
        say(f"Restoring snapshot {snap.id} of {env.name} ({created}) into {into.name} "
            f"(type: {into.type}).")
        say(f"{into.name}'s {what.removeprefix('the ')} will be replaced with {env.name}'s "
            f"data; {env.name} is not changed, and {into.name}'s code is not changed.")
        question = (f"Are you sure you want to replace {into.name}'s data with snapshot "
                    f"{snap.id} of {env.name}?")
    if not scope.is_full:
        say(f"Everything else in {into.name} stays as it is.")
    if preview.code_note and into.name == env.name:
        say(preview.code_note)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"restoring replaces {into.name}'s data: confirm with --yes "
                             "(no terminal to ask on)")
        if not click.confirm(question, err=True):
            say("Nothing was restored.")
            return
    target_name = into.name if into.name != env.name else None

    def start(observer: ActivityDisplay | None, wait: bool) -> ActivityInfo:
        return client.restore_snapshot(env.name, snap.id, threads=threads, wait=wait,
                                       observer=observer, target=target_name, scope=scope)

    if no_wait:
        return detached(start(None, False))
    follow(lambda d: start(d, True))


def _restore_at(client, env, into, snapshot_id, scope, at, *, yes, no_wait, threads) -> None:
    """``snapshot:restore --at``: the database (or ``--table`` tables) as of a point."""
    what = "the database" if scope.tables is None else \
        "table " + ", ".join(scope.tables)
    source = "" if into.name == env.name else f" of {env.name}"
    base = f"snapshot {snapshot_id}" if snapshot_id else "the latest snapshot before it"
    say(f"Restoring {what}{source} into {into.name} as of {at}: {base}, then the archived "
        f"binlog replayed. Mounts and code are not changed.")
    if scope.tables is not None:
        say(f"Everything else in {into.name} stays as it is.")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"restoring replaces {into.name}'s data: confirm with --yes "
                             "(no terminal to ask on)")
        if not click.confirm(f"Are you sure you want to restore {into.name} as of {at}?",
                             err=True):
            say("Nothing was restored.")
            return None
    target_name = into.name if into.name != env.name else None

    def start(observer: ActivityDisplay | None, wait: bool) -> ActivityInfo:
        return client.restore_snapshot(env.name, snapshot_id, threads=threads, wait=wait,
                                       observer=observer, target=target_name, scope=scope,
                                       at=at)

    if no_wait:
        return detached(start(None, False))
    follow(lambda d: start(d, True))
    return None


@click.command("snapshot:delete")
@environment_options
@click.argument("snapshot_id")
def delete(config_path, project, environment, snapshot_id) -> None:
    """Delete a snapshot."""
    client = client_for(config_path, project)
    env = client.environment(environment)
    follow(lambda d: client.delete_snapshot(env.name, snapshot_id, observer=d))


@click.command("snapshot:expire")
@environment_options
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be deleted.")
@from_option
def expire(config_path, project, environment, dry_run, replica) -> None:
    """Delete snapshots past their restore window or outside the retention policy."""
    client = client_for(config_path, project, replica)
    decisions = client.expire_snapshots(client.environment(environment).name, dry_run=dry_run)
    rows = [[d.snapshot.id, d.snapshot.created_at.isoformat(timespec="seconds"),
             "keep" if d.keep else ("would delete" if dry_run else "deleted"), d.reason]
            for d in decisions]
    if rows:
        click.echo(table(["Snapshot ID", "Created", "Action", "Reason"], rows, "table"))
    gone = sum(not d.keep for d in decisions)
    say(f"{gone} snapshot(s) {'would be ' if dry_run else ''}deleted, "
        f"{len(decisions) - gone} kept.")


@click.command("snapshot:verify")
@environment_options
@click.argument("snapshot_id", required=False)
@click.option("--restore", "drill", is_flag=True,
              help="Run a restore drill: restore it into a scratch database and directory "
                   "(never the live ones), compare with the digests taken at snapshot time, "
                   "remove the copies, and record the result (verified_ok).")
@click.option("-W", "--no-wait", is_flag=True,
              help="With --restore: start the activity and return its ID.")
@click.option("--threads", "-t", type=click.IntRange(1, 64), default=None,
              help="With --restore: tables loaded in parallel (default: the CPU count).")
@from_option
def verify(config_path, project, environment, snapshot_id, drill, no_wait, threads,
           replica) -> None:
    """Read and check every byte of a snapshot (the most recent without ID).

    With --restore, prove it restorable: the activity environment.backup.verify restores
    it beside the live data and compares digests; `snapshot:list --format json` shows the
    outcome (verified_at, verified_ok). `verify = "0 4 * * *"` in an environment of
    snapkeep.toml runs such a drill of the newest snapshot on a schedule (docs/verify.md).
    """
    client = client_for(config_path, project, replica)
    env = client.environment(environment)
    snap = client.get_snapshot(env.name, snapshot_id)
    if drill:
        say(f"Restore drill of snapshot {snap.id} of {env.name}")
        if no_wait:
            return detached(client.drill_snapshot(env.name, snap.id, threads=threads,
                                                  wait=False, observer=None))
        follow(lambda d: client.drill_snapshot(env.name, snap.id, threads=threads, wait=True,
                                               observer=d))
        return None
    if no_wait or threads is not None:
        raise UsageError("--no-wait and --threads go with --restore (a restore drill); a "
                         "plain verify reads the snapshot here")
    report = client.verify_snapshot(env.name, snap.id, ConsoleReporter(verbose=False))
    print_report(report, f"snapshot {snap.id}")
    if not report.ok:
        raise IntegrityError(f"snapshot {snap.id} is damaged: {report.problems[0].key}: "
                             f"{report.problems[0].message}")


COMMANDS = [create, list_, get, restore_, delete, expire, verify]
