"""Workers: claim queued activities from the catalog and run them.

A ``Worker`` (ID ``WID:pid:n``, WID the persistent ID of its state directory) first
reaps activities whose lease expired (their worker died), settling what they left, then
claims the oldest pending activity whose environment runs nothing (catalog/queue.py) and
runs it through ``operations.execute`` — the same path as the
CLI's in-process run — renewing its lease every third of it.

Threads: each worker thread has a ``Context`` of its own (``ctx_factory()``), so its own
catalog engine and repository. The catalog is thread-safe, but a repository keeps
in-memory state (index, pack cache, upload queue) meant for one user at a time.

Stopping: set the ``stop`` event. A worker claims nothing more; the activity it is
running ends at its next cancellable point as failed ("the worker running it was
stopped"), or runs to its end when past its point of no return (a restore's cut-over).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from snapkeep.catalog import Activity
from snapkeep.errors import SnapkeepError
from snapkeep.services.activities import operations
from snapkeep.services.activities.claims import Claim
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.activities.lease import LEASE_SECONDS, worker_id
from snapkeep.services.activities.recovery import reap_expired
from snapkeep.services.context import Context

__all__ = ["Worker", "reap_expired", "start_worker_threads"]

POLL_INTERVAL = 1.0  # seconds an idle worker waits before looking at the queue again

log = logging.getLogger("snapkeep.workers")


class Worker:
    """Runs queued activities, one at a time. ``report`` receives a line per event."""

    def __init__(self, ctx: Context, *, number: int = 0, lease_seconds: float = LEASE_SECONDS,
                 environments: Sequence[str] | None = None,
                 stop: threading.Event | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        for name in environments or ():  # a typo would otherwise run nothing, silently
            ctx.config.environment(name)
        self.ctx = ctx
        self.id = worker_id(ctx, number)
        self.lease_seconds = lease_seconds
        self.environments = list(environments) if environments else None
        self.stop = stop or threading.Event()
        self._report = report or (lambda line: log.info("%s", line))

    def run_once(self) -> ActivityInfo | None:
        """Reap expired leases, then claim and run one pending activity; return it as it
        ended, or None when there was nothing to run."""
        self._reap()
        a = self.ctx.catalog.claim_next(self.id, self.lease_seconds, self.environments)
        return self._run(a) if a is not None else None

    def run_activity(self, activity_id: str,
                     poll_interval: float = POLL_INTERVAL) -> ActivityInfo | None:
        """Run exactly this queued activity, waiting while its environment is busy.

        Returns it as it ended; or as it is when someone else ran or cancelled it; or None
        when it does not exist or ``stop`` was set first.
        """
        while True:
            self._reap()
            a = self.ctx.catalog.claim_specific(activity_id, self.id, self.lease_seconds)
            if a is not None:
                return self._run(a)
            current = self.ctx.catalog.get_activity(activity_id)
            if current is None or current.state != "pending":
                return ActivityInfo.of(current) if current is not None else None
            if self.stop.wait(poll_interval):
                return None

    def run_forever(self, stop: threading.Event | None = None,
                    poll_interval: float = POLL_INTERVAL) -> None:
        """Run activities until ``stop`` (default: this worker's own) is set."""
        if stop is not None:
            self.stop = stop
        while not self.stop.is_set():
            try:
                ran = self.run_once()
            except Exception as e:  # noqa: BLE001 - catalog down, bug: keep serving
                self._report(f"worker {self.id}: {type(e).__name__}: {e}; retrying")
                ran = None
            if ran is None:
                self.stop.wait(poll_interval)

    def _reap(self) -> None:
        for activity_id in reap_expired(self.ctx, environments=self.environments):
            a = self.ctx.catalog.get_activity(activity_id)
            outcome = "completed (its restore had passed the point of no return)" \
                if a is not None and a.result == "success" else "marked failed"
            self._report(f"worker {self.id}: activity {activity_id} was interrupted (its "
                         f"worker stopped renewing its lease) and is {outcome}")

    def _run(self, a: Activity) -> ActivityInfo:
        self._report(f"worker {self.id}: running activity {a.id} ({a.description})")
        try:
            done = operations.execute(self.ctx, Claim(a, None, self.id, self.lease_seconds),
                                      stop=self.stop)
        except SnapkeepError as e:
            self._report(f"worker {self.id}: activity {a.id} failed: {e}")
        except Exception as e:  # noqa: BLE001 - recorded on the activity; the worker goes on
            self._report(f"worker {self.id}: activity {a.id} failed: {type(e).__name__}: {e}")
        else:
            self._report(f"worker {self.id}: activity {a.id} succeeded")
            return done
        return ActivityInfo.of(self.ctx.catalog.get_activity(a.id) or a)


def start_worker_threads(ctx_factory: Callable[[], Context], n: int, stop: threading.Event,
                         *, lease_seconds: float = LEASE_SECONDS,
                         poll_interval: float = POLL_INTERVAL,
                         environments: Sequence[str] | None = None,
                         report: Callable[[str], None] | None = None) -> list[threading.Thread]:
    """Start ``n`` worker threads (``snapkeep serve``, ``snapkeep worker --threads N``),
    each with its own Context from ``ctx_factory`` (made here, so a bad config fails the
    caller at once). They run until ``stop`` is set; join them afterwards (they are
    daemon threads, so a process that exits without joining does not hang)."""
    threads = []
    for i in range(n):
        w = Worker(ctx_factory(), number=i, lease_seconds=lease_seconds,
                   environments=environments, stop=stop, report=report)
        t = threading.Thread(target=w.run_forever, args=(stop, poll_interval),
                             name=f"worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    return threads
