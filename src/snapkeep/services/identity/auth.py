"""Who is asking: API tokens, passwords and console sessions, each turned into an ``Actor``.

Secrets are shown once and never stored: the catalog keeps SHA-256 of tokens and
session cookies, and argon2id hashes of passwords. Every refusal here is an
``AuthenticationError`` (401) that says what to do, except a bad CSRF token (403).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from snapkeep.catalog import ApiToken, User
from snapkeep.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDenied,
    ServerBusy,
    UsageError,
)
from snapkeep.ids import new_id
from snapkeep.policy.rules import Actor, require_project_admin
from snapkeep.services.context import Context
from snapkeep.services.identity.throttle import HashGate, SignInThrottle

TOKEN_PREFIX = "sk_"
SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()  # argon2id with the library's recommended cost (64 MiB a hash)
_gate: HashGate | None = None  # bounds hashes at once: parallel sign-ins cannot take the memory

NEW_TOKEN_HINT = ("ask a project admin for a new one "
                  "(`snapkeep auth:token:create --user EMAIL`)")
BAD_LOGIN = ("wrong email or password; check both and try again, or ask a project admin to "
             "set a password with `snapkeep user:password EMAIL --password-stdin`")


# -- hashing -----------------------------------------------------------------------------------

def hash_secret(secret: str) -> str:
    """SHA-256 hex: what the catalog keeps of a token or a session cookie. Secrets are
    high-entropy random strings, so a fast hash is enough (unlike passwords)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} "
                         "characters (a passphrase of a few words is easy to remember)")


def hash_password(password: str) -> str:
    """An argon2id hash (with its salt and parameters) of an acceptable password."""
    check_password_strength(password)
    return _hash(password)


def hash_gate() -> HashGate:
    """The process's HashGate (SNAPKEEP_HASH_CONCURRENCY, SNAPKEEP_HASH_WAIT)."""
    global _gate
    if _gate is None:
        _gate = HashGate.from_env()
    return _gate


def _hash(password: str) -> str:
    with hash_gate().slot():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash is checked against a dummy one, so
    unknown users and users without a password cost the same time as a wrong password.
    ServerBusy when the server hashes as many passwords at once as it allows."""
    against = password_hash or _dummy_hash()
    with hash_gate().slot():
        try:
            _hasher.verify(against, password)
        except (VerificationError, InvalidHashError):
            return False
    return password_hash is not None


@cache
def _dummy_hash() -> str:
    return _hash(secrets.token_urlsafe(16))


def check_csrf(expected: str, given: str | None) -> None:
    """Refuse a console form whose CSRF token is missing or not this session's."""
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise PermissionDenied("the form expired or did not come from this console; "
                               "reload the page and try again")


# -- actors ------------------------------------------------------------------------------------

def actor_for_user(ctx: Context, user: User) -> Actor:
    """The Actor a user acts as: their project role and environment roles."""
    return Actor(name=user.display_name or user.email, project_role=user.project_role,
                 environment_roles=ctx.catalog.environment_roles(user.id), email=user.email)


def authenticate_password(ctx: Context, email: str, password: str, *,
                          throttle: SignInThrottle | None = None,
                          address: str | None = None) -> Actor:
    """The user's Actor if the password is right; one message for every failure. With a
    ``throttle``, TooManyAttempts (before any hashing) once the account or the client
    ``address`` has failed too often; unknown emails take the same path as known ones."""
    attempt = throttle.begin(email or "", address) if throttle is not None else None
    user = ctx.catalog.get_user(email.strip()) if email else None
    stored = user.password_hash if user is not None else None
    try:
        right = verify_password(stored, password or "")
    except ServerBusy:
        if throttle is not None and attempt is not None:
            throttle.forgive(attempt)  # not checked: not a failure
        raise
    if not right:
        raise AuthenticationError(BAD_LOGIN)
    assert user is not None and stored is not None  # verify_password is False otherwise
    if throttle is not None and attempt is not None:
        throttle.succeeded(attempt)
    if _hasher.check_needs_rehash(stored):  # the cost parameters went up since
        ctx.catalog.set_password_hash(user.email, _hash(password))
    return actor_for_user(ctx, user)


# -- API tokens --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never its secret."""

    id: str
    user: str  # the owner's email
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        def iso(dt: datetime | None) -> str | None:
            return dt.isoformat(timespec="seconds") if dt else None
        return {"id": self.id, "user": self.user, "name": self.name,
                "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at), "active": self.active}


def _token_info(token: ApiToken, email: str) -> TokenInfo:
    return TokenInfo(id=token.id, user=email, name=token.name, created_at=token.created_at,
                     last_used_at=token.last_used_at, revoked_at=token.revoked_at)


def _user(ctx: Context, email: str) -> User:
    user = ctx.catalog.get_user(email.strip())
    if user is None:
        raise NotFoundError(f"no user {email!r}; add one with `snapkeep user:add {email}` "
                            "or see `snapkeep user:list`")
    return user


def _require_self_or_admin(ctx: Context, email: str, doing: str) -> None:
    # People manage their own tokens; project admins manage everyone's.
    if ctx.actor.email is None or ctx.actor.email != email.strip().lower():
        require_project_admin(ctx.actor, doing)
        user = ctx.catalog.get_user(email.strip())
        if user is not None:
            require_admin_wherever(ctx, user, doing)


def require_admin_wherever(ctx: Context, user: User, doing: str) -> None:
    """Users are shared by the projects of a catalog: what acts as ``user`` everywhere
    (a token, a password, removing them) needs an actor who is a project admin in every
    project ``user`` has a role in, not only in this one. The local operator (no email:
    the shell of a host that holds the config) may."""
    if ctx.actor.email is None:
        return
    for project in sorted(ctx.catalog.user_projects(user.id) - {ctx.config.id}):
        me = ctx.catalog.for_project(project).get_user(ctx.actor.email)
        if me is None or me.project_role != "admin":
            raise PermissionDenied(
                f"{user.email} also has a role in project {project!r}, where "
                f"{ctx.actor.name} is not a project admin; to {doing} you need the project "
                f"Admin role there too. Ask an admin of {project!r} to do it.")


def create_token(ctx: Context, email: str, name: str | None = None) -> tuple[str, str]:
    """A new API token for the user: ``(token_id, secret)``. Show the secret once; only
    its hash is kept. Project admins create tokens for anyone, others for themselves."""
    _require_self_or_admin(ctx, email, f"create an API token for {email}")
    user = _user(ctx, email)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ctx.catalog.add_token(new_id(), user.id, (name or "api").strip()[:200],
                                  hash_secret(secret))
    return token.id, secret


def revoke_token(ctx: Context, token: str) -> TokenInfo:
    """Revoke a token given its ID (or its secret). Idempotent; NotFoundError if unknown."""
    token = token.strip()
    row = (ctx.catalog.token_by_hash(hash_secret(token), touch=False)
           if token.startswith(TOKEN_PREFIX) else ctx.catalog.get_token(token))
    owner = ctx.catalog.get_user_by_id(row.user_id) if row is not None else None
    if row is None or owner is None:
        raise NotFoundError("no such API token; see the IDs with `snapkeep auth:token:list`")
    _require_self_or_admin(ctx, owner.email, f"revoke {owner.email}'s API token")
    revoked = ctx.catalog.revoke_token(row.id)
    assert revoked is not None
    return _token_info(revoked, owner.email)


def list_tokens(ctx: Context, email: str | None = None) -> list[TokenInfo]:
    """Tokens of one user, or of everyone (project admins only), oldest first."""
    if email is None:
        if ctx.actor.project_role != "admin" and ctx.actor.email:
            email = ctx.actor.email  # a non-admin sees their own
        else:
            require_project_admin(ctx.actor, "list everyone's API tokens")
    if email is not None:
        _require_self_or_admin(ctx, email, f"list {email}'s API tokens")
        user = _user(ctx, email)
        return [_token_info(t, user.email) for t in ctx.catalog.list_tokens(user.id)]
    emails = {u.id: u.email for u in ctx.catalog.list_users()}
    return [_token_info(t, emails.get(t.user_id, "?")) for t in ctx.catalog.list_tokens()]


def actor_for_token(ctx: Context, secret: str | None) -> Actor:
    """The Actor behind a bearer token; AuthenticationError if missing, unknown or revoked."""
    if not secret or not secret.strip():
        raise AuthenticationError(
            "no API token given: send it as `Authorization: Bearer TOKEN` (the CLI reads "
            f"SNAPKEEP_TOKEN); to get one, {NEW_TOKEN_HINT}")
    token = ctx.catalog.token_by_hash(hash_secret(secret.strip()))
    user = ctx.catalog.get_user_by_id(token.user_id) if token is not None else None
    if token is None or user is None:
        raise AuthenticationError(
            "the API token is not valid here (mistyped, or from another server); "
            f"check it, or {NEW_TOKEN_HINT}")
    if token.revoked_at is not None:
        raise AuthenticationError(
            f"the API token {token.id} ({token.name}) was revoked on "
            f"{token.revoked_at.isoformat(timespec='seconds')}; {NEW_TOKEN_HINT}")
    return actor_for_user(ctx, user)


# -- console sessions --------------------------------------------------------------------------

def create_web_session(ctx: Context, email: str,
                       ttl: timedelta = SESSION_TTL) -> tuple[str, str]:
    """Sign the (already authenticated) user in: ``(cookie_secret, csrf_token)``.
    Only the cookie's hash is kept. Expired sessions are swept on the way."""
    user = _user(ctx, email)
    ctx.catalog.delete_expired_sessions()
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    ctx.catalog.add_web_session(hash_secret(cookie), user.id, csrf, ctx.clock() + ttl)
    return cookie, csrf


def session_actor(ctx: Context, cookie_secret: str | None) -> tuple[Actor, str]:
    """The signed-in Actor and the session's CSRF token; AuthenticationError if the
    cookie is missing, unknown or expired."""
    row = ctx.catalog.get_web_session(hash_secret(cookie_secret)) if cookie_secret else None
    user = ctx.catalog.get_user_by_id(row.user_id) if row is not None else None
    if row is None or user is None:
        raise AuthenticationError("you are not signed in (or were signed out); sign in again")
    if row.expires_at <= ctx.clock():
        ctx.catalog.delete_web_session(row.id_hash)
        raise AuthenticationError("your session expired; sign in again")
    return actor_for_user(ctx, user), row.csrf_token


def end_web_session(ctx: Context, cookie_secret: str | None) -> None:
    """Sign out. Idempotent."""
    if cookie_secret:
        ctx.catalog.delete_web_session(hash_secret(cookie_secret))
