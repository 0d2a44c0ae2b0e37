"""Binlog retention in prune: the records before the oldest restorable base snapshot's
file start go (their chunks freed), the rest stays readable and contiguous."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from snapkeep.repository import BinlogArchive, Repository, SnapshotManifest
from snapkeep.storage import LocalBackend

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _repo(tmp_path) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"))


def _segment(archive: BinlogArchive, file: str, start: int, end: int,
             first_time: str = "2026-12-05T10:00:00Z") -> bytes:
    data = os.urandom(end - start)
    w = archive.begin_segment()
    w.write(data)
    w.commit({"file": file, "start": start, "end": end, "first_time": first_time})
    return data


def _snapshot(repo: Repository, sid: str, file: str | None, position: int | None, *,
              env: str = "production", created: str = "2026-12-05T11:00:00+00:00",
              expires: str | None = None) -> None:
    s = repo.begin_snapshot()
    ref = s.put_blob(os.urandom(1000))
    desc = {"kind": "mysql", "dump": ref.to_json()}
    if file is not None:
        desc["binlog"] = {"file": file, "position": position, "gtid": "0-1-1",
                          "method": "binlog_snapshot"}
    s.commit(SnapshotManifest(id=sid, project="p", environment=env,
                              environment_type="production", created_at=created,
                              expires_at=expires, live=False, automated=True, commit_id=None,
                              services={"db": desc}))


def _layout(repo: Repository) -> dict[int, bytes]:
    """Three files: .1 in two segments, .2 in three, .3 in one (seq 1..6)."""
    a = BinlogArchive(repo, "production")
    out = {}
    for seq, (file, start, end) in enumerate(
            [("mysql-bin.000001", 4, 100_004), ("mysql-bin.000001", 100_004, 200_000),
             ("mysql-bin.000002", 4, 50_000), ("mysql-bin.000002", 50_000, 150_000),
             ("mysql-bin.000002", 150_000, 300_000), ("mysql-bin.000003", 4, 10_000)],
            start=1):
        out[seq] = _segment(a, file, start, end)
    return out


def _seqs(repo: Repository, stream: str = "production") -> list[int]:
    return [r.seq for r in BinlogArchive(repo, stream).records()]


def _read_all(tmp_path) -> dict[int, bytes]:
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    return {r.seq: fresh.read_blob(r.blob) for r in BinlogArchive(fresh, "production").records()
            if r.blob is not None}


def test_prune_drops_the_records_before_the_oldest_bases_file_start(tmp_path):
    repo = _repo(tmp_path)
    data = _layout(repo)
    _snapshot(repo, "a", "mysql-bin.000002", 160_000)  # inside seq 5
    _snapshot(repo, "b", "mysql-bin.000003", 5_000)
    report = repo.prune(now=NOW)
    # seq 5 holds the position; seqs 3-4 from the start of its file (Format_description)
    assert _seqs(repo) == [3, 4, 5, 6]
    assert report.stats["binlog_records_deleted"] == 2
    assert report.stats["bytes_freed"] >= 190_000  # random bytes: nothing compresses
    assert any("delete 2 archived binlog record(s) of production" in n
               and "snapshot a at mysql-bin.000002:160000" in n for n in report.notes)
    assert _read_all(tmp_path) == {k: data[k] for k in (3, 4, 5, 6)}
    assert repo.check(read_data=True).ok

    repo.forget_snapshot("a")  # the oldest base is now b: file .3 from its start
    repo.prune(now=NOW)
    assert _seqs(repo) == [6]
    assert _read_all(tmp_path) == {6: data[6]}
    assert repo.check(read_data=True).ok


def test_a_position_at_a_segments_end_keeps_from_its_files_start(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "a", "mysql-bin.000001", 200_000)  # the end of file .1
    repo.prune(now=NOW)
    assert _seqs(repo) == [1, 2, 3, 4, 5, 6]
    _snapshot(repo, "b", "mysql-bin.000002", 50_000)
    repo.forget_snapshot("a")
    repo.prune(now=NOW)
    assert _seqs(repo) == [3, 4, 5, 6]


def test_without_a_base_everything_is_kept_and_said(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "nopos", None, None)  # a server without log_bin at the time
    _snapshot(repo, "other-env", "mysql-bin.000003", 5_000, env="staging")
    plan = repo.plan_prune(now=NOW)
    assert plan.binlog_records_dropped == 0
    assert ("binlogs of production: 6 record(s) all kept: no restorable snapshot of it "
            "records a binlog position") in plan.lines()
    repo.prune(now=NOW)
    assert _seqs(repo) == [1, 2, 3, 4, 5, 6]


def test_a_base_not_archived_yet_holds_everything_and_an_expired_one_counts_not(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "ahead", "mysql-bin.000004", 400)  # the follower lags behind it
    repo.prune(now=NOW)
    assert _seqs(repo) == [1, 2, 3, 4, 5, 6]
    _snapshot(repo, "expired", "mysql-bin.000001", 500, expires="2026-12-05T11:59:59+00:00")
    _snapshot(repo, "kept", "mysql-bin.000002", 100_000)
    report = repo.prune(now=NOW)
    assert _seqs(repo) == [3, 4, 5, 6]
    assert report.stats["binlog_records_deleted"] == 2


def test_repeated_file_names_after_reset_master_go_by_time(tmp_path):
    repo = _repo(tmp_path)
    a = BinlogArchive(repo, "production")
    _segment(a, "mysql-bin.000001", 4, 1_000, "2026-12-05T09:00:00Z")
    _segment(a, "mysql-bin.000001", 1_000, 2_000, "2026-12-05T09:10:00Z")
    a.record_gap({"file": "mysql-bin.000001", "start": 2_000, "next_file": "mysql-bin.000001"})
    _segment(a, "mysql-bin.000001", 4, 800, "2026-12-05T10:30:00Z")  # after RESET MASTER
    new = _segment(a, "mysql-bin.000001", 800, 1_600, "2026-12-05T10:40:00Z")
    # 900 is inside seq 1 (old era) and seq 5 (new): the snapshot is of the new era
    _snapshot(repo, "s", "mysql-bin.000001", 900, created="2026-12-05T10:45:00+00:00")
    repo.prune(now=NOW)
    assert _seqs(repo) == [4, 5]  # the old era and its gap are gone
    assert _read_all(tmp_path)[5] == new
    # an old-era snapshot (taken before the reset) keeps the old era
    repo2 = Repository.init(LocalBackend(tmp_path / "two"))
    b = BinlogArchive(repo2, "production")
    _segment(b, "mysql-bin.000001", 4, 1_000, "2026-12-05T09:00:00Z")
    b.record_gap({"file": "mysql-bin.000001", "start": 1_000, "next_file": "mysql-bin.000001"})
    _segment(b, "mysql-bin.000001", 4, 1_600, "2026-12-05T10:30:00Z")
    _snapshot(repo2, "old", "mysql-bin.000001", 900, created="2026-12-05T09:05:00+00:00")
    repo2.prune(now=NOW)
    assert [r.seq for r in BinlogArchive(repo2, "production").records()] == [1, 2, 3]


def test_the_archive_goes_on_after_its_first_records_are_pruned(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "a", "mysql-bin.000003", 5_000)
    repo.prune(now=NOW)
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    archive = BinlogArchive(fresh, "production")  # a follower starting again
    assert archive.last().seq == 6 and _seqs(fresh) == [6]
    more = _segment(archive, "mysql-bin.000003", 10_000, 20_000)
    assert _seqs(fresh) == [6, 7] and _read_all(tmp_path)[7] == more
    assert fresh.check().stats["binlog_records"] == 2


def test_the_plan_changes_nothing_and_is_what_prune_does(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "a", "mysql-bin.000002", 60_000)
    plan = repo.plan_prune(now=NOW)
    assert plan.binlog_records_dropped == 2 and plan.stats()["binlog_records_deleted"] == 2
    assert plan.lines()[0].startswith("delete 2 archived binlog record(s) of production "
                                      "(seq 1 to 2, mysql-bin.000001:4 to "
                                      "mysql-bin.000001:200000)")
    assert _seqs(repo) == [1, 2, 3, 4, 5, 6]
    report = repo.prune(now=NOW)
    assert report.stats["bytes_freed"] == plan.bytes_freed
    assert _seqs(repo) == [3, 4, 5, 6]


def test_check_finds_a_hole_in_the_archive_but_not_a_pruned_front(tmp_path):
    repo = _repo(tmp_path)
    _layout(repo)
    _snapshot(repo, "a", "mysql-bin.000002", 60_000)
    repo.prune(now=NOW)
    assert repo.check().ok  # seq 3..6: a suffix
    repo.backend.delete("binlogs/production/000000000004")
    (problem,) = repo.check().problems
    assert problem.key == "binlogs/production/000000000005"
    assert "binlog record 4 is missing from production's archive" in problem.message
