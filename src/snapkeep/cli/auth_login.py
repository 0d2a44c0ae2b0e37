"""auth:login, auth:logout: remember (or forget) a snapkeep server and an API token.

Once logged in, the snapshot:* and activity:* commands talk to that server, as with
SNAPKEEP_URL and SNAPKEEP_TOKEN (which win when set). The token is kept in
``credentials_path()`` with mode 0600 and is never printed.
"""

from __future__ import annotations

import sys

import click

from snapkeep.cli.credentials import (
    Credentials,
    credentials_path,
    forget_credentials,
    normalize_url,
    store_credentials,
)
from snapkeep.cli.remote_client import RemoteClient
from snapkeep.cli.render import say
from snapkeep.errors import UsageError


def _read_token(token_stdin: bool) -> str:
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise UsageError("--token-stdin: stdin had no token; pipe it in, e.g. "
                             "`snapkeep auth:login --url URL --token-stdin < token.txt`")
        return token
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the API token on: pass it on stdin with "
                         "--token-stdin")
    return click.prompt("API token", hide_input=True, err=True).strip()


@click.command("auth:login")
@click.option("--url", required=True, metavar="URL", envvar="SNAPKEEP_URL",
              help="The server, e.g. https://snapkeep.example.com")
@click.option("--token-stdin", is_flag=True, help="Read the API token from stdin "
              "(otherwise it is asked for, hidden).")
def login(url, token_stdin) -> None:
    """Log in to a snapkeep server with an API token (from `auth:token:create`)."""
    server = normalize_url(url)
    token = _read_token(token_stdin)
    info = RemoteClient(server, token).info()  # refuses a wrong token before storing it
    path = store_credentials(Credentials(server, token))
    actor = info.get("actor") or {}
    who = actor.get("email") or actor.get("name") or "?"
    say(f"Logged in to {server} as {who} (project {info.get('project')}). The snapshot and "
        f"activity commands now talk to this server; the token is kept in {path} (readable "
        "by you only). `snapkeep auth:logout` forgets it.")


@click.command("auth:logout")
def logout() -> None:
    """Forget the stored server and token: commands work locally again."""
    gone = forget_credentials()
    if gone is None:
        say(f"Not logged in (no {credentials_path()}).")
        return
    say(f"Logged out{f' of {gone.url}' if gone.url else ''}; the token was removed from "
        "this machine (it still works until revoked: `snapkeep auth:token:revoke`).")


COMMANDS = [login, logout]
