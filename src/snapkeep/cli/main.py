"""Entry point: the command group, its aliases and the one place errors are printed."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from snapkeep import __version__
from snapkeep.errors import SnapkeepError
from snapkeep.malloc import bound_heap_growth

ALIASES = {
    "backup": "snapshot:create",
    "backup:create": "snapshot:create",
    "snapshots": "snapshot:list",
    "backup:list": "snapshot:list",
    "backup:restore": "snapshot:restore",
    "backup:get": "snapshot:get",
    "backup:delete": "snapshot:delete",
    "environments": "environment:list",
    "activities": "activity:list",
}


class AliasedGroup(click.Group):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        _name, cmd, rest = super().resolve_command(ctx, args)
        return cmd.name if cmd else _name, cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            aliases = [a for a, target in ALIASES.items() if target == name]
            label = f"{name} ({', '.join(aliases)})" if aliases else name
            rows.append((label, cmd.get_short_help_str(70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snapkeep")
def cli() -> None:
    """snapkeep: snapshots of application environments (database and mounts; code stays in git)."""


def _register() -> None:
    from snapkeep.cli import (
        activity,
        auth,
        auth_login,
        environment,
        key,
        project,
        repository,
        schedule,
        serve,
        snapshot,
        transfer,
        user,
        worker,
    )

    for module in (snapshot, transfer, environment, activity, project, repository, key, user,
                   auth, auth_login, schedule, worker, serve):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def run(fn: Callable[[], int | None]) -> int:
    """Call ``fn``; turn every predictable failure into one line on stderr and an exit code."""
    try:
        return fn() or 0
    except SnapkeepError as e:
        click.echo(f"snapkeep: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("snapkeep: interrupted", err=True)
        return 130
    except Exception as e:  # a bug: say so plainly, details only on request
        if os.environ.get("SNAPKEEP_DEBUG"):
            traceback.print_exc()
        click.echo(f"snapkeep: internal error: {type(e).__name__}: {e} "
                   "(set SNAPKEEP_DEBUG=1 for details and report it)", err=True)
        return 70


def main(argv: list[str] | None = None) -> None:
    # Library warnings (e.g. storage retries) reach the person as plain lines on stderr.
    logging.basicConfig(level=logging.WARNING, format="snapkeep: %(message)s")
    bound_heap_growth()

    def invoke() -> int:
        try:
            cli.main(args=argv, prog_name="snapkeep", standalone_mode=False)
        except click.exceptions.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt):  # Ctrl-C: exit 130, not 1
                raise e.__cause__ from None
            click.echo("snapkeep: aborted", err=True)
            return 1
        except click.ClickException as e:
            e.show()
            return e.exit_code
        return 0

    sys.exit(run(invoke))
