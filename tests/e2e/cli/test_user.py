"""Users, roles and API tokens as the operator at the shell manages them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapkeep.errors import AuthenticationError
from snapkeep.services.context import Context
from snapkeep.services.identity import auth
from tests.helpers.shop import Cli, cli_env, git, one_line_error


@pytest.fixture
def project(tmp_path: Path) -> tuple[Cli, Path]:
    """A project with environments develop-branch (from git) and nothing else."""
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "develop-branch")
    cli = Cli(root, cli_env())
    cli.run("init", "--project-id", "shop", timeout=60)
    return cli, root


def context(root: Path) -> Context:
    return Context.load(str(root / "snapkeep.toml"))



def test_user_add_reads_the_password_from_stdin_and_it_signs_in(project):
    cli, root = project
    res = cli.run("user:add", "Ann@Example.com", "--name", "Ann", "--password-stdin",
                  "--role", "admin", stdin="correct horse battery\n", timeout=60)
    assert "correct horse battery" not in res.stdout + res.stderr
    assert "Added user ann@example.com (project admin)" in res.stderr
    actor = auth.authenticate_password(context(root), "ann@example.com", "correct horse battery")
    assert (actor.name, actor.project_role) == ("Ann", "admin")
    with pytest.raises(AuthenticationError):
        auth.authenticate_password(context(root), "ann@example.com", "correct horse battery\n")


def test_user_add_with_an_empty_stdin_is_refused_and_adds_nobody(project):
    cli, _root = project
    one_line_error(cli.run("user:add", "ann@example.com", "--password-stdin", stdin="",
                           check=False, timeout=60), "stdin had no password")
    assert json.loads(cli.run("user:list", "--format", "json", timeout=60).stdout) == []


def test_user_role_grants_and_removes_and_user_list_shows_the_roles(project):
    cli, _root = project
    cli.run("user:add", "ann@example.com", "--name", "Ann", timeout=60)
    cli.run("user:add", "bob@example.com", "--role", "viewer", timeout=60)
    res = cli.run("user:role", "ann@example.com", "develop-branch", "admin", timeout=60)
    assert "ann@example.com is now admin on develop-branch" in res.stderr
    table = cli.run("user:list", timeout=60).stdout
    lines = table.splitlines()
    assert "| Email" in lines[1] and "Environment roles" in lines[1]
    assert any("ann@example.com" in ln and "develop-branch=admin" in ln for ln in lines)
    assert any("bob@example.com" in ln and "viewer" in ln for ln in lines)
    cli.run("user:role", "ann@example.com", "develop-branch", "none", timeout=60)
    listed = json.loads(cli.run("user:list", "--format", "json", timeout=60).stdout)
    assert [(u["email"], u["project_role"], u["environment_roles"]) for u in listed] == \
        [("ann@example.com", None, {}), ("bob@example.com", "viewer", {})]


def test_user_role_refuses_unknown_roles_environments_and_users(project):
    cli, _root = project
    cli.run("user:add", "ann@example.com", timeout=60)
    bad_role = cli.run("user:role", "ann@example.com", "develop-branch", "owner",
                       check=False, timeout=60)
    assert bad_role.returncode == 2 and "owner" in bad_role.stderr
    one_line_error(cli.run("user:role", "ann@example.com", "staging", "admin", check=False,
                           timeout=60), "unknown environment 'staging'", "develop-branch")
    one_line_error(cli.run("user:role", "eve@example.com", "develop-branch", "admin",
                           check=False, timeout=60), "no user", "user:add")


def test_user_password_sets_a_password_from_stdin_only(project):
    cli, root = project
    cli.run("user:add", "ann@example.com", timeout=60)
    one_line_error(cli.run("user:password", "ann@example.com", check=False, timeout=60),
                   "--password-stdin")
    cli.run("user:password", "ann@example.com", "--password-stdin",
            stdin="a new password\n", timeout=60)
    auth.authenticate_password(context(root), "ann@example.com", "a new password")


def test_a_created_token_is_the_last_line_authenticates_and_is_not_stored(project):
    cli, root = project
    cli.run("user:add", "ann@example.com", "--name", "Ann", timeout=60)
    cli.run("user:role", "ann@example.com", "develop-branch", "viewer", timeout=60)
    res = cli.run("auth:token:create", "--user", "ann@example.com", "--name", "ci", timeout=60)
    secret = res.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk_")
    assert "will not be shown again" in res.stderr and secret not in res.stderr
    actor = auth.actor_for_token(context(root), secret)
    assert (actor.email, actor.environment_roles) == \
        ("ann@example.com", {"develop-branch": "viewer"})
    state = root / ".snapkeep"
    for f in state.glob("catalog.db*"):
        assert secret.encode() not in f.read_bytes(), f
    listed = cli.run("auth:token:list", "--user", "ann@example.com", timeout=60).stdout
    assert "ci" in listed and "active" in listed and secret not in listed


def test_a_revoked_token_no_longer_authenticates(project):
    cli, root = project
    cli.run("user:add", "ann@example.com", timeout=60)
    secret = cli.run("auth:token:create", "--user", "ann@example.com",
                     timeout=60).stdout.strip().splitlines()[-1]
    (token,) = json.loads(cli.run("auth:token:list", "--format", "json", timeout=60).stdout)
    res = cli.run("auth:token:revoke", token["id"], timeout=60)
    assert f"API token {token['id']}" in res.stderr and "revoked" in res.stderr
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.actor_for_token(context(root), secret)
    (after,) = json.loads(cli.run("auth:token:list", "--format", "json", timeout=60).stdout)
    assert after["active"] is False and after["revoked_at"]
    one_line_error(cli.run("auth:token:revoke", "nosuchtoken", check=False, timeout=60),
                   "no such API token", "auth:token:list")


def test_a_token_for_an_unknown_user_is_refused(project):
    cli, _root = project
    res = cli.run("auth:token:create", "--user", "ghost@example.com", check=False, timeout=60)
    one_line_error(res, "no user 'ghost@example.com'", "user:add")
    assert res.stdout == ""
