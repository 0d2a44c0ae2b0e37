"""Catalog access for the webhook outbox and activity warnings (mixed into ``Catalog``).

A notification is claimed before each attempt with one conditional UPDATE: it must be
pending and due (``next_attempt_at`` at or before now), and the claim moves
``next_attempt_at`` past the attempt's timeout. Of several processes sharing a catalog
(PostgreSQL) only the first one's condition still holds, so a call is never made twice
at once; if the claimer dies mid-attempt, the notification is due again once that time
has passed. Hosts sharing a catalog need synchronised clocks (NTP), as for leases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from snapkeep.catalog import sql
from snapkeep.catalog.base import CatalogBase, rows_changed
from snapkeep.catalog.times import utc

if TYPE_CHECKING:
    from snapkeep.catalog.models import Notification

STATES = ("pending", "delivered", "failed")


class NotificationMixin(CatalogBase):
    # -- warnings on activities ------------------------------------------------------------

    def add_warning(self, activity_id: str, message: str, *, log: bool = True) -> bool:
        """Append ``message`` to the activity's warnings (and, with ``log``, its log as
        "Warning: …"), in one transaction. False when the activity does not exist."""
        # "queue": on SQLite the write lock is taken before the read, on PostgreSQL the row
        # is locked (two writers must not drop each other's warning)
        with self._sql("queue") as tx:
            lock = "" if tx.is_sqlite else " FOR UPDATE"
            found = tx.rows("SELECT warnings FROM activities WHERE id = :id AND project = :p"
                            + lock, {"id": activity_id, "p": self.project})
            if not found:
                return False
            warnings = [*(sql.decode(tx, "warnings", found[0][0]) or []), message]
            tx.run("UPDATE activities SET warnings = :w WHERE id = :id",
                   {"w": warnings, "id": activity_id})
            if log:
                sql.add_log(tx, activity_id, self.clock(), f"Warning: {message}")
            return True

    # -- the outbox ------------------------------------------------------------------------

    def add_notification(self, notification: Notification) -> bool:
        """Insert; False (and nothing changed) when its activity has one already."""
        notification.project = self.project
        return self._add_new(notification)

    def get_notification(self, notification_id: str) -> Notification | None:
        from snapkeep.catalog.models import Notification

        with self.session() as s:
            n = s.get(Notification, notification_id)
            return utc(n) if n is not None and n.project == self.project else None

    def due_notifications(self, at: datetime | None = None, limit: int = 100) -> list[str]:
        """IDs of pending notifications due at ``at`` (default now), the oldest first."""
        from sqlalchemy import select

        from snapkeep.catalog.models import Notification

        q = (select(Notification.id)
             .where(Notification.project == self.project, Notification.state == "pending",
                    Notification.next_attempt_at <= (at or self.clock()))
             .order_by(Notification.next_attempt_at, Notification.id).limit(limit))
        with self.session() as s:
            return list(s.scalars(q))

    def claim_notification(self, notification_id: str, hold_seconds: float,
                           at: datetime | None = None) -> Notification | None:
        """Take the next attempt of a pending, due notification: count it and move its next
        attempt ``hold_seconds`` on (past the attempt). The notification as claimed, or
        None when it is not pending, not due, or another process took it first."""
        from sqlalchemy import update

        from snapkeep.catalog.models import Notification

        at = at or self.clock()
        with self.session() as s:
            res = s.execute(update(Notification)
                            .where(Notification.id == notification_id,
                                   Notification.project == self.project,
                                   Notification.state == "pending",
                                   Notification.next_attempt_at <= at)
                            .values(attempts=Notification.attempts + 1,
                                    next_attempt_at=at + timedelta(seconds=hold_seconds))
                            .execution_options(synchronize_session=False))
            if rows_changed(res) != 1:
                return None
            return utc(s.get(Notification, notification_id))

    def notification_delivered(self, notification_id: str) -> None:
        self._settle(notification_id, state="delivered", delivered_at=self.clock(), last_error=None)

    def notification_retry(self, notification_id: str, error: str, at: datetime) -> None:
        """The attempt failed; the next one is due at ``at``."""
        self._settle(notification_id, state="pending", next_attempt_at=at, last_error=error)

    def notification_failed(self, notification_id: str, error: str) -> None:
        """The last attempt failed: give up."""
        self._settle(notification_id, state="failed", last_error=error)

    def _settle(self, notification_id: str, **values: object) -> None:
        from sqlalchemy import update

        from snapkeep.catalog.models import Notification

        with self.session() as s:
            s.execute(update(Notification)
                      .where(Notification.id == notification_id,
                             Notification.project == self.project,
                             Notification.state == "pending")
                      .values(**values)
                      .execution_options(synchronize_session=False))

    def notification_counts(self) -> dict[str, int]:
        """How many notifications are in each state (every state present, 0 if none)."""
        from sqlalchemy import func, select

        from snapkeep.catalog.models import Notification

        q = (select(Notification.state, func.count())
             .where(Notification.project == self.project).group_by(Notification.state))
        with self.session() as s:
            counts = {str(state): int(n) for state, n in s.execute(q)}
        return {state: counts.get(state, 0) for state in STATES}
