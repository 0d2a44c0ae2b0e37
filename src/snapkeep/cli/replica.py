"""replica:init, snapshot:copy: off-site copies in repositories of their own (offsite.md)."""

from __future__ import annotations

import click

from snapkeep.cli.options import environment_options, load, project_options
from snapkeep.cli.render import say
from snapkeep.cli.snapshot import detached, follow
from snapkeep.errors import UsageError
from snapkeep.services import environments, replicas
from snapkeep.services.activities import operations


@click.command("replica:init")
@project_options
@click.argument("name")
def init(config_path, project, name) -> None:
    """Create replica NAME's repository with a master key of its own."""
    ctx = load(config_path, project)
    info = replicas.init_replica(ctx, name)
    state = "Created" if info.created else "Found"
    say(f"{state} replica {info.name} at {info.location}")
    if info.key != "passphrase":
        say(f"Its own master key is in {info.key}: keep a copy of it away from this host "
            "(without it the replica cannot be read).")
    else:
        say("Its own master key is protected by the passphrase in SNAPKEEP_REPLICA_PASSPHRASE.")


@click.command("snapshot:copy")
@environment_options
@click.argument("snapshot_ids", nargs=-1)
@click.option("--to", "replica", required=True, metavar="NAME",
              help="The replica ([replicas.NAME] in snapkeep.toml).")
@click.option("--all", "all_", is_flag=True,
              help="Copy every snapshot of the environment the replica does not hold.")
@click.option("-W", "--no-wait", is_flag=True, help="Start the activity and return its ID.")
def copy(config_path, project, environment, snapshot_ids, replica, all_, no_wait) -> None:
    """Copy snapshots to a replica, re-encrypted under its key (verified before listed)."""
    if bool(snapshot_ids) == all_:
        raise UsageError("give snapshot IDs or --all (every snapshot the replica lacks), "
                         "not both or neither")
    ctx = load(config_path, project)
    env = environments.resolve(ctx, environment)
    ids = None if all_ else list(snapshot_ids)
    if no_wait:
        a = operations.start_copy(ctx, env, replica, ids, detach=True)
        if a is None:
            say(f"Replica {replica} holds every snapshot of {env.name} already.")
            return
        return detached(a)
    say(f"Copying snapshots of {env.name} to replica {replica}")
    done = follow(lambda d: operations.start_copy(ctx, env, replica, ids, observer=d))
    if done is None:
        say(f"Replica {replica} holds every snapshot of {env.name} already.")


COMMANDS = [init, copy]
