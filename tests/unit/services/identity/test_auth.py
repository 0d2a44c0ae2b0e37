"""Roles, role names, email shapes, secret and password hashing, CSRF: pure logic."""

from __future__ import annotations

import hashlib

import pytest

from snapkeep.errors import PermissionDenied, UsageError
from snapkeep.policy import Action, require_role
from snapkeep.policy.rules import (
    Actor,
    check_environment_role,
    check_project_role,
    local_operator,
    require_project_admin,
)
from snapkeep.services.identity.auth import (
    check_csrf,
    hash_password,
    hash_secret,
    verify_password,
)
from snapkeep.services.identity.users import normalize_email


@pytest.mark.parametrize(("given", "expected"), [
    ("admin", "admin"), ("Viewer", "viewer"), (" admin ", "admin"), ("none", None), (None, None),
])
def test_project_roles_are_admin_viewer_or_none(given, expected):
    assert check_project_role(given) == expected


@pytest.mark.parametrize("bad", ["contributor", "owner", "root", "admins"])
def test_other_project_roles_are_refused_naming_the_choices(bad):
    with pytest.raises(UsageError, match="choose admin, viewer or none"):
        check_project_role(bad)


@pytest.mark.parametrize(("given", "expected"), [
    ("admin", "admin"), ("CONTRIBUTOR", "contributor"), ("viewer", "viewer"), ("none", None),
])
def test_environment_roles_include_contributor_and_none_removes(given, expected):
    assert check_environment_role(given) == expected


def test_an_unknown_environment_role_is_refused_naming_the_choices():
    with pytest.raises(UsageError, match="admin, contributor, viewer or none"):
        check_environment_role("superuser")


def test_an_environment_admin_may_snapshot_there_but_only_read_elsewhere_as_project_viewer():
    actor = Actor("ann", project_role="viewer", environment_roles={"dev": "admin"},
                  email="ann@example.com")
    require_role(actor, "dev", Action.SNAPSHOT_CREATE)
    require_role(actor, "prod", Action.SNAPSHOT_READ)
    with pytest.raises(PermissionDenied, match="Admin role"):
        require_role(actor, "prod", Action.SNAPSHOT_CREATE)


def test_a_contributor_may_read_but_not_restore():
    actor = Actor("cy", environment_roles={"dev": "contributor"})
    require_role(actor, "dev", Action.ACTIVITY_READ)
    with pytest.raises(PermissionDenied, match="contributor role"):
        require_role(actor, "dev", Action.SNAPSHOT_RESTORE)


def test_a_user_without_roles_may_not_even_list():
    with pytest.raises(PermissionDenied, match="no role"):
        require_role(Actor("nobody"), "dev", Action.SNAPSHOT_READ)


def test_only_project_admins_manage_users():
    require_project_admin(local_operator(), "add users")
    with pytest.raises(PermissionDenied, match="project Admin role to add users"):
        require_project_admin(Actor("v", project_role="viewer",
                                    environment_roles={"dev": "admin"}), "add users")


@pytest.mark.parametrize(("given", "expected"), [
    ("Alice@Example.COM", "alice@example.com"), ("  bob@localhost ", "bob@localhost"),
])
def test_emails_are_trimmed_and_lowercased(given, expected):
    assert normalize_email(given) == expected


@pytest.mark.parametrize("bad", ["", "alice", "alice@", "@example.com", "a b@example.com",
                                 "a@@example.com", "a@.example.com", "x" * 320 + "@e.com"])
def test_strings_that_are_not_emails_are_refused(bad):
    with pytest.raises(UsageError, match="not an email address"):
        normalize_email(bad)


def test_a_secret_is_kept_as_its_sha256():
    assert hash_secret("sk_abc") == hashlib.sha256(b"sk_abc").hexdigest()
    assert hash_secret("sk_abc") != hash_secret("sk_abd")


def test_passwords_are_hashed_with_argon2id_and_a_fresh_salt():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a.startswith("$argon2id$") and "correct horse" not in a
    assert a != b
    assert verify_password(a, "correct horse")
    assert not verify_password(a, "correct horsE")


def test_a_missing_or_garbled_hash_never_verifies():
    assert not verify_password(None, "anything at all")
    assert not verify_password("not-a-hash", "anything at all")


def test_short_passwords_are_refused_before_hashing():
    with pytest.raises(UsageError, match="at least 8 characters"):
        hash_password("short")


@pytest.mark.parametrize("given", [None, "", "other", "abc"])
def test_a_form_with_a_wrong_or_missing_csrf_token_is_refused(given):
    check_csrf("abc123", "abc123")
    with pytest.raises(PermissionDenied, match="reload the page"):
        check_csrf("abc123", given)
