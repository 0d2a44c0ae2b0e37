"""Webhook notifications: one signed POST per ended activity, through an outbox.

When an activity ends — success, failure, cancelled, interrupted — and ``[notifications]
webhook_url`` is set, a notification is queued in the catalog (``notifications``) and then
delivered: ``POST`` of a JSON payload with the headers

- ``X-Snapkeep-Delivery``: the notification's ID (the same on every attempt);
- ``X-Snapkeep-Timestamp``: unix seconds of this attempt;
- ``X-Snapkeep-Signature``: ``sha256=`` + hex HMAC-SHA256 under the shared secret of
  ``timestamp + "." + body``.

Any 2xx answer delivers it. Otherwise it is retried after 1 s, 2 s, 4 s … (at most
``MAX_BACKOFF``) until ``attempts`` attempts were made; then it is given up and becomes a
warning on its activity. Each attempt is claimed in the catalog first (catalog/
notifications.py), so processes sharing a catalog never send one twice at once.

The process that ended the activity makes the attempts that fit in ``END_BUDGET``
seconds (``SIDE_BUDGET`` when it ended as a side effect of another command: recovered
after a crash, cancelled while queued), so a CLI command never hangs for minutes;
``snapkeep serve`` delivers what is left (``deliver_due``). A webhook problem never
changes an activity's result: nothing here raises into the activity's path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from snapkeep import __version__
from snapkeep.catalog import Activity
from snapkeep.config import WebhookConfig
from snapkeep.ids import new_id
from snapkeep.services.context import Context

if TYPE_CHECKING:
    from snapkeep.catalog import Notification

EVENT = "activity.completed"
END_BUDGET = 30.0  # seconds the process that ran the activity spends on its notification
SIDE_BUDGET = 5.0  # … when the activity ended as a side effect of another command
MAX_BACKOFF = 300.0  # seconds: the longest wait between two attempts
MIN_ATTEMPT = 1.0  # seconds: an attempt with less time left in the budget is not started
DUE_INTERVAL = 1.0  # seconds between two looks for due notifications in a server loop
CLAIM_MARGIN = 30.0  # seconds a claim outlives its attempt's timeout (then it is due again)

log = logging.getLogger("snapkeep.notify")
_URL_PATH = re.compile(r"(https?://[^/\s\"'?#]+)[/?#][^\s\"']*")


class _RedactURLs(logging.Filter):
    """httpx logs every request's full URL (at INFO): keep only its scheme and host, as
    the path or query of a webhook URL is often its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _URL_PATH.sub(r"\1/…", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


logging.getLogger("httpx").addFilter(_RedactURLs())


def notify_activity_end(ctx: Context, activity_id: str, *, budget: float = END_BUDGET) -> None:
    """Queue the webhook notification of an ended activity and deliver it within
    ``budget`` seconds (what is left is delivered by ``snapkeep serve``). Does nothing
    without ``[notifications] webhook_url``. Never raises: the activity's result stands."""
    if ctx.config.webhook is None:
        return
    try:
        notification_id = queue_notification(ctx, activity_id)
        if notification_id is not None:
            deliver(ctx, notification_id, budget=budget)
    except Exception as e:  # noqa: BLE001 - a webhook must never fail an activity
        log.warning("webhook notification of activity %s: %s", activity_id, e)


def queue_notification(ctx: Context, activity_id: str) -> str | None:
    """Add the activity's notification to the outbox, due now; its ID (None when the
    activity does not exist or has one already)."""
    a = ctx.catalog.get_activity(activity_id)
    if a is None:
        return None
    # an ORM row: loads SQLAlchemy, only when a webhook is configured
    from snapkeep.catalog import Notification

    at = ctx.clock()
    n = Notification(id=new_id(), activity_id=a.id, payload={}, attempts=0,
                     next_attempt_at=at, state="pending", created_at=at)
    n.payload = payload(ctx, a, n.id)
    if not ctx.catalog.add_notification(n):
        return None  # notified already (two processes saw it end, e.g. two cancels)
    return n.id


def payload(ctx: Context, a: Activity, delivery: str) -> dict[str, Any]:
    """What the webhook receives (see docs/hooks.md)."""
    def ts(dt: Any) -> str | None:
        return dt.isoformat() if dt else None

    return {
        "event": EVENT,
        "delivery": delivery,
        "project": ctx.config.id,
        "environment": a.environment,
        "result": a.result,
        "snapshot_id": a.snapshot_id,
        "activity": {
            "id": a.id, "type": a.type, "state": a.state, "result": a.result,
            "description": a.description, "created_at": ts(a.created_at),
            "started_at": ts(a.started_at), "completed_at": ts(a.completed_at),
            "error": a.error, "warnings": list(a.warnings or []),
        },
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Snapkeep-Signature`` value: ``sha256=<hex HMAC of timestamp.body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 1, 2, 4 … capped."""
    return min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1))


def deliver(ctx: Context, notification_id: str, *, budget: float) -> str | None:
    """Make the attempts of one notification that fit in ``budget`` seconds, waiting out
    its backoff in between. Its state when this returns (pending: left for later)."""
    cfg = ctx.config.webhook
    if cfg is None:
        return None
    deadline = time.monotonic() + budget
    while True:
        n = ctx.catalog.get_notification(notification_id)
        if n is None or n.state != "pending":
            return n.state if n else None
        wait = max(0.0, (n.next_attempt_at - ctx.clock()).total_seconds())
        if deadline - time.monotonic() - wait < MIN_ATTEMPT:
            return n.state  # left for `snapkeep serve`
        if wait:
            time.sleep(wait)
        attempt(ctx, notification_id, timeout=min(cfg.timeout, deadline - time.monotonic()))


def deliver_due(ctx: Context, *, limit: int = 100) -> int:
    """One attempt at each due notification (``snapkeep serve``'s loop); how many were
    attempted here (others may have been taken by another process)."""
    cfg = ctx.config.webhook
    if cfg is None:
        return 0
    made = 0
    for notification_id in ctx.catalog.due_notifications(limit=limit):
        if attempt(ctx, notification_id, timeout=cfg.timeout) is not None:
            made += 1
    return made


def deliver_until(ctx: Context, stop: threading.Event, interval: float = DUE_INTERVAL) -> None:
    """Deliver due notifications (retries, and those a CLI process left) every
    ``interval`` seconds until ``stop``: the loop of ``snapkeep serve`` and ``worker``."""
    while not stop.wait(interval):
        try:
            deliver_due(ctx)
        except Exception as e:  # noqa: BLE001 - a catalog hiccup: try again next time
            log.warning("webhook notifications: %s", e)


def attempt(ctx: Context, notification_id: str, *, timeout: float) -> str | None:
    """Claim and make one attempt; the notification's state afterwards, or None when it
    was not ours to attempt (not pending, not due, or another process claimed it)."""
    cfg = ctx.config.webhook
    if cfg is None:
        return None
    n = ctx.catalog.claim_notification(notification_id, timeout + CLAIM_MARGIN)
    if n is None:
        return None
    error = _send(cfg, n, timeout, ctx.clock())
    if error is not None:  # an HTTP library's message may quote the URL with its secret path
        error = error.replace(cfg.url, describe_url(cfg.url))
    if error is None:
        ctx.catalog.notification_delivered(n.id)
        return "delivered"
    if n.attempts >= cfg.attempts:
        ctx.catalog.notification_failed(n.id, error)
        ctx.catalog.add_warning(
            n.activity_id, f"the webhook notification to {describe_url(cfg.url)} was not "
                           f"delivered after {n.attempts} attempt(s): {error}")
        log.warning("webhook notification %s of activity %s given up after %d attempt(s): %s",
                    n.id, n.activity_id, n.attempts, error)
        return "failed"
    retry_at = ctx.clock() + timedelta(seconds=backoff(n.attempts))
    ctx.catalog.notification_retry(n.id, error, retry_at)
    return "pending"


def _send(cfg: WebhookConfig, n: Notification, timeout: float, at: datetime) -> str | None:
    """POST the notification once, signed as sent ``at``; None when it was delivered,
    else what went wrong."""
    body = json.dumps(n.payload, separators=(",", ":")).encode()
    timestamp = str(int(at.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"snapkeep/{__version__}",
        "X-Snapkeep-Event": EVENT,
        "X-Snapkeep-Delivery": n.id,
        "X-Snapkeep-Timestamp": timestamp,
        "X-Snapkeep-Signature": sign(cfg.secret, timestamp, body),
    }
    import httpx  # here: only a process that sends a webhook pays for importing httpx

    try:
        r = httpx.post(cfg.url, content=body, headers=headers, timeout=max(0.1, timeout))
    except httpx.TimeoutException:
        return f"no answer within {timeout:.3g} s"
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if 200 <= r.status_code < 300:
        return None
    return f"HTTP {r.status_code} {r.reason_phrase}".rstrip()


def describe_url(url: str) -> str:
    """The webhook URL as it may be shown in warnings and logs: scheme and host only, as
    receivers (chat webhooks) often carry their secret in the path or the query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{rest}"
