"""Catalog access for cron schedules of automatic backups (mixed into ``Catalog``).

``claim_schedule`` is how several schedulers sharing one catalog (PostgreSQL) avoid
firing a schedule twice: a conditional UPDATE that only the first of them can make.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from snapkeep.catalog.base import CatalogBase, rows_changed
from snapkeep.catalog.times import utc

if TYPE_CHECKING:
    from snapkeep.catalog.models import Schedule


class ScheduleMixin(CatalogBase):
    def add_schedule(self, schedule: Schedule) -> bool:
        """Insert; False (and nothing changed) if a schedule with that id exists already."""
        schedule.project = self.project
        return self._add_new(schedule)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        from snapkeep.catalog.models import Schedule

        with self.session() as s:
            row = s.get(Schedule, schedule_id)
            return utc(row) if row is not None and row.project == self.project else None

    def list_schedules(self, environment: str | None = None, *,
                       origin: str | None = None) -> list[Schedule]:
        from sqlalchemy import select

        from snapkeep.catalog.models import Schedule

        q = (select(Schedule).where(Schedule.project == self.project)
             .order_by(Schedule.environment, Schedule.created_at, Schedule.id))
        if environment is not None:
            q = q.where(Schedule.environment == environment)
        if origin is not None:
            q = q.where(Schedule.origin == origin)
        with self.session() as s:
            return [utc(x) for x in s.scalars(q)]

    def delete_schedule(self, schedule_id: str) -> bool:
        from sqlalchemy import delete

        from snapkeep.catalog.models import Schedule

        with self.session() as s:
            return rows_changed(s.execute(delete(Schedule).where(
                Schedule.id == schedule_id, Schedule.project == self.project))) == 1

    def due_schedules(self, at: datetime) -> list[Schedule]:
        """Schedules whose next run is at or before ``at``, the longest-waiting first."""
        from sqlalchemy import select

        from snapkeep.catalog.models import Schedule

        q = (select(Schedule).where(Schedule.project == self.project, Schedule.next_run_at <= at)
             .order_by(Schedule.next_run_at, Schedule.id))
        with self.session() as s:
            return [utc(x) for x in s.scalars(q)]

    def claim_schedule(self, schedule_id: str, expected_next: datetime | None,
                       new_next: datetime, ran_at: datetime) -> bool:
        """Move a due schedule on to ``new_next`` if its next run is still ``expected_next``.

        True for exactly one of several callers racing for the same run: the UPDATE is
        conditional on the value each read, and only the first one's condition still holds.
        """
        from sqlalchemy import update

        from snapkeep.catalog.models import Schedule

        cond = Schedule.next_run_at.is_(None) if expected_next is None else \
            Schedule.next_run_at == expected_next
        with self.session() as s:
            res = s.execute(update(Schedule)
                            .where(Schedule.id == schedule_id,
                                   Schedule.project == self.project, cond)
                            .values(next_run_at=new_next, last_run_at=ran_at)
                            .execution_options(synchronize_session=False))
            return rows_changed(res) == 1
