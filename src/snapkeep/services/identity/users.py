"""Users and their roles: who belongs to the project and what they may do where.

Managing users needs the project Admin role (the operator at a local shell has it);
people may change their own password. Passwords are hashed with argon2id and never
logged, echoed or returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapkeep.catalog import User
from snapkeep.errors import NotFoundError, UsageError
from snapkeep.policy.rules import check_environment_role, check_project_role, require_project_admin
from snapkeep.services.context import Context
from snapkeep.services.identity.auth import hash_password, require_admin_wherever

# A shape check, not RFC 5322: one @, something on both sides, no spaces.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.][^@\s]*")
MAX_EMAIL = 320
MAX_NAME = 200


@dataclass(frozen=True)
class UserInfo:
    email: str
    display_name: str
    project_role: str | None
    environment_roles: dict[str, str] = field(default_factory=dict)
    has_password: bool = False
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.display_name or self.email

    def to_json(self) -> dict[str, Any]:
        return {"email": self.email, "display_name": self.display_name,
                "project_role": self.project_role,
                "environment_roles": dict(self.environment_roles),
                "has_password": self.has_password,
                "created_at": self.created_at.isoformat(timespec="seconds")
                if self.created_at else None}


def normalize_email(email: str) -> str:
    """The email lowercased and trimmed, or UsageError if it does not look like one."""
    value = (email or "").strip().lower()
    if len(value) > MAX_EMAIL or not _EMAIL.fullmatch(value):
        raise UsageError(f"{email!r} is not an email address; write it as name@example.com")
    return value


def _info(user: User, roles: dict[str, str]) -> UserInfo:
    return UserInfo(email=user.email, display_name=user.display_name,
                    project_role=user.project_role, environment_roles=roles,
                    has_password=user.password_hash is not None, created_at=user.created_at)


def _existing(ctx: Context, email: str) -> User:
    user = ctx.catalog.get_user(normalize_email(email))
    if user is None:
        raise NotFoundError(f"no user {email!r}; add one with `snapkeep user:add {email}` "
                            "or see `snapkeep user:list`")
    return user


def add_user(ctx: Context, email: str, display_name: str | None = None,
             password: str | None = None, project_role: str | None = None) -> UserInfo:
    """Add a user. Without a password they can use only API tokens."""
    require_project_admin(ctx.actor, "add users")
    address = normalize_email(email)
    role = check_project_role(project_role)
    name = (display_name or "").strip()
    if len(name) > MAX_NAME:
        raise UsageError(f"the display name is too long ({len(name)} characters); "
                         f"keep it under {MAX_NAME}")
    password_hash = hash_password(password) if password is not None else None
    user = ctx.catalog.add_user(address, name, password_hash=password_hash, project_role=role)
    if user is None:
        raise UsageError(f"a user {address} already exists; change their roles with "
                         f"`snapkeep user:role {address} ENV ROLE`")
    return _info(user, {})


def get_user(ctx: Context, email: str) -> UserInfo:
    """One user with their roles (project admins, or the user themselves)."""
    if ctx.actor.email != (email or "").strip().lower():
        require_project_admin(ctx.actor, "see other users")
    user = _existing(ctx, email)
    return _info(user, ctx.catalog.environment_roles(user.id))


def list_users(ctx: Context) -> list[UserInfo]:
    """Every user with their project and environment roles, by email."""
    require_project_admin(ctx.actor, "list users")
    roles = ctx.catalog.all_environment_roles()
    return [_info(u, roles.get(u.id, {})) for u in ctx.catalog.list_users()]


def set_project_role(ctx: Context, email: str, role: str | None) -> UserInfo:
    """Make the user a project admin or viewer; ``none``/None removes the project role."""
    require_project_admin(ctx.actor, "change project roles")
    value = check_project_role(role)
    user = _existing(ctx, email)
    ctx.catalog.set_project_role(user.email, value)
    return get_user(ctx, user.email)


def set_environment_role(ctx: Context, email: str, environment: str,
                         role: str | None) -> UserInfo:
    """Give the user ``role`` (admin | contributor | viewer) on an environment defined in
    snapkeep.toml; ``none`` removes it."""
    require_project_admin(ctx.actor, "change environment roles")
    value = check_environment_role(role)
    if environment not in ctx.config.environments:
        known = ", ".join(sorted(ctx.config.environments)) or "none"
        raise NotFoundError(f"unknown environment {environment!r} in project "
                            f"{ctx.config.id!r} (known: {known}); roles are given on "
                            "environments defined in snapkeep.toml")
    user = _existing(ctx, email)
    ctx.catalog.set_environment_role(user.id, environment, value)
    return get_user(ctx, user.email)


def set_password(ctx: Context, email: str, password: str | None) -> None:
    """Set the user's password (None: remove it, leaving API tokens only). Project admins
    set anyone's; people set their own."""
    if ctx.actor.email is None or ctx.actor.email != (email or "").strip().lower():
        require_project_admin(ctx.actor, "set other users' passwords")
        require_admin_wherever(ctx, _existing(ctx, email), "set their password")
    user = _existing(ctx, email)
    ctx.catalog.set_password_hash(user.email,
                                  hash_password(password) if password is not None else None)


def delete_user(ctx: Context, email: str) -> None:
    """Remove a user with their roles, API tokens and console sessions."""
    require_project_admin(ctx.actor, "remove users")
    user = _existing(ctx, email)
    require_admin_wherever(ctx, user, "remove them")
    ctx.catalog.delete_user(user.email)
