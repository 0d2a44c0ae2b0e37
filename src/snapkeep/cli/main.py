"""Entry point: the command group (each command imported when it runs, from the table in
commands.py), its aliases and the one place errors are printed."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from snapkeep import __version__
from snapkeep.cli.commands import ALIASES, COMMANDS
from snapkeep.errors import SnapkeepError
from snapkeep.malloc import bound_heap_growth


class LazyGroup(click.Group):
    """The commands of ``commands.COMMANDS``, each module imported only when its command runs:
    ``--help`` and ``--version`` import none (start-up, docs/performance.md)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = ALIASES.get(cmd_name, cmd_name)
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"snapkeep.cli.{COMMANDS[name].module}")
        # What the imports made (modules, classes, functions) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it (an unchanged
        # re-snapshot allocates ~6,000 dicts, enough for one; docs/performance.md)
        gc.freeze()
        return next(c for c in module.COMMANDS if c.name == name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        _name, cmd, rest = super().resolve_command(ctx, args)
        return cmd.name if cmd else _name, cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            aliases = [a for a, target in ALIASES.items() if target == name]
            label = f"{name} ({', '.join(aliases)})" if aliases else name
            rows.append((label, COMMANDS[name].short_help))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snapkeep")
def cli() -> None:
    """snapkeep: snapshots of application environments (database and mounts; code stays in git)."""


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
