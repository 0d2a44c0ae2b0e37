"""Catalog access for cron schedules of automatic backups (mixed into ``Catalog``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class ScheduleMixin:
    if TYPE_CHECKING:
        def session(self) -> AbstractContextManager[Session]: ...
