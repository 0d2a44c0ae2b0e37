"""activity:list, activity:get, activity:log, activity:cancel."""

from __future__ import annotations

import click

from snapkeep.cli.client import Client, connect
from snapkeep.cli.options import format_option, load, project_options
from snapkeep.cli.render import say, table, timestamp
from snapkeep.errors import UsageError
from snapkeep.services.activities.info import ActivityInfo


def _client(config_path: str | None, project: str | None) -> Client:
    """This process's services, or the server configured by SNAPKEEP_URL/auth:login."""
    return connect(lambda: load(config_path, project), project)


def _json(a: ActivityInfo) -> dict:
    return {"id": a.id, "type": a.type, "environment": a.environment,
            "description": a.description, "state": a.state, "result": a.result,
            "created_at": timestamp(a.created_at), "started_at": timestamp(a.started_at),
            "completed_at": timestamp(a.completed_at), "completion_percent": a.completion_percent,
            "snapshot_id": a.snapshot_id, "error": a.error,
            "warnings": list(a.warnings or [])}


@click.command("activity:list")
@project_options
@click.option("-e", "--environment", metavar="NAME",
              help="Only this environment (default: all).")
@click.option("--limit", default=20, show_default=True)
@format_option
def list_(config_path, project, environment, limit, fmt) -> None:
    """List recent activities, newest first (Warnings: how many each recorded; read them
    with activity:get)."""
    items = _client(config_path, project).list_activities(environment, limit=limit)
    rows = [[a.id, timestamp(a.created_at), a.description, f"{a.completion_percent}%", a.state,
             a.result or "", str(len(a.warnings)) if a.warnings else ""] for a in items]
    json_rows = [_json(a) for a in items]
    click.echo(table(["ID", "Created", "Description", "Progress", "State", "Result",
                      "Warnings"], rows, fmt, json_rows=json_rows))


@click.command("activity:log")
@project_options
@click.argument("activity_id")
@click.option("--timestamps", "-t", is_flag=True, help="Show when each line was written.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing until the activity completes.")
def log(config_path, project, activity_id, timestamps, follow) -> None:
    """Print an activity's log."""
    for line in _client(config_path, project).follow_log(activity_id, follow=follow):
        click.echo(f"[{timestamp(line.at)}] {line.message}" if timestamps else line.message)


@click.command("activity:get")
@project_options
@click.argument("activity_id")
@click.option("--property", "-P", "prop", metavar="NAME", help="Print one property only.")
@format_option
def get(config_path, project, activity_id, prop, fmt) -> None:
    """Show one activity's properties."""
    data = _json(_client(config_path, project).get_activity(activity_id))
    if prop:
        if prop not in data:
            raise UsageError(f"unknown property {prop!r}; choose from {', '.join(data)}")
        value = data[prop]
        click.echo("\n".join(value) if isinstance(value, list) else
                   "" if value is None else value)
        return
    rows = [[k, _cell(v)] for k, v in data.items() if k != "warnings"]
    # one row per warning, so each reads whole
    rows += [["warning", w] for w in data["warnings"]]
    click.echo(table(["Property", "Value"], rows, fmt, json_rows=data))


def _cell(value: object) -> str:
    return "" if value is None else str(value)


@click.command("activity:cancel")
@project_options
@click.argument("activity_id")
def cancel(config_path, project, activity_id) -> None:
    """Cancel an activity: a queued one at once, a running one at its next safe point."""
    a = _client(config_path, project).cancel_activity(activity_id)
    if a.state == "cancelled":
        say(f"Activity {a.id} is cancelled.")
    else:
        say(f"Activity {a.id} was asked to stop; it ends at its next safe point (a restore "
            f"past its cut-over runs to its end). Follow it: `snapkeep activity:log {a.id}`")


COMMANDS = [list_, get, log, cancel]
