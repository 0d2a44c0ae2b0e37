"""``ActivityRecorder``: the ``Reporter`` handed to engines while an activity runs.

It writes log lines and (throttled) completion percent to the catalog and forwards both
to an optional observer, which is how the CLI draws its progress bar. It is also where a
running activity stops when someone cancels it, or its worker loses its lease or shuts
down. Every message it records is first cleared of the secrets snapkeep knows
(snapkeep.redact): hook output, warnings and errors a Viewer can read never carry them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from snapkeep.catalog import Activity
from snapkeep.errors import Cancelled, Interrupted
from snapkeep.redact import Redactor, known_secrets
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.activities.lease import Fence
from snapkeep.services.context import Context

CANCEL_CHECK_INTERVAL = 0.5  # seconds between two reads of the cancel flag

log = logging.getLogger(__name__)


class Observer(Protocol):
    def on_start(self, activity: ActivityInfo) -> None: ...

    def on_log(self, message: str) -> None: ...

    def on_progress(self, percent: float) -> None: ...


class ActivityRecorder:
    """A thread-safe Reporter that records into the catalog, and the activity's stop point.

    Every ``log`` and ``advance`` looks (at most every ``cancel_interval`` seconds) whether
    the activity was cancelled, and raises ``Cancelled`` if so; it raises ``Interrupted``
    once ``interrupt`` was called (the worker lost its lease) or ``stop`` is set (the
    worker is shutting down). It raises once, and only while the activity is
    cancellable: ``point_of_no_return`` ends that (a restore calls it before its cut-over
    begins, a backup before its manifest commit), after which the activity runs to its
    end and a late cancel request is only noted in the log.
    """

    def __init__(self, ctx: Context, activity: Activity, observer: Observer | None = None,
                 *, min_interval: float = 0.5, cancel_interval: float = CANCEL_CHECK_INTERVAL,
                 stop: threading.Event | None = None) -> None:
        self.ctx = ctx
        self.activity = activity
        self.observer = observer
        self.cancellable = True
        self.redact = Redactor(known_secrets(getattr(ctx, "config", None)))
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._last_write = 0.0
        self._last_percent = -1
        self._min_interval = min_interval
        self._cancel_interval = cancel_interval
        self._stop = stop
        self._last_check = 0.0
        self._interrupt: str | None = None
        self._raised = False  # Cancelled/Interrupted raised once already
        self._sealed = False  # the activity is being recorded as ended: no more checks
        self._no_return: str | None = None
        self._too_late_noted = False
        self._fence: Fence | None = None

    def fenced_by(self, fence: Fence) -> None:
        """Check ``fence`` at every cancellable check and before every side effect."""
        self._fence = fence

    def fence(self, what: str) -> None:
        """Before ``what``, a side effect other workers would see: raise ``Interrupted`` if
        this worker lost the activity's lease (see lease.Fence). Also past the point of no
        return: a worker that lost its lease must not touch the environment again."""
        if self._fence is not None:
            self._fence.check(what)

    def lease_lost(self) -> bool:
        """Whether this worker's fence found its lease lost (it was reaped)."""
        return self._fence is not None and self._fence.lost is not None

    def log(self, message: str) -> None:
        message = self.redact(message)
        self.ctx.catalog.append_log(self.activity.id, message)
        if self.observer:
            self.observer.on_log(message)
        self.check()

    def warn(self, message: str) -> None:
        """Record something that went wrong without failing the activity: logged as
        "Warning: …" and kept in the activity's ``warnings``. Never stops the activity."""
        message = self.redact(message)
        self.ctx.catalog.add_warning(self.activity.id, message)
        if self.observer:
            self.observer.on_log(f"Warning: {message}")

    def add_total(self, units: int) -> None:
        with self._lock:
            self._total += max(0, units)

    def advance(self, units: int) -> None:
        with self._lock:
            self._done += units
            percent = self.percent()
            t = time.monotonic()
            write = (int(percent) != self._last_percent
                     and t - self._last_write >= self._min_interval)
            if write:
                self._last_write, self._last_percent = t, int(percent)
        if write:
            self.ctx.catalog.update_activity(self.activity.id, completion_percent=int(percent))
        if self.observer:
            self.observer.on_progress(percent)
        self.check()

    def percent(self) -> float:
        if self._total <= 0:
            return 0.0
        return min(99.0, 100.0 * self._done / self._total)

    def point_of_no_return(self, what: str) -> None:
        """The last point where the activity may stop (raises as ``check`` does, without
        the throttle); from here on a cancel request does not stop it: ``what`` begins."""
        with self._lock:
            self._last_check = 0.0
        self.check()
        self.fence(what)
        with self._lock:
            self.cancellable = False
            self._no_return = what

    def interrupt(self, reason: str) -> None:
        """Stop the activity at its next check (called from another thread)."""
        self._interrupt = reason

    def seal(self) -> None:
        """No more checks: the activity is being recorded as ended. A cancel request
        that came after its point of no return and was not noted yet is noted now."""
        with self._lock:
            if self._sealed:
                return
            self._sealed = True
            late = self._no_return is not None and not self._too_late_noted
        who = self._cancelled_by() if late else None
        if who is not None:
            self._note_too_late(who)

    def check(self) -> None:
        """Raise ``Cancelled``/``Interrupted`` if the activity should stop here."""
        if self._stop is not None and self._stop.is_set() and self._interrupt is None:
            self._interrupt = "the worker running it was stopped before the activity ended; " \
                "start it again"
        t = time.monotonic()
        with self._lock:
            if self._sealed or self._raised or self._too_late_noted:
                return
            interrupt = self._interrupt if self.cancellable else None
            fence = self._fence if self.cancellable and interrupt is None else None
        if fence is not None:
            try:
                fence.check("its next step")
            except Interrupted as e:
                self._interrupt = interrupt = str(e)
            except Exception as e:  # noqa: BLE001 - the catalog unreachable: the heartbeat retries
                log.warning("could not confirm the lease of activity %s: %s",
                            self.activity.id, e)
        with self._lock:
            if interrupt is None and t - self._last_check < self._cancel_interval:
                return
            self._last_check = t
            cancellable = self.cancellable
        who = None if interrupt else self._cancelled_by()
        with self._lock:
            if self._sealed or self._raised or self._too_late_noted:
                return
            if not cancellable:
                if who is None:
                    return
                self._too_late_noted = True
            elif interrupt is None and who is None:
                return
            else:
                self._raised = True
        if not cancellable:
            self._note_too_late(who)
            return
        if interrupt is not None:
            raise Interrupted(interrupt)
        raise Cancelled(f"cancelled by {who}")

    def _cancelled_by(self) -> str | None:
        try:
            return self.ctx.catalog.cancel_requested_by(self.activity.id)
        except Exception:  # noqa: BLE001 - a catalog hiccup must not fail the activity
            log.warning("could not read the cancel flag of activity %s", self.activity.id)
            return None

    def _note_too_late(self, who: str | None) -> None:
        self._note(f"{who} asked to cancel, too late: {self._no_return} has begun, so the "
                   "activity runs to its end.")

    def _note(self, message: str) -> None:
        message = self.redact(message)
        self.ctx.catalog.append_log(self.activity.id, message)
        if self.observer:
            self.observer.on_log(message)
