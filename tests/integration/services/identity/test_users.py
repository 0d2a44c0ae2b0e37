"""Users, roles, API tokens and console sessions on a real catalog: SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from snapkeep.catalog import Catalog
from snapkeep.config import EnvironmentConfig, ProjectConfig
from snapkeep.errors import AuthenticationError, NotFoundError, PermissionDenied, UsageError
from snapkeep.policy import Action, require_role
from snapkeep.services.context import Context
from snapkeep.services.identity import auth, users
from tests.helpers.clock import ManualClock

PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
_names = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path: Path, clock: ManualClock) -> Iterator[Catalog]:
    if request.param == "sqlite":
        cat = Catalog.at(tmp_path / ".snapkeep", clock=clock)
        yield cat
        cat.engine.dispose()
        return
    name = f"snapkeep_users_{os.getpid()}_{next(_names)}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        cat = Catalog(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", clock=clock)
        try:
            yield cat
        finally:
            cat.engine.dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def ctx(catalog: Catalog, tmp_path: Path, clock: ManualClock) -> Context:
    envs = {n: EnvironmentConfig(name=n, type=t, root=tmp_path, mounts=(), database=None)
            for n, t in (("dev", "development"), ("prod", "production"))}
    config = ProjectConfig(path=tmp_path / "snapkeep.toml", id="shop", plan="starter",
                           repository=str(tmp_path / "repo"), restore_window_days=7,
                           environments=envs)
    return Context(config, clock=clock).with_catalog(catalog)


def rows(catalog: Catalog, sql: str) -> list[tuple]:
    with catalog.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


# -- users and roles ---------------------------------------------------------------------------

def test_emails_are_unique_whatever_their_case_and_stored_lowercased(ctx):
    u = users.add_user(ctx, "Ann@Example.com", display_name="Ann")
    assert u.email == "ann@example.com"
    with pytest.raises(UsageError, match="already exists"):
        users.add_user(ctx, "ANN@example.COM")
    assert rows(ctx.catalog, "SELECT email FROM users") == [("ann@example.com",)]
    assert users.get_user(ctx, "aNn@example.com").display_name == "Ann"


def test_a_password_is_stored_as_an_argon2id_hash_never_in_clear(ctx):
    users.add_user(ctx, "ann@example.com", password="correct horse battery")
    ((stored,),) = rows(ctx.catalog, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    actor = auth.authenticate_password(ctx, "ANN@example.com", "correct horse battery")
    assert actor.email == "ann@example.com"


def test_a_wrong_password_and_an_unknown_email_are_refused_alike(ctx):
    users.add_user(ctx, "ann@example.com", password="correct horse battery")
    with pytest.raises(AuthenticationError) as wrong:
        auth.authenticate_password(ctx, "ann@example.com", "wrong horse battery")
    with pytest.raises(AuthenticationError) as unknown:
        auth.authenticate_password(ctx, "nobody@example.com", "correct horse battery")
    assert str(wrong.value) == str(unknown.value)
    assert "wrong email or password" in str(wrong.value)


def test_a_user_without_a_password_cannot_sign_in_with_one(ctx):
    users.add_user(ctx, "bot@example.com")
    assert users.get_user(ctx, "bot@example.com").has_password is False
    with pytest.raises(AuthenticationError, match="wrong email or password"):
        auth.authenticate_password(ctx, "bot@example.com", "")


def test_changing_a_password_makes_the_old_one_fail(ctx):
    users.add_user(ctx, "ann@example.com", password="first password")
    users.set_password(ctx, "ann@example.com", "second password")
    auth.authenticate_password(ctx, "ann@example.com", "second password")
    with pytest.raises(AuthenticationError):
        auth.authenticate_password(ctx, "ann@example.com", "first password")


def test_environment_roles_are_set_changed_and_removed_with_none(ctx):
    users.add_user(ctx, "ann@example.com")
    assert users.set_environment_role(ctx, "ann@example.com", "dev", "viewer") \
        .environment_roles == {"dev": "viewer"}
    users.set_environment_role(ctx, "ann@example.com", "dev", "admin")
    users.set_environment_role(ctx, "ann@example.com", "prod", "contributor")
    assert users.get_user(ctx, "ann@example.com").environment_roles == \
        {"dev": "admin", "prod": "contributor"}
    assert users.set_environment_role(ctx, "ann@example.com", "dev", "none") \
        .environment_roles == {"prod": "contributor"}


def test_the_actor_of_a_user_carries_their_roles_and_is_named_by_display_name(ctx):
    users.add_user(ctx, "ann@example.com", display_name="Ann Admin", project_role="viewer")
    users.set_environment_role(ctx, "ann@example.com", "dev", "admin")
    actor = auth.actor_for_user(ctx, ctx.catalog.get_user("ann@example.com"))
    assert (actor.name, actor.email, actor.project_role) == \
        ("Ann Admin", "ann@example.com", "viewer")
    require_role(actor, "dev", Action.SNAPSHOT_RESTORE)
    require_role(actor, "prod", Action.SNAPSHOT_READ)
    with pytest.raises(PermissionDenied):
        require_role(actor, "prod", Action.SNAPSHOT_RESTORE)


def test_a_role_on_an_environment_not_in_the_config_is_refused_and_changes_nothing(ctx):
    users.add_user(ctx, "ann@example.com")
    with pytest.raises(NotFoundError, match="unknown environment 'staging'.*dev, prod"):
        users.set_environment_role(ctx, "ann@example.com", "staging", "admin")
    assert rows(ctx.catalog, "SELECT * FROM environment_roles") == []


def test_roles_for_an_unknown_user_are_refused_with_how_to_add_them(ctx):
    with pytest.raises(NotFoundError, match="user:add ghost@example.com"):
        users.set_environment_role(ctx, "ghost@example.com", "dev", "admin")


def test_listing_users_shows_each_with_their_roles(ctx):
    users.add_user(ctx, "zed@example.com", project_role="admin")
    users.add_user(ctx, "ann@example.com")
    users.set_environment_role(ctx, "ann@example.com", "prod", "viewer")
    listed = [(u.email, u.project_role, u.environment_roles) for u in users.list_users(ctx)]
    assert listed == [("ann@example.com", None, {"prod": "viewer"}),
                      ("zed@example.com", "admin", {})]


def test_someone_not_project_admin_cannot_manage_users_and_changes_nothing(ctx):
    users.add_user(ctx, "ann@example.com", project_role="viewer")
    users.set_environment_role(ctx, "ann@example.com", "dev", "admin")
    ann = ctx.for_actor(auth.actor_for_user(ctx, ctx.catalog.get_user("ann@example.com")))
    with pytest.raises(PermissionDenied, match="not a project admin"):
        users.add_user(ann, "eve@example.com", project_role="admin")
    with pytest.raises(PermissionDenied):
        users.set_environment_role(ann, "ann@example.com", "prod", "admin")
    with pytest.raises(PermissionDenied):
        users.set_project_role(ann, "ann@example.com", "admin")
    with pytest.raises(PermissionDenied):
        users.list_users(ann)
    assert [u.email for u in users.list_users(ctx)] == ["ann@example.com"]
    assert users.get_user(ann, "ann@example.com").environment_roles == {"dev": "admin"}
    assert users.get_user(ctx, "ann@example.com").project_role == "viewer"


def test_people_may_change_their_own_password_but_not_someone_elses(ctx):
    users.add_user(ctx, "ann@example.com", password="ann password")
    users.add_user(ctx, "bob@example.com", password="bob password")
    ann = ctx.for_actor(auth.authenticate_password(ctx, "ann@example.com", "ann password"))
    users.set_password(ann, "ann@example.com", "new ann password")
    with pytest.raises(PermissionDenied):
        users.set_password(ann, "bob@example.com", "taken over")
    auth.authenticate_password(ctx, "bob@example.com", "bob password")


# -- API tokens --------------------------------------------------------------------------------

def test_a_token_is_shown_once_and_only_its_sha256_is_stored(ctx):
    users.add_user(ctx, "ann@example.com")
    token_id, secret = auth.create_token(ctx, "ann@example.com", "ci")
    assert secret.startswith("sk_") and len(secret) >= 40
    stored = rows(ctx.catalog, "SELECT id, name, token_hash FROM api_tokens")
    assert stored == [(token_id, "ci", hashlib.sha256(secret.encode()).hexdigest())]
    assert not any(secret in str(v) for r in rows(ctx.catalog, "SELECT * FROM api_tokens")
                   for v in r)


def test_a_token_authenticates_as_its_user_and_records_its_use(ctx):
    users.add_user(ctx, "ann@example.com", display_name="Ann")
    users.set_environment_role(ctx, "ann@example.com", "dev", "contributor")
    token_id, secret = auth.create_token(ctx, "ann@example.com")
    assert ctx.catalog.get_token(token_id).last_used_at is None
    actor = auth.actor_for_token(ctx, secret)
    assert (actor.name, actor.email, actor.environment_roles) == \
        ("Ann", "ann@example.com", {"dev": "contributor"})
    used = ctx.catalog.get_token(token_id).last_used_at
    assert used is not None and used.tzinfo is not None


def test_a_revoked_token_is_refused_saying_so(ctx):
    users.add_user(ctx, "ann@example.com")
    token_id, secret = auth.create_token(ctx, "ann@example.com", "laptop")
    info = auth.revoke_token(ctx, token_id)
    assert info.revoked_at is not None and not info.active
    with pytest.raises(AuthenticationError, match=f"{token_id} .*revoked.*auth:token:create"):
        auth.actor_for_token(ctx, secret)
    again = auth.revoke_token(ctx, token_id)  # idempotent: the first time is kept
    assert again.revoked_at == info.revoked_at


def test_a_token_can_be_revoked_by_its_secret_too(ctx):
    users.add_user(ctx, "ann@example.com")
    token_id, secret = auth.create_token(ctx, "ann@example.com")
    assert auth.revoke_token(ctx, secret).id == token_id
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.actor_for_token(ctx, secret)


@pytest.mark.parametrize(("secret", "message"), [
    (None, "no API token given"), ("", "no API token given"),
    ("sk_not-a-real-token", "not valid here"),
])
def test_missing_and_unknown_tokens_are_refused_with_what_to_do(ctx, secret, message):
    users.add_user(ctx, "ann@example.com")
    auth.create_token(ctx, "ann@example.com")
    with pytest.raises(AuthenticationError, match=message) as e:
        auth.actor_for_token(ctx, secret)
    assert "auth:token:create" in str(e.value)


def test_revoking_an_unknown_token_is_not_found(ctx):
    with pytest.raises(NotFoundError, match="auth:token:list"):
        auth.revoke_token(ctx, "nosuchtoken")


def test_people_manage_their_own_tokens_and_only_admins_manage_others(ctx):
    users.add_user(ctx, "ann@example.com")
    users.add_user(ctx, "bob@example.com")
    bob_token, _ = auth.create_token(ctx, "bob@example.com", "bob's")
    ann = ctx.for_actor(auth.actor_for_user(ctx, ctx.catalog.get_user("ann@example.com")))
    own_id, own_secret = auth.create_token(ann, "ann@example.com", "mine")
    assert [t.id for t in auth.list_tokens(ann)] == [own_id]
    with pytest.raises(PermissionDenied):
        auth.create_token(ann, "bob@example.com")
    with pytest.raises(PermissionDenied):
        auth.list_tokens(ann, "bob@example.com")
    with pytest.raises(PermissionDenied):
        auth.revoke_token(ann, bob_token)
    assert ctx.catalog.get_token(bob_token).revoked_at is None
    auth.revoke_token(ann, own_id)
    assert {t.id: t.active for t in auth.list_tokens(ctx)} == {bob_token: True, own_id: False}


def test_removing_a_user_ends_their_tokens_and_sessions(ctx):
    users.add_user(ctx, "ann@example.com", password="ann password")
    users.set_environment_role(ctx, "ann@example.com", "dev", "admin")
    _, secret = auth.create_token(ctx, "ann@example.com")
    cookie, _ = auth.create_web_session(ctx, "ann@example.com")
    users.delete_user(ctx, "ann@example.com")
    with pytest.raises(AuthenticationError, match="not valid"):
        auth.actor_for_token(ctx, secret)
    with pytest.raises(AuthenticationError):
        auth.session_actor(ctx, cookie)
    for table in ("users", "environment_roles", "api_tokens", "web_sessions"):
        assert rows(ctx.catalog, f"SELECT * FROM {table}") == [], table


# -- console sessions --------------------------------------------------------------------------

def test_a_session_cookie_gives_the_actor_and_its_csrf_token_and_only_its_hash_is_kept(ctx):
    users.add_user(ctx, "ann@example.com", project_role="admin")
    cookie, csrf = auth.create_web_session(ctx, "ann@example.com")
    assert cookie != csrf
    actor, expected_csrf = auth.session_actor(ctx, cookie)
    assert (actor.email, actor.project_role, expected_csrf) == ("ann@example.com", "admin", csrf)
    ((id_hash,),) = rows(ctx.catalog, "SELECT id_hash FROM web_sessions")
    assert id_hash == hashlib.sha256(cookie.encode()).hexdigest()
    auth.check_csrf(expected_csrf, csrf)


def test_signing_out_ends_the_session(ctx):
    users.add_user(ctx, "ann@example.com")
    cookie, _ = auth.create_web_session(ctx, "ann@example.com")
    auth.end_web_session(ctx, cookie)
    auth.end_web_session(ctx, cookie)  # idempotent
    with pytest.raises(AuthenticationError, match="sign in again"):
        auth.session_actor(ctx, cookie)


def test_an_expired_session_is_refused_and_removed(ctx, clock):
    users.add_user(ctx, "ann@example.com")
    cookie, _ = auth.create_web_session(ctx, "ann@example.com", ttl=timedelta(hours=1))
    assert auth.session_actor(ctx, cookie)[0].email == "ann@example.com"
    clock.advance(timedelta(hours=1))
    with pytest.raises(AuthenticationError, match="expired"):
        auth.session_actor(ctx, cookie)
    assert rows(ctx.catalog, "SELECT * FROM web_sessions") == []


def test_expired_sessions_are_swept_and_live_ones_kept(ctx):
    users.add_user(ctx, "ann@example.com")
    live, _ = auth.create_web_session(ctx, "ann@example.com")
    user = ctx.catalog.get_user("ann@example.com")
    past = ctx.clock() - timedelta(hours=1)
    ctx.catalog.add_web_session("0" * 64, user.id, "c", past)
    ctx.catalog.add_web_session("1" * 64, user.id, "c", past)
    assert ctx.catalog.delete_expired_sessions() == 2
    assert auth.session_actor(ctx, live)[0].email == "ann@example.com"


def test_session_rows_come_back_with_utc_times(ctx):
    users.add_user(ctx, "ann@example.com")
    user = ctx.catalog.get_user("ann@example.com")
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    ctx.catalog.add_web_session("2" * 64, user.id, "c", at)
    row = ctx.catalog.get_web_session("2" * 64)
    assert row.expires_at == at and row.created_at.tzinfo is not None
    assert user.created_at.tzinfo is not None
