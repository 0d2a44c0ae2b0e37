"""auth:token:create, auth:token:list, auth:token:revoke (run against the local catalog)."""

from __future__ import annotations

import click

from snapkeep.cli.options import format_option, load, project_options
from snapkeep.cli.render import print_listing, say, timestamp
from snapkeep.services.identity import auth
from snapkeep.services.identity.auth import TokenInfo


def _row(t: TokenInfo) -> list[str]:
    return [t.id, t.user, t.name, timestamp(t.created_at), timestamp(t.last_used_at),
            "revoked " + timestamp(t.revoked_at) if t.revoked_at else "active"]


@click.command("auth:token:create")
@project_options
@click.option("--user", "email", required=True, metavar="EMAIL", help="Whose token it is.")
@click.option("--name", metavar="NAME", help="What it is for (e.g. ci, laptop).")
def token_create(config_path, project, email, name) -> None:
    """Create an API token; the token is printed once, as the last line on stdout."""
    ctx = load(config_path, project)
    token_id, secret = auth.create_token(ctx, email, name)
    say(f"Created API token {token_id} for {email.strip().lower()}. Copy it now: it is "
        "not stored and will not be shown again.")
    click.echo(secret)


@click.command("auth:token:list")
@project_options
@click.option("--user", "email", metavar="EMAIL", help="Only this user's tokens.")
@format_option
def token_list(config_path, project, email, fmt) -> None:
    """List API tokens (never their secrets)."""
    ctx = load(config_path, project)
    items = auth.list_tokens(ctx, email)
    print_listing(["ID", "User", "Name", "Created", "Last used", "State"],
                  [_row(t) for t in items], fmt,
                  empty="No API tokens. Create one with `snapkeep auth:token:create --user "
                        "EMAIL`.",
                  json_rows=[t.to_json() for t in items])


@click.command("auth:token:revoke")
@project_options
@click.argument("token_id")
def token_revoke(config_path, project, token_id) -> None:
    """Revoke an API token by its ID (see auth:token:list); it stops working at once."""
    t = auth.revoke_token(load(config_path, project), token_id)
    say(f"API token {t.id} ({t.name}) of {t.user} is revoked.")


COMMANDS = [token_create, token_list, token_revoke]
