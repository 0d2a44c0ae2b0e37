"""``snapshot:restore --at TIME|GTID``: what the value means, which snapshot is the base,
and the archived pieces the replay reads (docs/pitr.md, "Restore to a point in time").

``--at`` is an ISO 8601 time with an offset or ``Z`` (``2026-12-05T10:19:59+01:00``), a
naive time in this machine's zone (``2026-12-05 10:19:59``), or a GTID (``0-1-4711``).
Binlog events carry whole seconds: a time's fraction is dropped (``10:19:59.7`` is
``10:19:59``). A time restores every transaction whose events are timestamped before it
(the replay stops before the first one at or after it); a GTID restores up to and
including that transaction. Every refusal is raised before anything is touched, with the
recoverable window (``services/pitr_window.py``) and what to do. A point the archive
does not reach yet while a follower runs and the server has more is waited for a few of the
follower's intervals first: a restore asked a moment after the damage finds it archived.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql
from snapkeep.errors import ServerSetupError, SnapkeepError, UsageError
from snapkeep.repository import BinlogArchive, BlobRef, Repository, follower_running
from snapkeep.services import pitr_window
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target

GTID = re.compile(r"^\s*(\d+)-(\d+)-(\d+)\s*$")
CATCH_UP_INTERVALS = 3  # a running follower commits a segment at least every interval


@dataclass(frozen=True)
class PointInTime:
    """A parsed ``--at``: a UTC time (whole seconds) or a GTID."""

    text: str
    time: datetime | None = None
    gtid: str | None = None

    def stop(self) -> mysql.ReplayStop:
        return mysql.ReplayStop(before_time=self.time, after_gtid=self.gtid)

    def describe(self) -> str:
        return f"GTID {self.gtid}" if self.gtid else pitr_window.iso(self.time) or self.text


def parse_at(value: str) -> PointInTime:
    """``--at``'s value (see the module); UsageError for anything else."""
    text = (value or "").strip()
    m = GTID.match(text)
    if m:
        return PointInTime(value, gtid=f"{int(m[1])}-{int(m[2])}-{int(m[3])}")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {value!r} is neither a time nor a GTID: give an ISO 8601 time "
                         f"(2026-12-05T10:19:59Z, 2026-12-05T11:19:59+01:00, or "
                         f"'2026-12-05 10:19:59' in this machine's zone) or a GTID like "
                         f"0-1-4711") from None
    if t.tzinfo is None:
        t = t.astimezone()  # this machine's zone
    return PointInTime(value, time=t.astimezone(UTC).replace(microsecond=0))


@dataclass(frozen=True)
class Plan:
    at: PointInTime
    base: pitr_window.Base
    window: pitr_window.Window
    archive_complete: bool  # every event the server wrote is archived (lag 0)


def _gtid_parts(gtid: str) -> tuple[int, int, int]:
    d, s, n = (int(x) for x in gtid.split("-"))
    return d, s, n


def _seq_in_domain(gtids: str | None, domain: int) -> int | None:
    for g in (gtids or "").split(","):
        m = GTID.match(g)
        if m and int(m[1]) == domain:
            return int(m[3])
    return None


def plan(ctx: Context, env: EnvironmentConfig, at: PointInTime,
         snapshot_id: str | None = None) -> Plan:
    """The base snapshot for ``at`` in ``env``'s archive; UsageError (nothing touched) for a
    point outside the recoverable window, naming it."""
    name = env.name
    if not env.point_in_time:
        raise UsageError(f"environment {name} is not archived for point-in-time restores: add "
                         f"point_in_time = true under [environments.{name}] in "
                         f"{ctx.config.path} and run `snapkeep binlog:follow -e {name}`")
    target = database_target(env)
    if target is None:
        raise UsageError(f"environment {name} has no database: --at restores a database")
    w = pitr_window.window(ctx, env)
    if not w.archived:
        problems: list[str] = []
        with contextlib.suppress(SnapkeepError):  # unreachable: the reason below says it
            problems = mysql.binlog_problems(target)
        if problems:
            raise ServerSetupError(f"environment {name} cannot be restored to a point in "
                                   f"time: {problems[0]}")
    if not w.available:
        raise UsageError(f"cannot restore {name} --at {at.text}: {w.describe()}")
    window_text = w.describe()
    complete = w.server_checked and w.lag_seconds == 0
    if at.gtid is not None:
        try:
            base = _gtid_base(ctx.repository, name, w, at.gtid)
        except UsageError:
            if complete or not w.server_checked:
                raise
            w = _catch_up(ctx, env, w, None)  # written a moment ago: not archived yet?
            base = _gtid_base(ctx.repository, name, w, at.gtid)
    else:
        assert at.time is not None
        now = ctx.clock()
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        t = at.time
        assert w.start is not None and w.end is not None
        if t > now:
            raise UsageError(f"--at {at.describe()} is in the future (now is "
                             f"{pitr_window.iso(now)}); {window_text}")
        if t > w.end and not complete and w.server_checked:
            w = _catch_up(ctx, env, w, t)
            window_text = w.describe()
            complete = w.server_checked and w.lag_seconds == 0
        assert w.start is not None and w.end is not None
        first = w.ranges[0][0] if w.ranges else w.start
        if not w.covers(t):
            if t < first:
                raise UsageError(f"--at {at.describe()} is before the recoverable window: "
                                 f"{window_text}; older points need an older snapshot and "
                                 f"its archived binlog, which {name} does not have")
            if t > w.end and not complete:
                raise UsageError(f"--at {at.describe()} is after the last archived event "
                                 f"({pitr_window.iso(w.end)}; the follower lags "
                                 f"{w.lag_seconds or 0:.0f} s): {window_text}; check "
                                 f"`snapkeep binlog:follow -e {name}` and try again")
            if t <= w.end:
                gaps = "; ".join(g.describe() for g in w.gaps)
                raise UsageError(f"--at {at.describe()} falls where binlogs are missing "
                                 f"({gaps or 'no base snapshot reaches it'}); {window_text}")
        found = w.base_for(min(t, w.end))
        if found is None:
            raise UsageError(f"--at {at.describe()} has no base snapshot before it: "
                             f"{window_text}")
        base = found
    if snapshot_id is not None and snapshot_id != base.snapshot_id:
        chosen = [b for b in w.bases if b.snapshot_id == snapshot_id]
        if not chosen:
            raise UsageError(f"snapshot {snapshot_id} cannot be the base of --at "
                             f"{at.describe()}: it records no binlog position the archive "
                             f"covers; leave the ID out to use {base.snapshot_id}")
        b = chosen[0]
        between = any(b.seq < g.seq <= base.seq for g in w.gaps)
        if b.seq > base.seq or (at.time is not None and b.time > at.time) or between:
            raise UsageError(f"snapshot {snapshot_id} cannot be the base of --at "
                             f"{at.describe()}: it is after that point or a gap lies "
                             f"between; leave the ID out to use {base.snapshot_id}")
        base = b
    return Plan(at, base, w, complete)


def _catch_up(ctx: Context, env: EnvironmentConfig, w: pitr_window.Window,
              t: datetime | None) -> pitr_window.Window:
    """The window once a running follower has archived what the server wrote before the
    restore was asked (a write a moment ago is seconds from the archive); ``w`` when no
    follower runs or it does not get there within a few of its intervals."""
    if not follower_running(ctx.repository, env.name):
        return w
    deadline = time.monotonic() + CATCH_UP_INTERVALS * env.binlog_interval + 5.0
    while time.monotonic() < deadline:
        time.sleep(min(0.2, env.binlog_interval))
        w = pitr_window.window(ctx, env)
        if not w.available:
            break
        assert w.end is not None
        if (w.server_checked and w.lag_seconds == 0) or (t is not None and w.end >= t):
            break
    return w


def _gtid_base(repo: Repository, name: str, w: pitr_window.Window,
               gtid: str) -> pitr_window.Base:
    domain, _server, seq = _gtid_parts(gtid)
    where = None
    for r in BinlogArchive(repo, name).records():
        if r.kind != "segment":
            continue
        lo = _seq_in_domain(r.data.get("gtid_first"), domain)
        hi = _seq_in_domain(r.data.get("gtid_last"), domain)
        if lo is not None and hi is not None and lo <= seq <= hi:
            where = r.seq
            break
    if where is None:
        raise UsageError(f"GTID {gtid} is not in the binlog archive of {name}: "
                         f"{w.describe()}")
    best = None
    for b in w.bases:
        bseq = _seq_in_domain(b.gtid, domain)
        gap = any(b.seq < g.seq <= where for g in w.gaps)
        if b.seq <= where and bseq is not None and bseq < seq and not gap:
            best = b
    if best is None:
        raise UsageError(f"no snapshot of {name} precedes GTID {gtid} in the archive: "
                         f"{w.describe()}")
    return best


def _reader(repo: Repository, ref: BlobRef) -> Callable[[], Iterable[bytes]]:
    return lambda: repo.open_blob(ref).iter_chunks()


def pieces(repo: Repository, name: str, base: pitr_window.Base,
           until: datetime | None = None) -> list[mysql.ReplayPiece]:
    """The archived segments from the start of the base position's file on, in order
    (the replay reads the file's Format_description event at its start), up to the first
    gap after the base; with ``until`` (a time stop), up to the first segment whose first
    event is after it and which starts a transaction (it holds the stop). Only those
    records are read."""
    out: list[mysql.ReplayPiece] = []
    archive = BinlogArchive(repo, name)
    seqs = archive.seqs()
    # a record is written after its chunks' index: read the index files written since this
    # process opened the repository (the follower goes on archiving meanwhile)
    repo.load_index()
    i = seqs.index(base.seq)
    # back to the first segment of the base's file, in the same run (no gap between)
    while i > 0:
        prev = archive.load(seqs[i - 1])
        if prev.kind != "segment" or prev.file != base.file:
            break
        i -= 1
    for seq in seqs[i:]:
        r = archive.load(seq)
        if r.kind == "gap":
            break
        ref = r.blob
        if ref is not None:
            out.append(mysql.ReplayPiece(r.file, int(r.data["start"]), r.end,
                                         _reader(repo, ref)))
        # a segment may start inside a transaction: the stop is certainly in one whose
        # events all come after ``until`` and which starts a transaction (a GTID event)
        first = r.data.get("first_time")
        if until is not None and first and r.data.get("gtid_first") and \
                datetime.fromisoformat(str(first).replace("Z", "+00:00")) > until:
            break
    return out
