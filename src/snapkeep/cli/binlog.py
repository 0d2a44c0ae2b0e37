"""binlog:follow, binlog:check (point in time, docs/pitr.md)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from snapkeep.cli.options import environment_options, load_env
from snapkeep.cli.render import say
from snapkeep.errors import ServerSetupError
from snapkeep.services import binlogs


class _Printer:
    """The follower's log lines on stdout (systemd's journal)."""

    def log(self, message: str) -> None:
        click.echo(message)

    def add_total(self, units: int) -> None:
        pass

    def advance(self, units: int) -> None:
        pass


@click.command("binlog:follow")
@environment_options
def follow(config_path, project, environment) -> None:
    """Archive the environment's binary log into the repository until stopped.

    Runs in the foreground (for systemd); SIGTERM or Ctrl-C commits what has come in and
    stops. Started again, it goes on exactly where it stopped. Needs point_in_time = true.
    """
    ctx, env = load_env(config_path, project, environment)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    binlogs.follow(ctx, env, _Printer(), stop=stop)


@click.command("binlog:check")
@environment_options
def check(config_path, project, environment) -> None:
    """Check that the environment's server allows point-in-time recovery."""
    _ctx, env = load_env(config_path, project, environment)
    problems = binlogs.check(env)
    if problems:
        raise ServerSetupError("\n".join(problems))
    say(f"The server of {env.name} is ready for point-in-time recovery.")


COMMANDS = [follow, check]
