"""Options shared by the commands, and loading the context they imply."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from snapkeep.config import EnvironmentConfig
from snapkeep.services import environments
from snapkeep.services.context import Context


def project_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--config", "config_path", envvar="SNAPKEEP_CONFIG", metavar="PATH",
                     help="snapkeep.toml to use (default: found from the working directory).")(f)
    f = click.option("-p", "--project", metavar="ID",
                     help="The project ID; checked against snapkeep.toml.")(f)
    return f


TABLE_FORMATS = click.Choice(["table", "csv", "tsv", "json"])


def format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--format``: a listing as a table, csv, tsv or json."""
    return click.option("--format", "fmt", type=TABLE_FORMATS, default="table",
                        show_default=True)(f)


def table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``project_options``, then ``--format``."""
    return project_options(format_option(f))


def environment_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-e", "--environment", metavar="NAME",
                     help="The environment (default: the checked-out git branch).")(f)
    return project_options(f)


def ask_passphrase() -> str:
    if not sys.stdin.isatty():
        return ""
    return click.prompt("Repository passphrase", hide_input=True, err=True)


def new_passphrase() -> str:
    """A new passphrase: SNAPKEEP_PASSPHRASE, else asked twice on a terminal."""
    if os.environ.get("SNAPKEEP_PASSPHRASE"):
        return os.environ["SNAPKEEP_PASSPHRASE"]
    if not sys.stdin.isatty():
        return ""
    return click.prompt("New repository passphrase", hide_input=True,
                        confirmation_prompt=True, err=True)


def load(config_path: str | None, project: str | None) -> Context:
    ctx = Context.load(config_path, project)
    ctx.ask_passphrase = ask_passphrase
    return ctx


def load_env(config_path: str | None, project: str | None,
             environment: str | None) -> tuple[Context, EnvironmentConfig]:
    ctx = load(config_path, project)
    return ctx, environments.resolve(ctx, environment)
