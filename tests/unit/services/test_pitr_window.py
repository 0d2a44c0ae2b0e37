"""The recoverable window from a real repository: archived records with real event
headers, snapshot manifests recording binlog positions (services/pitr_window.py)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapkeep.config import load_config
from snapkeep.repository import BinlogArchive, SnapshotManifest
from snapkeep.services import pitr_window
from snapkeep.services.context import Context
from tests.helpers.clock import ManualClock

T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def _ctx(tmp_path: Path, point_in_time: bool = True, now: datetime = T0) -> Context:
    (tmp_path / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        'database = "mysql://root@127.0.0.1:1/shop"\n'  # never asked: server=False
        f"point_in_time = {'true' if point_in_time else 'false'}\n")
    ctx = Context(load_config(str(tmp_path / "snapkeep.toml")), clock=ManualClock(now))
    if not (tmp_path / "repo").exists():
        ctx.init_repository()
    return ctx


def _events(start: int, times: list[datetime]) -> bytes:
    """Events of 40 bytes each, with real headers (timestamp, size, end offset)."""
    out, pos = b"", start
    for t in times:
        pos += 40
        out += struct.pack("<IBIIIH", int(t.timestamp()), 2, 1, 40, pos, 0) + b"x" * 21
    return out


def _segment(ctx: Context, file: str, start: int, times: list[datetime],
             archived_at: datetime | None = None) -> int:
    archive = BinlogArchive(ctx.repository, "production")
    w = archive.begin_segment()
    w.write(_events(start, times))
    rec = w.commit({"file": file, "start": start, "end": start + 40 * len(times),
                    "events": len(times), "first_time": pitr_window.iso(times[0]),
                    "last_time": pitr_window.iso(max(times))})  # the latest, as the follower
    if archived_at is not None:  # as if archived then (the record is rewritten, sealed)
        _rewrite(ctx, rec.seq, archived_at=pitr_window.iso(archived_at))
    return rec.end


def _rewrite(ctx: Context, seq: int, **fields: str) -> None:
    from snapkeep.repository.binlogs import _ad, segment_key
    from snapkeep.repository.manifest import seal_doc
    archive = BinlogArchive(ctx.repository, "production")
    data = {**archive.load(seq).data, **fields}
    key = segment_key("production", seq)
    ctx.repository.backend.put(key, seal_doc(ctx.repository.keys, data, _ad(key)))


def _snapshot(ctx: Context, sid: str, created: datetime, file: str | None,
              position: int = 0) -> None:
    desc: dict = {"kind": "mysql", "tables": []}
    if file:
        desc["binlog"] = {"file": file, "position": position, "gtid": "0-1-1",
                          "method": "binlog_snapshot"}
    session = ctx.repository.begin_snapshot()
    session.commit(SnapshotManifest(
        id=sid, project="shop", environment="production", environment_type="production",
        created_at=created.isoformat(), expires_at=None, live=True, automated=True,
        commit_id=None, services={"database": desc}))
    session.close()


def s(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def test_without_point_in_time_or_archive_the_window_says_why(tmp_path):
    w = pitr_window.window(_ctx(tmp_path, point_in_time=False), load_config(
        str(tmp_path / "snapkeep.toml")).environments["production"], server=False)
    assert (w.start, w.end, w.lag_seconds, w.point_in_time) == (None, None, None, False)
    assert "point_in_time = true" in w.describe()
    ctx = _ctx(tmp_path)
    w = pitr_window.window(ctx, ctx.config.environments["production"], server=False)
    assert not w.available and not w.archived
    assert "binlog:follow -e production" in w.describe()


def test_the_window_runs_from_the_oldest_base_to_the_last_archived_event(tmp_path):
    ctx = _ctx(tmp_path, now=s(100))
    env = ctx.config.environments["production"]
    end = _segment(ctx, "mysql-bin.000001", 4, [s(1), s(2), s(5), s(9)], archived_at=s(10))
    # a snapshot whose position is after the third event (time 5): reachable from 6 s
    _snapshot(ctx, "a", s(3), "mysql-bin.000001", 4 + 3 * 40)
    _snapshot(ctx, "nopos", s(4), None)  # no position: not a base
    _snapshot(ctx, "later", s(30), "mysql-bin.000001", end + 40 * 5)  # not archived yet
    w = pitr_window.window(ctx, env, server=False)
    assert [b.snapshot_id for b in w.bases] == ["a"]
    assert (w.start, w.end) == (s(6), s(9))
    assert w.lag_seconds == 90.0 and not w.server_checked
    assert w.describe() == ("recoverable from 2026-12-05T12:00:06Z to 2026-12-05T12:00:09Z "
                            "(lag 90 s, server not reached)")
    assert w.covers(s(7)) and not w.covers(s(5)) and not w.covers(s(10))
    assert w.base_for(s(7)).snapshot_id == "a" and w.base_for(s(2)) is None
    # the next segment brings the later snapshot in; a position at a segment's end uses
    # that segment's last time, no bytes read
    _segment(ctx, "mysql-bin.000001", end, [s(20), s(21), s(22), s(23), s(29), s(40)],
             archived_at=s(41))
    w = pitr_window.window(ctx, env, server=False)
    assert [(b.snapshot_id, b.time) for b in w.bases] == [("a", s(6)), ("later", s(30))]
    assert (w.start, w.end, w.lag_seconds) == (s(6), s(40), 59.0)
    assert w.base_for(s(35)).snapshot_id == "later"
    assert w.to_json()["start"] == "2026-12-05T12:00:06Z"


def test_a_gap_cuts_the_window_until_the_next_snapshot(tmp_path):
    ctx = _ctx(tmp_path, now=s(200))
    env = ctx.config.environments["production"]
    end = _segment(ctx, "mysql-bin.000001", 4, [s(1), s(2), s(3)])
    _snapshot(ctx, "a", s(1), "mysql-bin.000001", 44)
    BinlogArchive(ctx.repository, "production").record_gap(
        {"file": "mysql-bin.000001", "start": end, "next_file": "mysql-bin.000003"})
    _segment(ctx, "mysql-bin.000003", 4, [s(50), s(60), s(70)])
    w = pitr_window.window(ctx, env, server=False)
    assert not w.available and w.start is None and w.end == s(70)
    assert "since the gap" in w.describe() and "snapshot:create" in w.describe()
    (gap,) = w.gaps
    assert (gap.lost_from, gap.lost_until, gap.next_file) == (s(3), None, "mysql-bin.000003")
    assert w.ranges == [(s(2), s(3))]  # before the gap, from snapshot a
    _snapshot(ctx, "b", s(55), "mysql-bin.000003", 44)
    w = pitr_window.window(ctx, env, server=False)
    assert (w.start, w.end) == (s(51), s(70))
    assert w.gaps[0].lost_until == s(51)
    assert w.ranges == [(s(2), s(3)), (s(51), s(70))]
    assert w.covers(s(3)) and not w.covers(s(20)) and w.base_for(s(20)) is None
    assert w.base_for(s(60)).snapshot_id == "b" and w.base_for(s(2)).snapshot_id == "a"


def test_records_are_read_once_and_removed_ones_go_at_the_next_full_listing(tmp_path,
                                                                            monkeypatch):
    ctx = _ctx(tmp_path, now=s(100))
    env = ctx.config.environments["production"]
    _segment(ctx, "mysql-bin.000001", 4, [s(1), s(2)])
    _snapshot(ctx, "a", s(1), "mysql-bin.000001", 44)
    end = _segment(ctx, "mysql-bin.000001", 84, [s(3), s(4)])
    assert pitr_window.window(ctx, env, server=False).end == s(4)
    loads = []
    real = BinlogArchive.load

    def counted(self, seq):
        loads.append(seq)
        return real(self, seq)

    monkeypatch.setattr(BinlogArchive, "load", counted)
    _segment(ctx, "mysql-bin.000001", end, [s(9)])
    assert pitr_window.window(ctx, env, server=False).end == s(9)
    assert loads == [3, 4]  # the new record, and the probe that found none after it
    # a record removed (as retention will) stays known until the next full listing
    ctx.repository.backend.delete("binlogs/production/000000000003")
    assert pitr_window.window(ctx, env, server=False).end == s(9)  # not listed yet
    monkeypatch.setattr(pitr_window, "RELIST_SECONDS", 0.0)
    assert pitr_window.window(ctx, env, server=False).end == s(4)


def test_a_reset_binlog_repeating_file_names_finds_the_snapshot_in_its_own_run(tmp_path):
    ctx = _ctx(tmp_path, now=s(5000))
    env = ctx.config.environments["production"]
    _segment(ctx, "mysql-bin.000001", 4, [s(1), s(2), s(3)], archived_at=s(3))
    BinlogArchive(ctx.repository, "production").record_gap(
        {"file": "mysql-bin.000001", "start": 124, "next_file": "mysql-bin.000001"})
    # RESET MASTER: the same name again, from the start, an hour later
    _segment(ctx, "mysql-bin.000001", 4, [s(3600), s(3601), s(3602)], archived_at=s(3602))
    _snapshot(ctx, "old", s(1), "mysql-bin.000001", 44)
    _snapshot(ctx, "new", s(3600), "mysql-bin.000001", 44)
    w = pitr_window.window(ctx, env, server=False)
    assert [(b.snapshot_id, b.seq, b.time) for b in w.bases] == [("old", 1, s(2)),
                                                                  ("new", 3, s(3601))]
    assert (w.start, w.end) == (s(3601), s(3602))
    assert w.ranges == [(s(2), s(3)), (s(3601), s(3602))]


def test_events_a_replay_relogged_with_old_times_pull_neither_the_end_nor_a_base_back(tmp_path):
    """A restore's replay writes the archived events again with their own (old) timestamps:
    archived times are not in order. The window's end is the latest archived second, and a
    base's time is one second after the latest event before it, not the last one."""
    ctx = _ctx(tmp_path, now=s(100))
    env = ctx.config.environments["production"]
    _segment(ctx, "mysql-bin.000001", 4, [s(1), s(2), s(3)])
    _snapshot(ctx, "a", s(1), "mysql-bin.000001", 44)  # after the event at 1 s
    end = _segment(ctx, "mysql-bin.000001", 124, [s(10), s(11)])
    _snapshot(ctx, "b", s(11), "mysql-bin.000001", end)
    _segment(ctx, "mysql-bin.000001", end, [s(5), s(6)])  # a replay of 5 s and 6 s, re-logged
    _snapshot(ctx, "c", s(12), "mysql-bin.000001", end + 40)  # after the one at "5 s"
    w = pitr_window.window(ctx, env, server=False)
    times = {b.snapshot_id: b.time for b in w.bases}
    assert times == {"a": s(2), "b": s(12), "c": s(12)}
    assert (w.start, w.end) == (s(2), s(11))
    assert w.base_for(s(11)).snapshot_id == "a"
    assert w.base_for(s(12)) is None  # after the archive's end: a catch-up or a refusal
    _segment(ctx, "mysql-bin.000001", end + 80, [s(13)])  # the server's next event
    w = pitr_window.window(ctx, env, server=False)
    assert w.end == s(13) and w.base_for(s(12)).snapshot_id in ("b", "c")
