"""What every part of the ``Catalog`` stands on: its sessions, its clock, adding a row.

``Catalog`` sets these up in ``__init__``; the mixins (queue, identity, schedules,
notifications) inherit them from here instead of each declaring what it expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from snapkeep.catalog.models import Base
from snapkeep.catalog.times import Clock, utc

Row = TypeVar("Row", bound=Base)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning
    a plain ``Result``; for those statements it is a ``CursorResult``)."""
    return cast(CursorResult[Any], result).rowcount


class CatalogBase:
    is_sqlite: bool
    clock: Clock  # every time the catalog stamps a row with is read from it
    _sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def _queue_tx(self) -> Iterator[Session]:
        """A transaction for a queue decision: on SQLite it holds the write lock from its
        first statement (a deferred one could not upgrade once another writer went first)."""
        with self._sessions() as s, s.begin():
            if self.is_sqlite:
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

    def _added(self, row: Row) -> Row:
        """``row`` inserted, returned detached with UTC times."""
        with self.session() as s:
            s.add(row)
        return utc(row)

    def _add_new(self, row: Base) -> bool:
        """Insert ``row``; False (and nothing changed) when its key exists already."""
        try:
            self._added(row)
        except IntegrityError:
            return False
        return True
