"""The recoverable window of a point-in-time environment: from when to when a restore
``--at`` can reach, how far the archive lags behind the server, and what gaps cut out
(docs/pitr.md, "The recoverable window").

Definitions (all times UTC, whole seconds: binlog events carry whole-second timestamps):

- A **base** is a restorable snapshot of the environment whose MySQL description records a
  ``binlog`` position that the archive covers: a segment of the position's file with
  ``start <= position <= end``. Its ``time`` is the earliest instant a restore from it can
  reach: one second after the latest event timestamp archived before its position (every
  transaction in the dump has a timestamp before it, every later one is in the archive).
  The latest, not the last event's: a replay re-logs events with their old timestamps, so
  archived times are not in order. Within the position's segment it is read from the bytes
  (only the 19-byte event headers); before it, the records' ``last_time`` (each segment's
  latest) say it.
- A **gap** (binlogs purged on the server before they were archived) cuts out everything
  from the last archived event before it (``lost_from``) to the time of the first base
  archived after it (``lost_until``; None while no snapshot has been taken since).
- ``ranges`` are the stretches a restore can reach: from the oldest base after a gap (or
  the archive's start) to the last event before the next gap (or the archive's end).
  ``start``/``end`` are the last range's: ``end`` is the latest archived event time.
- ``lag_seconds``: 0 when the archive ends exactly where the server's binlog does (its
  newest file's size, ``SHOW BINARY LOGS``: every event the server wrote is archived);
  otherwise now minus the last archived event's time — how old the newest recoverable
  second is while the server has newer events (a stopped follower's lag grows from the
  first write after it stopped; an idle server with nothing unarchived lags 0). When the
  server cannot be asked (``server=False``, or it is unreachable), now minus the last
  record's ``archived_at``, with ``server_checked`` False.

Cheap enough for ``environment:info``, ``GET /metrics`` and every console page: records and
manifests never change once written, so each is read once per process (cached by
repository, stream and ``seq`` / snapshot id); a call lists the record keys and the catalog.
"""

from __future__ import annotations

import bisect
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import NotFoundError, SnapkeepError
from snapkeep.policy import is_restorable
from snapkeep.repository import BinlogArchive, BinlogRecord, Repository
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target
from snapkeep.services.snapshots.listing import replica_rows, sync

HEADER = 19  # a binlog event header: timestamp(4) type(1) server_id(4) size(4) log_pos(4) flags(2)


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


@dataclass(frozen=True)
class Base:
    """A snapshot a replay can start from."""

    snapshot_id: str
    created_at: datetime
    file: str
    position: int
    gtid: str | None
    seq: int  # the archive record (segment) holding its position
    time: datetime  # the earliest instant a restore from it reaches

    def to_json(self) -> dict[str, Any]:
        return {"snapshot_id": self.snapshot_id, "created_at": iso(self.created_at),
                "file": self.file, "position": self.position, "gtid": self.gtid,
                "seq": self.seq, "time": iso(self.time)}


@dataclass(frozen=True)
class Gap:
    """Binlogs purged before they were archived: ``file`` from ``position`` to the start of
    ``next_file`` are lost, so no restore reaches ``lost_from`` .. ``lost_until``."""

    seq: int
    file: str
    position: int
    next_file: str
    archived_at: datetime | None
    lost_from: datetime | None  # the last archived event before it (None: none before)
    lost_until: datetime | None  # the first base after it (None: no snapshot since)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "file": self.file, "position": self.position,
                "next_file": self.next_file, "archived_at": iso(self.archived_at),
                "lost_from": iso(self.lost_from), "lost_until": iso(self.lost_until)}

    def describe(self) -> str:
        until = iso(self.lost_until) or "the next snapshot"
        return (f"gap: {self.file}:{self.position} to the start of {self.next_file} were "
                f"purged before they were archived; nothing from "
                f"{iso(self.lost_from) or 'the archive start'} to {until} can be restored")


@dataclass(frozen=True)
class Window:
    """What ``snapshot:restore --at`` can reach for one environment; see the module."""

    environment: str
    start: datetime | None
    end: datetime | None
    lag_seconds: float | None
    gaps: list[Gap] = field(default_factory=list)
    bases: list[Base] = field(default_factory=list)  # oldest first
    ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    point_in_time: bool = True
    archived: bool = False  # the archive has at least one segment
    server_checked: bool = False  # lag measured against the server's binlog end
    last_archived_at: datetime | None = None
    reason: str | None = None  # why there is no window (start is None), for people

    @property
    def available(self) -> bool:
        return self.start is not None and self.end is not None

    def covers(self, t: datetime) -> bool:
        """Whether a restore ``--at t`` is inside one of the recoverable ranges."""
        t = _aware(t)
        return any(a <= t <= b for a, b in self.ranges)

    def base_for(self, t: datetime) -> Base | None:
        """The latest base a restore ``--at t`` starts from (no gap between it and t)."""
        t = _aware(t)
        if not self.covers(t):
            return None
        best = None
        for b in self.bases:
            if b.time <= t and not any(b.seq < g.seq and (g.lost_from is None
                                                          or g.lost_from < t)
                                       for g in self.gaps):
                best = b
        return best

    def describe(self) -> str:
        """``recoverable from … to … (lag N s)``, or why not."""
        if not self.available:
            return self.reason or "not recoverable to a point in time"
        lag = "" if self.lag_seconds is None else f" (lag {self.lag_seconds:.0f} s" + (
            "" if self.server_checked else ", server not reached") + ")"
        return f"recoverable from {iso(self.start)} to {iso(self.end)}{lag}"

    def to_json(self) -> dict[str, Any]:
        return {
            "point_in_time": self.point_in_time, "archived": self.archived,
            "start": iso(self.start), "end": iso(self.end),
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "server_checked": self.server_checked,
            "last_archived_at": iso(self.last_archived_at),
            "gaps": [g.to_json() for g in self.gaps],
            "bases": [b.to_json() for b in self.bases],
            "ranges": [[iso(a), iso(b)] for a, b in self.ranges],
            "summary": self.describe(), "reason": self.reason,
        }


# -- per-process caches: records and manifests never change once written ------------------

RELIST_SECONDS = 600.0  # between full listings of a stream's records (see _Stream)


@dataclass(frozen=True, slots=True)
class _Rec:
    """What the window needs of a record (a few hundred bytes held per record)."""

    kind: str
    seq: int
    file: str
    start: int
    end: int  # a segment's end (a gap: its start)
    last_time: datetime | None  # a segment's last event
    archived_at: datetime | None
    next_file: str | None  # a gap's

    @classmethod
    def of(cls, r: BinlogRecord) -> _Rec:
        d = r.data
        return cls(r.kind, r.seq, sys.intern(r.file), int(d.get("start", 0)),
                   int(d.get("end", d.get("start", 0))), _utc(d.get("last_time")),
                   _utc(d.get("archived_at")), d.get("next_file"))


class _Stream:
    """One stream's records as this process knows them. A look reads only what is new:
    records from the highest ``seq`` known on, until one is missing (one read more than
    there are new records); every ``RELIST_SECONDS`` a full listing drops what was
    removed (retention) — a listing is one request per 1000 keys on S3."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[int, _Rec] = {}
        self.listed_at: float | None = None

    def refresh(self, archive: BinlogArchive) -> list[_Rec]:
        with self.lock:
            now = time.monotonic()
            if self.listed_at is None or now - self.listed_at >= RELIST_SECONDS:
                seqs = archive.seqs()
                keep = set(seqs)
                self.records = {q: r for q, r in self.records.items() if q in keep}
                for q in seqs:
                    if q not in self.records:
                        self.records[q] = _Rec.of(archive.load(q))
                self.listed_at = now
            else:
                q = max(self.records, default=0) + 1
                while True:
                    try:
                        self.records[q] = _Rec.of(archive.load(q))
                    except NotFoundError:
                        break
                    q += 1
            return [self.records[q] for q in sorted(self.records)]


_lock = threading.Lock()
_streams: dict[tuple[str, str], _Stream] = {}
_positions: dict[tuple[str, str], dict[str, Any] | None] = {}
_event_times: dict[tuple[str, str, int, int], int | None] = {}


def _repo_key(repo: Repository) -> str:
    return f"{repo.config.get('id')}@{repo.backend.describe()}"


def _load_records(repo: Repository, stream: str) -> list[_Rec]:
    with _lock:
        cached = _streams.setdefault((_repo_key(repo), stream), _Stream())
    return cached.refresh(BinlogArchive(repo, stream))


def _position(repo: Repository, snapshot_id: str) -> dict[str, Any] | None:
    """The snapshot's recorded binlog position (None: it has none, or is unreadable)."""
    key = (_repo_key(repo), snapshot_id)
    with _lock:
        if key in _positions:
            return _positions[key]
    try:
        desc = repo.load_snapshot(snapshot_id).services.get("database") or {}
    except SnapkeepError:
        return None  # gone or damaged: not a base (not cached: it may be a transient error)
    pos = desc.get("binlog") if isinstance(desc.get("binlog"), dict) else None
    with _lock:
        _positions[key] = pos
    return pos


def _last_event_before(repo: Repository, stream: str, seg: _Rec,
                       position: int) -> int | None:
    """The largest non-zero event timestamp in ``seg``'s bytes before ``position``."""
    key = (_repo_key(repo), stream, seg.seq, position)
    with _lock:
        if key in _event_times:
            return _event_times[key]
    ref = BinlogArchive(repo, stream).load(seg.seq).blob  # the one segment needed
    data = repo.read_blob(ref) if ref is not None else b""
    start = seg.start
    off, best = 0, None
    while off + HEADER <= len(data) and start + off < position:
        ts = int.from_bytes(data[off:off + 4], "little")
        size = int.from_bytes(data[off + 9:off + 13], "little")
        if size < HEADER:
            break  # not an event header: the record does not say what its bytes are
        if start + off + size > position:
            break
        if ts:
            best = ts if best is None else max(best, ts)
        off += size
    with _lock:
        _event_times[key] = best
    return best


def _base_time(repo: Repository, stream: str, records: list[_Rec], latest: list[datetime | None],
               i: int, position: int, created_at: datetime) -> datetime:
    seg = records[i]
    before = latest[i - 1] if i > 0 and records[i - 1].kind == "segment" else None
    last: datetime | None = before
    if position == seg.end:
        last = latest[i]
    elif position > seg.start:
        ts = _last_event_before(repo, stream, seg, position)
        if ts:
            last = _latest([before, datetime.fromtimestamp(ts, UTC)])
    if last is None:  # nothing archived before it: no better bound than its creation
        return _aware(created_at).replace(microsecond=0)
    return last + timedelta(seconds=1)


def _latest(times: Iterable[datetime | None]) -> datetime | None:
    """The latest of ``times`` (None: there is none). Archived events are not in time
    order: a replay re-logs events with their old timestamps, so an archive's newest
    second is the latest event time, not the last event's."""
    return max((t for t in times if t is not None), default=None)


def _running_latest(records: list[_Rec]) -> list[datetime | None]:
    """Per record, the latest event time archived up to and including it since the last
    gap (a gap's own entry is None)."""
    out: list[datetime | None] = []
    run: datetime | None = None
    for r in records:
        run = None if r.kind != "segment" else _latest([run, r.last_time])
        out.append(run)
    return out


class _Segments:
    """The segments by file, for finding the one holding a position: per file and run
    (a reset binlog repeats file names: each appearance of a name after another file is
    a run of its own), the segments in ``start`` order, searched by bisection."""

    def __init__(self, records: list[_Rec]) -> None:
        self.runs: dict[str, list[tuple[list[int], list[int]]]] = {}
        prev: str | None = None
        for i, r in enumerate(records):
            if r.kind != "segment":
                prev = None
                continue
            runs = self.runs.setdefault(r.file, [])
            if r.file != prev or not runs or r.start < self._last_start(runs):
                runs.append(([], []))
            runs[-1][0].append(r.start)
            runs[-1][1].append(i)
            prev = r.file

    @staticmethod
    def _last_start(runs: list[tuple[list[int], list[int]]]) -> int:
        return runs[-1][0][-1] if runs[-1][0] else -1

    def locate(self, records: list[_Rec], file: str, position: int,
               created_at: datetime) -> int | None:
        """The index of the segment holding ``file``:``position`` (of several runs, the
        one nearest the snapshot's creation)."""
        best: tuple[float, int] | None = None
        for starts, idx in self.runs.get(file, ()):
            j = bisect.bisect_right(starts, position) - 1
            for k in (j, j - 1):  # a position at a segment's end is also the next's start
                if k < 0 or not records[idx[k]].start <= position <= records[idx[k]].end:
                    continue
                r = records[idx[k]]
                t = r.last_time or r.archived_at
                dist = abs((t - _aware(created_at)).total_seconds()) if t else float("inf")
                if best is None or dist < best[0]:
                    best = (dist, idx[k])
                break
        return None if best is None else best[1]


def _server_end(env: EnvironmentConfig) -> tuple[str, int] | None:
    """The end of the server's binlog: its newest file and that file's size."""
    from snapkeep.engines import mysql  # the MySQL driver loads only when asked

    target = database_target(env)
    if target is None:
        return None
    logs = mysql.binary_logs(target)
    return logs[-1] if logs else None


def window(ctx: Context, env: EnvironmentConfig, *, server: bool = True) -> Window:
    """The environment's recoverable window (callers check the actor's roles)."""
    name = env.name
    if not env.point_in_time:
        return Window(name, None, None, None, point_in_time=False,
                      reason=f"not recoverable to a point in time: environment {name} does "
                             f"not have point_in_time = true")
    repo = ctx.repository
    records = _load_records(repo, name)
    segments = [r for r in records if r.kind == "segment"]
    if not segments:
        return Window(name, None, None, None,
                      reason=f"not recoverable to a point in time yet: no binlog archived "
                             f"for {name}; run `snapkeep binlog:follow -e {name}`")
    now = _aware(ctx.clock())
    end = newest = _latest(r.last_time for r in segments)
    latest = _running_latest(records)
    last_archived = records[-1].archived_at
    index = _Segments(records)

    # bases: restorable snapshots whose position the archive covers
    sync(ctx)
    # a replica's snapshots are its manifests (the catalog lists the primary's)
    rows = replica_rows(ctx, name) if ctx.replica is not None else \
        ctx.catalog.list_snapshots(name)
    bases: list[Base] = []
    for row in rows:
        if not is_restorable(row.status, row.expires_at, now):
            continue
        pos = _position(repo, row.id)
        if not pos or "file" not in pos or "position" not in pos:
            continue
        i = index.locate(records, str(pos["file"]), int(pos["position"]), row.created_at)
        if i is None:
            continue
        bases.append(Base(row.id, _aware(row.created_at), str(pos["file"]),
                          int(pos["position"]), pos.get("gtid"), records[i].seq,
                          _base_time(repo, name, records, latest, i, int(pos["position"]),
                                     row.created_at)))
    bases.sort(key=lambda b: (b.seq, b.time))

    # gaps, and the ranges between them: a run is the records between two gaps
    gaps: list[Gap] = []
    ranges: list[tuple[datetime, datetime]] = []
    cuts = [r.seq for r in records if r.kind == "gap"]
    start: datetime | None = None
    for lo, hi in zip([0, *cuts], [*cuts, None], strict=True):
        inside = [r for r in segments if r.seq > lo and (hi is None or r.seq < hi)]
        first = min((b.time for b in bases if b.seq > lo and (hi is None or b.seq < hi)),
                    default=None)
        if lo:  # the gap that opened this run
            g = next(r for r in records if r.seq == lo)
            before = [r for r in segments if r.seq < lo]
            gaps.append(Gap(lo, g.file, g.start, str(g.next_file), g.archived_at,
                            _latest(r.last_time for r in before),
                            first))
        last_t = _latest(r.last_time for r in inside)
        if first is None or last_t is None:
            continue
        if hi is None:  # the open run: a base at the very end reaches its own time
            start, last_t = first, max(first, last_t)
        if first <= last_t:
            ranges.append((first, last_t))

    lag, checked = _lag(env, records, newest, now, server)
    reason = None
    if start is None:  # end stays the last archived event's time
        if cuts:
            reason = (f"not recoverable to a point in time since the gap after "
                      f"{iso(gaps[-1].lost_from) or gaps[-1].file}: take a snapshot "
                      f"(`snapkeep snapshot:create -e {name}`) to start a new window")
        else:
            reason = (f"not recoverable to a point in time yet: no snapshot of {name} "
                      f"records a binlog position the archive covers; take one with "
                      f"`snapkeep snapshot:create -e {name}`")
    else:
        end = ranges[-1][1]
    return Window(name, start, end, lag, gaps, bases, ranges, archived=True,
                  server_checked=checked, last_archived_at=last_archived, reason=reason)


def _lag(env: EnvironmentConfig, records: list[_Rec], newest: datetime | None,
         now: datetime, server: bool) -> tuple[float | None, bool]:
    """(lag in seconds, whether the server was asked); ``newest``: the latest archived
    event time."""
    last = records[-1]
    if server:
        try:
            server_end = _server_end(env)
        except Exception:  # noqa: BLE001 - unreachable, or refuses SHOW BINARY LOGS: not asked
            server_end = None
        if server_end is not None:
            archive_end = (last.file, last.end) if last.kind == "segment" else None
            if archive_end == server_end:
                return 0.0, True
            t = newest or last.archived_at
            return (max(0.0, (now - t).total_seconds()) if t else None), True
    t = last.archived_at
    return (max(0.0, (now - t).total_seconds()) if t else None), False
