"""The commands: each one's name, the module under snapkeep.cli that defines it and its
short help; and the aliases.

``snapkeep --help`` prints this table and ``snapkeep --version`` needs nothing, so neither
imports a command module (those pull in the services they call: SQLAlchemy, the repository,
FastAPI, httpx...); ``main.LazyGroup`` imports a command's module only when it runs. The short
help is the command's own docstring summary as ``--help`` shows it (cut at 70 characters);
tests/unit/cli/test_commands.py checks this table against the modules so they cannot drift.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    module: str  # snapkeep.cli.<module> defines the command (in its COMMANDS list)
    short_help: str


COMMANDS: dict[str, Entry] = {
    "activity:cancel": Entry(
        "activity", "Cancel an activity: a queued one at once, a running one at its next..."),
    "activity:get": Entry("activity", "Show one activity's properties."),
    "activity:list": Entry(
        "activity", "List recent activities, newest first (Warnings: how many each..."),
    "activity:log": Entry("activity", "Print an activity's log."),
    "auth:login": Entry("auth_login", "Log in to a snapkeep server with an API token (from..."),
    "auth:logout": Entry(
        "auth_login", "Forget the stored server and token: commands work locally again."),
    "auth:token:create": Entry(
        "auth", "Create an API token; the token is printed once, as the last line on..."),
    "auth:token:list": Entry("auth", "List API tokens (never their secrets)."),
    "auth:token:revoke": Entry(
        "auth", "Revoke an API token by its ID (see auth:token:list); it stops..."),
    "binlog:check": Entry(
        "binlog", "Check that the environment's server allows point-in-time recovery."),
    "binlog:follow": Entry(
        "binlog", "Archive the environment's binary log into the repository until..."),
    "environment:activate": Entry(
        "environment", "Mark the environment active (snapshots can be taken and restored)."),
    "environment:deactivate": Entry(
        "environment", "Mark the environment inactive (no snapshots or restores)."),
    "environment:info": Entry("environment", "Show one environment."),
    "environment:list": Entry("environment", "List the project's environments."),
    "init": Entry("project", "Write snapkeep.toml here and create the snapshot repository."),
    "key:export": Entry("key", "Print the master key (or write a key file) for safekeeping."),
    "key:passphrase": Entry("key", "Add a passphrase to the master key, or change it (asks, or..."),
    "key:status": Entry(
        "key", "How the repository is encrypted and how its master key is protected."),
    "replica:init": Entry(
        "replica", "Create replica NAME's repository with a master key of its own."),
    "repository:check": Entry(
        "repository", "Check the repository's structure (and, with --read-data, all of its..."),
    "repository:prune": Entry(
        "repository", "Delete data that no snapshot references; repack partly used packs."),
    "schedule:add": Entry(
        "schedule", "Back up ENVIRONMENT automatically on the cron schedule CRON, in UTC."),
    "schedule:delete": Entry(
        "schedule", "Delete a backup schedule (the Pro plan's own schedules cannot be..."),
    "schedule:list": Entry(
        "schedule", "List backup schedules, including the plan's automatic ones."),
    "serve": Entry(
        "serve", "Serve the REST API (and the web console), run queued activities and..."),
    "snapshot:copy": Entry(
        "replica", "Copy snapshots to a replica, re-encrypted under its key (verified..."),
    "snapshot:create": Entry(
        "snapshot", "Make a snapshot of the environment's database and mounts (never code)."),
    "snapshot:delete": Entry("snapshot", "Delete a snapshot."),
    "snapshot:expire": Entry(
        "snapshot", "Delete snapshots past their restore window or outside the retention..."),
    "snapshot:export": Entry(
        "transfer", "Write a snapshot's database (SQL) and mounts (tar) into DIRECTORY,..."),
    "snapshot:get": Entry("snapshot", "Show one snapshot's properties."),
    "snapshot:import": Entry(
        "transfer", "Make a new snapshot of the environment from an export directory, or..."),
    "snapshot:list": Entry("snapshot", "List the environment's snapshots, newest first."),
    "snapshot:restore": Entry(
        "snapshot", "Restore a snapshot (the most recent when no ID is given)."),
    "snapshot:verify": Entry(
        "snapshot", "Read and check every byte of a snapshot (the most recent without ID)."),
    "user:add": Entry("user", "Add a user to the project."),
    "user:delete": Entry(
        "user", "Remove a user with their roles, API tokens and console sessions."),
    "user:list": Entry("user", "List users with their project and environment roles."),
    "user:password": Entry("user", "Set (or remove) a user's console password."),
    "user:project-role": Entry(
        "user", "Make a user project admin or viewer (none removes the project role)."),
    "user:role": Entry("user", "Give a user a role on an environment (none removes it)."),
    "worker": Entry(
        "worker", "Run queued activities (from the API, schedules, --no-wait) until..."),
}

# alias -> the command it names (shown beside it in --help)
ALIASES: dict[str, str] = {
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
