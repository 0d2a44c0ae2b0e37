"""schedule:add, schedule:list, schedule:delete. Schedule times are UTC."""

from __future__ import annotations

import click

from snapkeep.cli.options import format_option, load, project_options
from snapkeep.cli.render import print_listing, say, timestamp
from snapkeep.services import environments
from snapkeep.services.schedules import manage as schedules


@click.command("schedule:add")
@project_options
@click.argument("environment")
@click.argument("cron")
@click.option("--live", is_flag=True,
              help="Keep the environment running during these backups (no pause).")
def add(config_path, project, environment, cron, live) -> None:
    """Back up ENVIRONMENT automatically on the cron schedule CRON, in UTC.

    CRON has five fields: minute hour day-of-month month day-of-week, all in UTC;
    "0 3 * * *" is every day at 03:00 UTC, "*/15 * * * *" every 15 minutes. The backups
    are automated snapshots, kept by the environment's retention policy; `snapkeep
    serve` runs them.
    """
    ctx = load(config_path, project)
    env = environments.resolve(ctx, environment)
    s = schedules.add_schedule(ctx, env, cron, live=live)
    say(f"Added a {s.mode} backup schedule {s.cron!r} (UTC) to environment {env.name}.")
    click.echo(f"Schedule ID: {s.id}")
    for t in schedules.upcoming(ctx, s, 3):
        click.echo(f"Next run: {timestamp(t)} UTC")


@click.command("schedule:list")
@project_options
@click.option("-e", "--environment", metavar="NAME", help="Only this environment (default: all).")
@format_option
def list_(config_path, project, environment, fmt) -> None:
    """List backup schedules, including the plan's automatic ones. Times are UTC."""
    ctx = load(config_path, project)
    env = environments.resolve(ctx, environment) if environment else None
    items = schedules.list_schedules(ctx, env)
    rows = [[s.id, s.environment, s.cron, s.mode, s.origin, timestamp(s.last_run_at),
             timestamp(s.next_run_at)] for s in items]
    print_listing(["ID", "Environment", "Cron (UTC)", "Mode", "Origin", "Last run",
                   "Next run"], rows, fmt, json_rows=[s.to_json() for s in items],
                  empty="No backup schedules. Add one with `snapkeep schedule:add ENV "
                        "\"0 3 * * *\"`.")


@click.command("schedule:delete")
@project_options
@click.argument("schedule_id")
def delete(config_path, project, schedule_id) -> None:
    """Delete a backup schedule (the Pro plan's own schedules cannot be deleted)."""
    ctx = load(config_path, project)
    s = schedules.delete_schedule(ctx, schedule_id)
    say(f"Deleted schedule {s.id} ({s.cron!r}, {s.mode}) of environment {s.environment}.")


COMMANDS = [add, list_, delete]
