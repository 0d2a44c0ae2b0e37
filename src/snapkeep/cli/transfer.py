"""snapshot:export and snapshot:import (docs/export-import.md).

Locally both run as activities with the usual progress; through a server (SNAPKEEP_URL)
``snapshot:export`` downloads the parts from the API into the directory, and
``snapshot:import`` uploads the directory to the API, which runs the import there.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from snapkeep.cli.options import environment_options
from snapkeep.cli.render import say
from snapkeep.cli.snapshot import client_for, detached, follow
from snapkeep.services.sizes import human_size
from snapkeep.services.transfer.exportdir import DATABASE_PART, read_metadata

DOWNLOAD_READ_TIMEOUT = 300.0  # seconds of silence on a part's download before giving up
DOWNLOAD_PIECE = 1 << 20


# -- commands ------------------------------------------------------------------------------------

def _show_export(dest: Path) -> None:
    meta = read_metadata(dest)
    if meta is None:
        return
    click.echo(f"Exported snapshot {meta.get('snapshot_id')} of {meta.get('environment')} "
               f"into {dest}:")
    for name, facts in meta["files"].items():
        click.echo(f"  {dest / name}  ({human_size(int(facts['size']))})")
    if DATABASE_PART in meta["files"]:
        click.echo("Load the database into an empty one with:")
        click.echo(f"  zstd -dc {shlex.quote(str(dest / DATABASE_PART))} | mariadb NEWDB")
    if meta.get("mounts"):
        click.echo("Unpack a mount (its files, modes and times) with:")
        click.echo("  mkdir -p DEST && tar --zstd -xpf "
                   f"{shlex.quote(str(dest / 'mounts'))}/MOUNT.tar.zst -C DEST")


@click.command("snapshot:export")
@environment_options
@click.argument("snapshot_id")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-W", "--no-wait", is_flag=True, help="Start the activity and return its ID.")
@click.option("--force", is_flag=True, help="Replace an export the directory already holds.")
def export_(config_path, project, environment, snapshot_id, directory, no_wait, force) -> None:
    """Write a snapshot's database (SQL) and mounts (tar) into DIRECTORY, zstd-compressed."""
    client = client_for(config_path, project)
    env = client.environment(environment)
    dest = directory.expanduser().absolute()
    say(f"Exporting snapshot {snapshot_id} of {env.name} to {dest}")
    if no_wait:
        a = client.export_snapshot(env.name, snapshot_id, dest, force=force, wait=False,
                                   observer=None)
        if a is not None:
            return detached(a)
    else:
        follow(lambda d: client.export_snapshot(env.name, snapshot_id, dest, force=force,
                                                wait=True, observer=d))
    _show_export(dest)


@click.command("snapshot:import")
@environment_options
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-W", "--no-wait", is_flag=True, help="Start the activity and return its ID.")
@click.option("--threads", "-t", type=click.IntRange(1, 64), default=None,
              help="Database connections snapshotting the loaded dump (default: the CPU "
                   "count).")
def import_(config_path, project, environment, directory, no_wait, threads) -> None:
    """Make a new snapshot of the environment from an export directory, or from a
    directory holding one mysqldump/mariadb-dump file (.sql, .sql.gz, .sql.zst) and a
    directory (or mounts/MOUNT.tar.zst) per mount. The live data is not touched."""
    client = client_for(config_path, project)
    env = client.environment(environment)
    source = directory.expanduser().absolute()
    say(f"Importing a snapshot of {env.name} from {source}")
    if no_wait:
        return detached(client.import_snapshot(env.name, source, threads=threads,
                                               wait=False, observer=None))
    a = follow(lambda d: client.import_snapshot(env.name, source, threads=threads,
                                                wait=True, observer=d))
    click.echo(f"Snapshot name: {a.snapshot_id}")


COMMANDS = [export_, import_]
