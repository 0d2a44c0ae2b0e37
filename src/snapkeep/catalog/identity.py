"""Catalog access for users, environment roles, API tokens and console sessions.

Emails are stored lowercased, so lookups are case-insensitive. Secrets never reach
this module: tokens and session cookies arrive already hashed (SHA-256 hex).
Rows come back detached with timezone-aware UTC datetimes, like the rest of the catalog.

Users, tokens and sessions are shared by every project of the catalog; roles are the
catalog's project's: a ``User`` read here carries its role in that project as
``project_role`` (kept in ``project_roles``), and environment roles name the project too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from snapkeep.catalog.base import CatalogBase, rows_changed
from snapkeep.catalog.times import aware, utc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from snapkeep.catalog.models import ApiToken, User, WebSession

# Using a token writes last_used_at at most this often, not on every request.
TOUCH_EVERY = timedelta(minutes=1)



class IdentityMixin(CatalogBase):
    # -- users -------------------------------------------------------------------------------

    def add_user(self, email: str, display_name: str, *, password_hash: str | None = None,
                 project_role: str | None = None) -> User | None:
        """The new user, or None when a user with that email (in any case) exists."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from snapkeep.catalog.models import ProjectRole, User

        user = User(email=email.lower(), display_name=display_name,
                    password_hash=password_hash, created_at=self.clock())
        try:
            with self.session() as s:
                if s.scalar(select(User.id).where(User.email == user.email)) is not None:
                    return None
                s.add(user)
                s.flush()
                if project_role is not None:
                    s.add(ProjectRole(user_id=user.id, project=self.project, role=project_role))
        except IntegrityError:  # another process added the same email in between
            return None
        user.project_role = project_role
        return utc(user)

    def get_user(self, email: str) -> User | None:
        from sqlalchemy import select

        from snapkeep.catalog.models import User

        with self.session() as s:
            return self._with_role(s, s.scalar(select(User).where(User.email == email.lower())))

    def get_user_by_id(self, user_id: int) -> User | None:
        from snapkeep.catalog.models import User

        with self.session() as s:
            return self._with_role(s, s.get(User, user_id))

    def list_users(self) -> list[User]:
        from sqlalchemy import select

        from snapkeep.catalog.models import User

        with self.session() as s:
            roles = self._project_roles(s)
            users = list(s.scalars(select(User).order_by(User.email)))
            s.expunge_all()  # detached first: the roles are this project's, never flushed
        for u in users:
            u.project_role = roles.get(u.id)
        return [utc(u) for u in users]

    def _project_roles(self, s: Session, user_id: int | None = None) -> dict[int, str]:
        """User id → role in this catalog's project."""
        from sqlalchemy import select

        from snapkeep.catalog.models import ProjectRole

        q = select(ProjectRole).where(ProjectRole.project == self.project)
        if user_id is not None:
            q = q.where(ProjectRole.user_id == user_id)
        return {r.user_id: r.role for r in s.scalars(q)}

    def _with_role(self, s: Session, user: User | None) -> User | None:
        """``user`` with its role in this project as ``project_role`` (not written back)."""
        if user is None:
            return None
        role = self._project_roles(s, user.id).get(user.id)
        s.expunge(user)  # detached first: the role is this project's, never flushed
        user.project_role = role
        return utc(user)

    def delete_user(self, email: str) -> bool:
        """Remove the user with their roles, tokens and sessions; False if there was none."""
        from sqlalchemy import delete, select

        from snapkeep.catalog.models import (
            ApiToken,
            EnvironmentRole,
            ProjectRole,
            User,
            WebSession,
        )

        with self.session() as s:
            user = s.scalar(select(User).where(User.email == email.lower()))
            if user is None:
                return False
            # Explicit deletes: SQLite enforces ON DELETE CASCADE only with the pragma on.
            for model in (EnvironmentRole, ProjectRole, ApiToken, WebSession):
                s.execute(delete(model).where(model.user_id == user.id))
            s.delete(user)
        return True

    def set_project_role(self, email: str, role: str | None) -> bool:
        """Set (None: clear) the user's role in this project; False if there is no such
        user."""
        from sqlalchemy import select

        from snapkeep.catalog.models import ProjectRole, User

        with self.session() as s:
            user_id = s.scalar(select(User.id).where(User.email == email.lower()))
            if user_id is None:
                return False
            row = s.get(ProjectRole, (user_id, self.project))
            if role is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(ProjectRole(user_id=user_id, project=self.project, role=role))
            else:
                row.role = role
        return True

    def set_password_hash(self, email: str, password_hash: str | None) -> bool:
        return self._update_user(email, password_hash=password_hash)

    def _update_user(self, email: str, **fields: object) -> bool:
        from sqlalchemy import select

        from snapkeep.catalog.models import User

        with self.session() as s:
            user = s.scalar(select(User).where(User.email == email.lower()))
            if user is None:
                return False
            for k, v in fields.items():
                setattr(user, k, v)
        return True

    # -- environment roles -------------------------------------------------------------------

    def set_environment_role(self, user_id: int, environment: str, role: str | None) -> None:
        """Give the user ``role`` on the environment; None (or "none") removes it."""
        from snapkeep.catalog.models import EnvironmentRole

        with self.session() as s:
            row = s.get(EnvironmentRole, (user_id, self.project, environment))
            if role is None or role == "none":
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(EnvironmentRole(user_id=user_id, project=self.project,
                                      environment=environment, role=role))
            else:
                row.role = role

    def environment_roles(self, user_id: int) -> dict[str, str]:
        """Environment name → role for one user."""
        from sqlalchemy import select

        from snapkeep.catalog.models import EnvironmentRole

        q = select(EnvironmentRole).where(EnvironmentRole.user_id == user_id,
                                          EnvironmentRole.project == self.project)
        with self.session() as s:
            return {r.environment: r.role for r in s.scalars(q)}

    def all_environment_roles(self) -> dict[int, dict[str, str]]:
        """User id → (environment → role), for listing every user in one query."""
        from sqlalchemy import select

        from snapkeep.catalog.models import EnvironmentRole

        out: dict[int, dict[str, str]] = {}
        with self.session() as s:
            for r in s.scalars(select(EnvironmentRole)
                               .where(EnvironmentRole.project == self.project)
                               .order_by(EnvironmentRole.environment)):
                out.setdefault(r.user_id, {})[r.environment] = r.role
        return out

    def user_projects(self, user_id: int) -> set[str]:
        """The projects (of every project of this catalog) the user has a role in: a
        project role, or a role on one of its environments."""
        from sqlalchemy import select, union

        from snapkeep.catalog.models import EnvironmentRole, ProjectRole

        q = union(select(ProjectRole.project).where(ProjectRole.user_id == user_id),
                  select(EnvironmentRole.project).where(EnvironmentRole.user_id == user_id))
        with self.session() as s:
            return {str(p) for p in s.scalars(q)}

    # -- API tokens --------------------------------------------------------------------------

    def add_token(self, token_id: str, user_id: int, name: str, token_hash: str) -> ApiToken:
        from snapkeep.catalog.models import ApiToken

        return self._added(ApiToken(id=token_id, user_id=user_id, name=name,
                                    token_hash=token_hash, created_at=self.clock()))

    def get_token(self, token_id: str) -> ApiToken | None:
        from snapkeep.catalog.models import ApiToken

        with self.session() as s:
            return utc(s.get(ApiToken, token_id))

    def list_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        from sqlalchemy import select

        from snapkeep.catalog.models import ApiToken

        q = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if user_id is not None:
            q = q.where(ApiToken.user_id == user_id)
        with self.session() as s:
            return [utc(t) for t in s.scalars(q)]

    def revoke_token(self, token_id: str) -> ApiToken | None:
        """Mark the token revoked (keeping the first revocation time); None if unknown."""
        from snapkeep.catalog.models import ApiToken

        with self.session() as s:
            token = s.get(ApiToken, token_id)
            if token is not None and token.revoked_at is None:
                token.revoked_at = self.clock()
        return utc(token)

    def token_by_hash(self, token_hash: str, *, touch: bool = True) -> ApiToken | None:
        """The token with this SHA-256, revoked or not; records its use unless revoked."""
        from sqlalchemy import select

        from snapkeep.catalog.models import ApiToken

        with self.session() as s:
            token = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
            if token is not None and touch and token.revoked_at is None:
                at = self.clock()
                last = aware(token.last_used_at)
                if last is None or at - last >= TOUCH_EVERY:
                    token.last_used_at = at
        return utc(token)

    # -- console sessions --------------------------------------------------------------------

    def add_web_session(self, id_hash: str, user_id: int, csrf_token: str,
                        expires_at: datetime) -> WebSession:
        from snapkeep.catalog.models import WebSession

        return self._added(WebSession(id_hash=id_hash, user_id=user_id, csrf_token=csrf_token,
                                      created_at=self.clock(), expires_at=expires_at))

    def get_web_session(self, id_hash: str) -> WebSession | None:
        from snapkeep.catalog.models import WebSession

        with self.session() as s:
            return utc(s.get(WebSession, id_hash))

    def delete_web_session(self, id_hash: str) -> None:
        from sqlalchemy import delete

        from snapkeep.catalog.models import WebSession

        with self.session() as s:
            s.execute(delete(WebSession).where(WebSession.id_hash == id_hash))

    def delete_expired_sessions(self, now: datetime | None = None) -> int:
        """Remove sessions past their expiry; how many went."""
        from sqlalchemy import delete

        from snapkeep.catalog.models import WebSession

        cutoff = now or self.clock()
        with self.session() as s:
            result = s.execute(delete(WebSession).where(WebSession.expires_at <= cutoff))
            return rows_changed(result)
