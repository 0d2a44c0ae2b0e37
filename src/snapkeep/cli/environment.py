"""environment:list, environment:info, environment:activate, environment:deactivate."""

from __future__ import annotations

import dataclasses

import click

from snapkeep.cli.options import (
    environment_options,
    format_option,
    load,
    load_env,
    table_options,
)
from snapkeep.cli.render import say, table
from snapkeep.services import environments


@click.command("environment:list")
@table_options
def list_(config_path, project, fmt) -> None:
    """List the project's environments."""
    ctx = load(config_path, project)
    items = environments.list_environments(ctx)
    rows = [[e.name, e.type, e.status, e.root] for e in items]
    click.echo(table(["ID", "Type", "Status", "Root"], rows, fmt,
                     json_rows=[dataclasses.asdict(e) for e in items]))


@click.command("environment:info")
@environment_options
@format_option
def info(config_path, project, environment, fmt) -> None:
    """Show one environment."""
    ctx, env = load_env(config_path, project, environment)
    data = dataclasses.asdict(environments.info(ctx, env, window=True))
    rows = [[k, ", ".join(v) if isinstance(v, list | tuple) else str(v or "")]
            for k, v in data.items() if not isinstance(v, dict)]  # the window: JSON only
    click.echo(table(["Property", "Value"], rows, fmt, json_rows=data))


def _set(config_path, project, environment, active: bool) -> None:
    ctx, env = load_env(config_path, project, environment)
    e = environments.set_active(ctx, env, active)
    say(f"Environment {e.name} is now {e.status}.")


@click.command("environment:activate")
@environment_options
def activate(config_path, project, environment) -> None:
    """Mark the environment active (snapshots can be taken and restored)."""
    _set(config_path, project, environment, True)


@click.command("environment:deactivate")
@environment_options
def deactivate(config_path, project, environment) -> None:
    """Mark the environment inactive (no snapshots or restores)."""
    _set(config_path, project, environment, False)


COMMANDS = [list_, info, activate, deactivate]
