"""Archived binlog segments: sealed records in order, durable only once their data is, kept
by prune."""

from __future__ import annotations

import os

from snapkeep.repository import BinlogArchive, Repository
from snapkeep.storage import LocalBackend


def _repo(tmp_path) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"))


def _segment(archive: BinlogArchive, data: bytes, start: int) -> None:
    w = archive.begin_segment()
    w.write(data)
    w.commit({"file": "mysql-bin.000001", "start": start, "end": start + len(data)})


def test_segments_are_listed_in_order_and_read_back(tmp_path):
    repo = _repo(tmp_path)
    archive = BinlogArchive(repo, "production")
    one, two = os.urandom(300_000), os.urandom(1000)
    _segment(archive, one, 4)
    _segment(archive, two, 4 + len(one))
    archive.record_gap({"file": "mysql-bin.000001", "start": 4 + len(one) + len(two),
                        "next_file": "mysql-bin.000003"})
    again = BinlogArchive(_repo(tmp_path), "production")  # another process
    records = list(again.records())
    assert [(r.seq, r.kind) for r in records] == [(1, "segment"), (2, "segment"), (3, "gap")]
    assert b"".join(repo.read_blob(r.blob) for r in records if r.blob) == one + two
    assert again.last().data["next_file"] == "mysql-bin.000003"
    assert list(BinlogArchive(repo, "staging").records()) == []


def test_an_aborted_segment_leaves_no_record_and_its_packs_go(tmp_path):
    repo = _repo(tmp_path)
    archive = BinlogArchive(repo, "production")
    w = archive.begin_segment()
    w.write(os.urandom(5 << 20))
    w.abort()
    assert archive.last() is None
    assert not list(repo.backend.list("data/"))
    assert not list(repo.backend.list("locks/"))


def test_prune_keeps_the_chunks_of_archived_segments(tmp_path):
    repo = _repo(tmp_path)
    archive = BinlogArchive(repo, "production")
    data = os.urandom(2 << 20)
    _segment(archive, data, 4)
    garbage = repo.begin_snapshot()  # chunks no snapshot or segment references
    garbage.put_blob(os.urandom(1 << 20))
    repo.flush()
    garbage.committed = True  # keep its packs, as a killed process would
    garbage.close()
    report = repo.prune()
    assert report.stats["packs_deleted"] + report.stats["packs_repacked"] >= 1
    fresh = _repo(tmp_path)
    (record,) = BinlogArchive(fresh, "production").records()
    assert fresh.read_blob(record.blob) == data


def test_check_reports_a_segment_whose_pack_is_gone(tmp_path):
    repo = _repo(tmp_path)
    archive = BinlogArchive(repo, "production")
    _segment(archive, os.urandom(100_000), 4)
    assert repo.check().ok and repo.check().stats["binlog_records"] == 1
    for key in list(repo.backend.list("data/")):
        repo.backend.delete(key)
    (problem,) = [p for p in _repo(tmp_path).check().problems if p.key.startswith("binlogs/")]
    assert problem.key == "binlogs/production/000000000001" and "missing pack" in problem.message


def _foreign_lease(repo, stream: str, host: str, pid: int, age: float) -> str:
    import json
    import time
    key = f"binlogs/{stream}/lease-0123456789abcdef"
    t = time.time() - age
    repo.backend.put(key, json.dumps({"host": host, "pid": pid, "since": t,
                                      "time": t}).encode())
    return key


def test_a_live_lease_of_another_host_refuses_a_second_follower(tmp_path):
    import pytest

    from snapkeep.errors import BusyError
    from snapkeep.repository import FollowerLease

    repo = _repo(tmp_path)
    _segment(BinlogArchive(repo, "production"), os.urandom(1000), 4)
    key = _foreign_lease(repo, "production", "db-replica-7", 4242, age=5)
    with pytest.raises(BusyError, match="a binlog follower of production runs on "
                                        "db-replica-7 \\(pid 4242"):
        FollowerLease(repo, "production").acquire()
    assert sorted(repo.backend.list("binlogs/production/")) == [
        "binlogs/production/000000000001", key]  # its own lease withdrawn
    lease = FollowerLease(repo, "staging").acquire()  # another stream is free
    lease.release()
    # leases are not records: listing, check and prune pass them by
    assert [r.seq for r in BinlogArchive(repo, "production").records()] == [1]
    assert repo.check().ok and repo.check().stats["binlog_records"] == 1
    repo.prune()
    assert repo.backend.exists(key)


def test_a_stale_lease_or_a_dead_local_pid_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    from snapkeep.repository import FollowerLease
    from snapkeep.repository.binlogs import LEASE_STALE_S

    repo = _repo(tmp_path)
    logged: list[str] = []
    old = _foreign_lease(repo, "production", "db-replica-7", 4242, age=LEASE_STALE_S + 1)
    lease = FollowerLease(repo, "production", logged.append).acquire()
    assert not repo.backend.exists(old) and "removing the stale follower lease" in logged[0]
    lease.release()
    assert list(repo.backend.list("binlogs/")) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout
    mine = _foreign_lease(repo, "production", socket.gethostname(), int(dead), age=1)
    FollowerLease(repo, "production").acquire().release()  # killed -9 here, restarted
    assert not repo.backend.exists(mine)
