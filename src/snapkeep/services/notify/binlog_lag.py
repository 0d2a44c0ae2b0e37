"""Warnings on the binlog archive's lag (docs/pitr.md, Warnings): a lagging or stopped
follower is raised like a failed backup.

``check(ctx, env)`` measures the environment's lag (``pitr_window``: 0 when every event
the server wrote is archived) and compares it with ``binlog_lag_warning`` (seconds,
default 60). When the lag first goes over, it records an ended activity of type
``environment.binlog.lag`` with result ``failure`` and the reason as its error, and sends
its webhook as for any ended activity (``[notifications] webhook_url``); when the lag is
back under the threshold after such a warning, one with result ``success``. The latest
such activity is the state, so a lasting lag is warned about once, not on every look,
and several servers sharing a catalog agree on it. ``snapkeep serve``'s scheduler looks
at every tick (services/schedules/scheduler.py).

A lag over the threshold is looked at again ``2 × binlog_interval + 1`` seconds later and
warned about only if it still is (a new binlog file's first events are unarchived for up
to an interval). An environment with nothing archived yet is not warned about (no
follower ever ran); a follower that stopped while the server is idle is not either —
nothing is lost until the server writes, and from that write on its lag grows.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from snapkeep.catalog import Activity
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import SnapkeepError
from snapkeep.ids import new_id
from snapkeep.services import pitr_window
from snapkeep.services.context import Context
from snapkeep.services.notify.webhooks import SIDE_BUDGET, notify_activity_end

LAG = "environment.binlog.lag"

log = logging.getLogger("snapkeep.notify")


def _warned(ctx: Context, env: EnvironmentConfig) -> bool:
    """Whether the latest lag activity of ``env`` is a warning not yet cleared."""
    latest = ctx.catalog.list_activities(env.name, types=(LAG,), limit=1)
    return bool(latest) and latest[0].result == "failure"


def _record(ctx: Context, env: EnvironmentConfig, now: datetime, *, ok: bool,
            text: str, window: pitr_window.Window) -> str:
    a = Activity(
        id=new_id(), environment=env.name, type=LAG, state="complete",
        result="success" if ok else "failure",
        description="Binlog archive caught up" if ok else "Binlog archive lagging",
        created_at=now, started_at=now, completed_at=now, completion_percent=100,
        error=None if ok else text, actor="the scheduler", warnings=[],
        parameters={"lag_seconds": window.lag_seconds,
                    "threshold_seconds": env.binlog_lag_warning,
                    "window": window.describe()})
    ctx.catalog.add_activity(a)
    ctx.catalog.append_log(a.id, text)
    notify_activity_end(ctx, a.id, budget=SIDE_BUDGET)
    return a.id


def check(ctx: Context, env: EnvironmentConfig) -> str | None:
    """One look at ``env``'s lag; the id of the activity it recorded, if any."""
    if not env.point_in_time:
        return None
    w = pitr_window.window(ctx, env)
    if w.lag_seconds is None:
        return None
    now = ctx.clock()
    limit = env.binlog_lag_warning
    over = w.lag_seconds > limit
    warned = _warned(ctx, env)
    if over and not warned:
        # Confirmed a moment later: right after the server opens a new binlog file (FLUSH
        # LOGS, a restart) its first events are unarchived for up to an interval, and an
        # idle server's lag then reads as the age of its last write.
        time.sleep(2 * env.binlog_interval + 1)
        w = pitr_window.window(ctx, env)
        if w.lag_seconds is None or w.lag_seconds <= limit:
            return None
        where = "" if w.server_checked else " (its server could not be reached)"
        text = (f"the binlog archive of {env.name} is {w.lag_seconds:.0f} s behind its "
                f"server{where}, over binlog_lag_warning = {limit:g} s: check that "
                f"`snapkeep binlog:follow -e {env.name}` runs and reaches the server; "
                f"{w.describe()}")
        log.warning("%s", text)
        return _record(ctx, env, now, ok=False, text=text, window=w)
    if warned and not over:
        text = (f"the binlog archive of {env.name} caught up: {w.lag_seconds:.0f} s behind "
                f"(binlog_lag_warning = {limit:g} s); {w.describe()}")
        return _record(ctx, env, now, ok=True, text=text, window=w)
    return None


def check_all(ctx: Context) -> list[str]:
    """``check`` for every point-in-time environment; a failure to look is logged and the
    others are still looked at."""
    out = []
    for env in ctx.config.environments.values():
        if not env.point_in_time:
            continue
        try:
            recorded = check(ctx, env)
        except SnapkeepError as e:
            log.warning("binlog lag of %s not checked: %s", env.name, e)
            continue
        except Exception:
            log.exception("binlog lag of %s not checked", env.name)
            continue
        if recorded:
            out.append(recorded)
    return out
