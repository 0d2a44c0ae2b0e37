"""An activity's log as JSON lines (``application/x-ndjson``), followed while it runs.

One JSON object per line, told apart by their keys:

- ``{"id": 12, "at": "…", "message": "…"}`` — a log entry (``id`` grows);
- ``{"progress": 42}`` — the completion percent, when it changed;
- ``{"heartbeat": true}`` — nothing happened for a while (keeps proxies and clients from
  timing out);
- ``{"sealed": true, "state": …, "result": …, "snapshot_id": …, "error": …}`` — the
  activity ended; the last line;
- ``{"error": {"status": …, "type": …, "message": …}}`` — following stopped (e.g. the
  token's role was removed); the last line.

A stream that ends without a seal or error line was cut (the server is stopping, or
``follow=false`` on a running activity): ask again with ``after`` = the last ``id`` seen.
The catalog is polled, every ``MIN_POLL`` seconds while lines come, backing off to
``MAX_POLL`` when idle.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from snapkeep.errors import SnapkeepError
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities.info import RUNNING
from snapkeep.services.context import Context

MIN_POLL = 0.1
MAX_POLL = 1.0
HEARTBEAT_EVERY = 10.0  # seconds of silence before a heartbeat line

MEDIA_TYPE = "application/x-ndjson"


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def log_lines(ctx: Context, activity_id: str, *, after: int = 0, follow: bool = True,
              stop: threading.Event | None = None) -> Iterator[str]:
    """The NDJSON lines of ``activity_id``'s log after entry ``after``. Check access
    before streaming (``activities.get_activity``): errors here end the stream with an
    error line, since the status line was sent already."""
    stop = stop or threading.Event()
    last_percent: int | None = None
    interval = MIN_POLL
    quiet_since = time.monotonic()
    while True:
        try:
            # The state first, then the lines: every line written before the end is sent.
            a = activities.get_activity(ctx, activity_id)
            entries = activities.activity_log(ctx, activity_id, after)
        except SnapkeepError as e:
            yield _line({"error": {"status": e.http_status, "type": type(e).__name__,
                                   "message": e.message}})
            return
        for entry in entries:
            after = entry.id
            yield _line({"id": entry.id, "at": entry.at.isoformat(), "message": entry.message})
        out = bool(entries)
        if a.completion_percent != last_percent and a.state in RUNNING:
            last_percent = a.completion_percent
            yield _line({"progress": a.completion_percent})
            out = True
        if a.state not in RUNNING:
            yield _line({"sealed": True, "state": a.state, "result": a.result,
                         "snapshot_id": a.snapshot_id, "error": a.error})
            return
        if not follow:
            return
        now = time.monotonic()
        if out:
            interval, quiet_since = MIN_POLL, now
        else:
            interval = min(MAX_POLL, interval * 1.5)
            if now - quiet_since >= HEARTBEAT_EVERY:
                quiet_since = now
                yield _line({"heartbeat": True})
        if stop.wait(interval):
            return  # the server is stopping: the client reconnects with ``after``
