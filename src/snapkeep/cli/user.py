"""user:add, user:list, user:role, user:project-role, user:password, user:delete."""

from __future__ import annotations

import sys

import click

from snapkeep.cli.options import load, project_options, table_options
from snapkeep.cli.render import print_listing, say
from snapkeep.errors import UsageError
from snapkeep.policy.rules import ENVIRONMENT_ROLES, PROJECT_ROLES
from snapkeep.services.identity import users
from snapkeep.services.identity.users import UserInfo

ROLE_CHOICES = click.Choice([*ENVIRONMENT_ROLES, "none"], case_sensitive=False)
PROJECT_ROLE_CHOICES = click.Choice([*PROJECT_ROLES, "none"], case_sensitive=False)


def read_password() -> str:
    """The password from stdin: its first line (asked for, hidden, on a terminal)."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("--password-stdin was given but stdin had no password; pipe it in, "
                         "e.g. `printf '%s\\n' \"$PASSWORD\" | snapkeep user:password EMAIL "
                         "--password-stdin`")
    return password


def _roles(u: UserInfo) -> str:
    return ", ".join(f"{env}={role}" for env, role in sorted(u.environment_roles.items()))


@click.command("user:add")
@project_options
@click.argument("email")
@click.option("--name", "display_name", metavar="NAME", help="Display name.")
@click.option("--password-stdin", is_flag=True,
              help="Read a console password from stdin (without it: API tokens only).")
@click.option("--role", type=PROJECT_ROLE_CHOICES, default="none", show_default=True,
              help="Project role: admin (everything everywhere) or viewer (read everywhere).")
def add(config_path, project, email, display_name, password_stdin, role) -> None:
    """Add a user to the project."""
    ctx = load(config_path, project)
    password = read_password() if password_stdin else None
    u = users.add_user(ctx, email, display_name=display_name, password=password,
                       project_role=role)
    say(f"Added user {u.email}" + (f" (project {u.project_role})" if u.project_role else "")
        + ("." if u.has_password else "; no password: they sign in with API tokens only."))
    if not u.project_role:
        say(f"Give them a role with `snapkeep user:role {u.email} ENV ROLE`.")


@click.command("user:list")
@table_options
def list_(config_path, project, fmt) -> None:
    """List users with their project and environment roles."""
    ctx = load(config_path, project)
    items = users.list_users(ctx)
    rows = [[u.email, u.display_name, u.project_role or "", _roles(u)] for u in items]
    print_listing(["Email", "Name", "Project role", "Environment roles"], rows, fmt,
                  json_rows=[u.to_json() for u in items],
                  empty="No users yet. Add one with `snapkeep user:add EMAIL`.")


@click.command("user:role")
@project_options
@click.argument("email")
@click.argument("environment")
@click.argument("role", type=ROLE_CHOICES)
def role(config_path, project, email, environment, role) -> None:
    """Give a user a role on an environment (none removes it)."""
    ctx = load(config_path, project)
    u = users.set_environment_role(ctx, email, environment, role)
    now = u.environment_roles.get(environment)
    say(f"{u.email} is now {now} on {environment}." if now else
        f"{u.email} has no role on {environment} now.")


@click.command("user:project-role")
@project_options
@click.argument("email")
@click.argument("role", type=PROJECT_ROLE_CHOICES)
def project_role(config_path, project, email, role) -> None:
    """Make a user project admin or viewer (none removes the project role)."""
    ctx = load(config_path, project)
    u = users.set_project_role(ctx, email, role)
    say(f"{u.email} is now project {u.project_role}." if u.project_role else
        f"{u.email} has no project role now.")


@click.command("user:password")
@project_options
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@click.option("--remove", is_flag=True, help="Remove the password (API tokens only).")
def password(config_path, project, email, password_stdin, remove) -> None:
    """Set (or remove) a user's console password."""
    if password_stdin == remove:
        raise UsageError("give exactly one of --password-stdin (and pipe the password in) "
                         "or --remove; passwords are never taken as arguments")
    ctx = load(config_path, project)
    users.set_password(ctx, email, None if remove else read_password())
    say(f"Password {'removed' if remove else 'set'} for {email.strip().lower()}.")


@click.command("user:delete")
@project_options
@click.argument("email")
@click.option("-y", "--yes", is_flag=True, help="Answer yes to the confirmation.")
def delete(config_path, project, email, yes) -> None:
    """Remove a user with their roles, API tokens and console sessions."""
    ctx = load(config_path, project)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("removing a user revokes their access: confirm with --yes "
                             "(no terminal to ask on)")
        if not click.confirm(f"Remove {email} and revoke their tokens?", err=True):
            say("Nothing was removed.")
            return
    users.delete_user(ctx, email)
    say(f"Removed user {email.strip().lower()}.")


COMMANDS = [add, list_, role, project_role, password, delete]
