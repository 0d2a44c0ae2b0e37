"""snapkeep init."""

from __future__ import annotations

from pathlib import Path

import click

from snapkeep.cli.options import new_passphrase
from snapkeep.cli.render import say
from snapkeep.config import ENV_TYPES, PLANS, load_config
from snapkeep.services import gitinfo
from snapkeep.services.project import ignore_in_git, init_project, url_has_password


@click.command("init")
@click.option("--project-id", default=None, help="Project ID (default: the directory name).")
@click.option("--plan", type=click.Choice(PLANS), default="starter", show_default=True)
@click.option("--environment", "-e", "env_name", default=None,
              help="First environment's name (default: the checked-out git branch, or master).")
@click.option("--type", "env_type", type=click.Choice(ENV_TYPES), default="development",
              show_default=True)
@click.option("--root", default=".", show_default=True, help="The app root.")
@click.option("--database", default=None, metavar="URL",
              help="mysql://user@host:3306/db (password via SNAPKEEP_DB_PASSWORD).")
@click.option("--passphrase", "use_passphrase", is_flag=True,
              help="Protect the master key with a passphrase (SNAPKEEP_PASSPHRASE, or asked) "
                   "instead of the key file .snapkeep/repository.key.")
@click.option("--mount", "mounts", multiple=True,
              help="A mount, relative to the root (repeatable; default: from "
                   ".magento.app.yaml, else var, pub/media, app/etc).")
def init(project_id, plan, env_name, env_type, root, database, use_passphrase, mounts) -> None:
    """Write snapkeep.toml here and create the snapshot repository.

    --database is checked (parsed and connected to) before anything is written. An
    existing snapkeep.toml is never changed: a --project-id, --plan, --type, --root,
    --mount or --database that differs from it is refused, naming it; edit the file instead.
    """
    here = Path.cwd()
    ctx = click.get_current_context()
    given = {"--project-id": ("project_id", project_id), "--plan": ("plan", plan),
             "--type": ("env_type", env_type), "--root": ("root", root),
             "--mount": ("mounts", list(mounts)), "--database": ("database", database)}
    changes = {opt: value for opt, (param, value) in given.items()
               if ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE}
    path, written = init_project(
        here, project_id=project_id or here.name, plan=plan,
        env_name=env_name or gitinfo.current_branch(here) or "master", env_type=env_type,
        root=root, database=database, mounts=list(mounts) or None, passphrase=use_passphrase,
        ask_passphrase=new_passphrase, changes=changes)
    say(f"{'Wrote' if written else 'Kept the existing'} {path}; repository ready "
        "(encrypted).")
    if url_has_password(database):
        say("Warning: the database password is stored in snapkeep.toml (written 0600); "
            "better leave it out of the URL and set SNAPKEEP_DB_PASSWORD instead.")
    ignore = ignore_in_git(here, url_has_password(database))
    if ignore is not None:
        say(f"Added snapkeep's secrets and backups to {ignore}.")
    repository = load_config(str(path)).repository
    if not repository.startswith("s3://"):
        say(f"The repository is in {repository}, on this machine's own disk: a backup lost "
            "with the shop's disk is no backup. Point `repository` in snapkeep.toml to "
            "s3://bucket/prefix to keep it elsewhere.")
    if not use_passphrase and written:
        say("Keep a copy of the master key somewhere safe: `snapkeep key:export` prints it. "
            "Without it the snapshots cannot be read.")


COMMANDS = [init]
