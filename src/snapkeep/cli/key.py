"""key:status, key:export, key:passphrase."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from snapkeep.cli.options import load, project_options
from snapkeep.cli.render import say, table
from snapkeep.errors import UsageError
from snapkeep.services import keys


@click.command("key:status")
@project_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def status(config_path, project, fmt) -> None:
    """How the repository is encrypted and how its master key is protected."""
    ctx = load(config_path, project)
    data = keys.status(ctx)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    rows = [[k, ", ".join(f"{s['kind']} {s['id']}" for s in v) if k == "slots" else str(v)]
            for k, v in data.items()]
    click.echo(table(["Property", "Value"], rows, "table"))


@click.command("key:export")
@project_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a key file (mode 0600) instead of printing the key.")
def export(config_path, project, output) -> None:
    """Print the master key (or write a key file) for safekeeping."""
    ctx = load(config_path, project)
    if output:
        path = keys.write_key_file(ctx, output)
        say(f"Wrote the master key to {path} (mode 0600). Store it away from the repository.")
        return
    say("This is the repository's master key: anyone holding it can read every snapshot.")
    click.echo(keys.export(ctx))


@click.command("key:passphrase")
@project_options
def passphrase(config_path, project) -> None:
    """Add a passphrase to the master key, or change it (asks, or SNAPKEEP_NEW_PASSPHRASE)."""
    ctx = load(config_path, project)
    new = os.environ.get("SNAPKEEP_NEW_PASSPHRASE") or _ask_new()
    if not new:
        raise UsageError("no new passphrase: set SNAPKEEP_NEW_PASSPHRASE or run on a terminal")
    old = os.environ.get("SNAPKEEP_PASSPHRASE")
    if old is None and sys.stdin.isatty() and _has_passphrase(ctx):
        old = click.prompt("Current passphrase", hide_input=True, err=True)
    slot = keys.set_passphrase(ctx, old, new)
    say(f"The master key is now protected by the new passphrase (key slot {slot}).")


def _ask_new() -> str:
    if not sys.stdin.isatty():
        return ""
    return click.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)


def _has_passphrase(ctx) -> bool:
    return any(s.get("kind") == "passphrase" for s in keys.status(ctx).get("slots", []))


COMMANDS = [status, export, passphrase]
