"""activity:list, activity:log."""

from __future__ import annotations

import time

import click

from snapkeep.cli.options import load, project_options
from snapkeep.cli.render import table
from snapkeep.services import activities, environments

FORMATS = click.Choice(["table", "csv", "tsv", "json"])


def _ts(dt) -> str:
    return dt.isoformat(timespec="seconds") if dt else ""


@click.command("activity:list")
@project_options
@click.option("-e", "--environment", metavar="NAME",
              help="Only this environment (default: all).")
@click.option("--limit", default=20, show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def list_(config_path, project, environment, limit, fmt) -> None:
    """List recent activities, newest first."""
    ctx = load(config_path, project)
    env = environments.resolve(ctx, environment).name if environment else None
    items = activities.list_activities(ctx, env, limit=limit)
    rows = [[a.id, _ts(a.created_at), a.description, f"{a.completion_percent}%", a.state,
             a.result or ""] for a in items]
    json_rows = [{"id": a.id, "type": a.type, "environment": a.environment,
                  "description": a.description, "state": a.state, "result": a.result,
                  "created_at": _ts(a.created_at), "started_at": _ts(a.started_at),
                  "completed_at": _ts(a.completed_at), "completion_percent": a.completion_percent,
                  "snapshot_id": a.snapshot_id, "error": a.error} for a in items]
    click.echo(table(["ID", "Created", "Description", "Progress", "State", "Result"], rows, fmt,
                     json_rows=json_rows))


@click.command("activity:log")
@project_options
@click.argument("activity_id")
@click.option("--timestamps", "-t", is_flag=True, help="Show when each line was written.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing until the activity completes.")
def log(config_path, project, activity_id, timestamps, follow) -> None:
    """Print an activity's log."""
    ctx = load(config_path, project)
    last = 0
    while True:
        for line in activities.activity_log(ctx, activity_id, last):
            last = line.id
            click.echo(f"[{_ts(line.at)}] {line.message}" if timestamps else line.message)
        a = activities.get_activity(ctx, activity_id)
        if not follow or a.state not in activities.RUNNING:
            break
        time.sleep(0.5)


COMMANDS = [list_, log]
