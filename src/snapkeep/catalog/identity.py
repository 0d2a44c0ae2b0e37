"""Catalog access for users, environment roles, API tokens and console sessions."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class IdentityMixin:
    if TYPE_CHECKING:
        def session(self) -> AbstractContextManager[Session]: ...
