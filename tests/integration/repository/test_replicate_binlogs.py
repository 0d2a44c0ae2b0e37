"""``copy_binlogs`` between two local repositories: a stream's archived records the replica
lacks, in seq order, their chunks re-sealed under the replica's key before the records;
idempotent, resumable after a kill, a gap over records the primary pruned first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.errors import RepositoryError
from snapkeep.repository import BinlogArchive, Repository, copy_binlogs
from snapkeep.repository.binlogs import segment_key
from snapkeep.storage import LocalBackend

STREAM = "production"


def segment(archive: BinlogArchive, file: str, start: int, data: bytes) -> None:
    w = archive.begin_segment()
    w.write(data)
    w.commit({"file": file, "start": start, "end": start + len(data), "events": 1,
              "first_time": "2026-12-01T00:00:00Z", "last_time": "2026-12-01T00:00:01Z"})


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Repository, Repository, Path]:
    primary = Repository.init(LocalBackend(tmp_path / "primary"), key_file=tmp_path / "p.key")
    replica = Repository.init_replica(LocalBackend(tmp_path / "replica"), primary,
                                      key_file=tmp_path / "r.key")
    return primary, replica, tmp_path


def _records(repo: Repository) -> list[dict]:
    return [r.data for r in BinlogArchive(repo, STREAM).records()]


def _blobs(repo: Repository) -> list[bytes]:
    return [repo.read_blob(r.blob) for r in BinlogArchive(repo, STREAM).records()
            if r.blob is not None]


def test_the_records_copy_once_and_read_with_the_replicas_key(pair):
    primary, replica, tmp = pair
    archive = BinlogArchive(primary, STREAM)
    data = [os.urandom(300_000) for _ in range(3)]
    segment(archive, "bin.000001", 4, data[0])
    segment(archive, "bin.000001", 4 + len(data[0]), data[1])
    archive.record_gap({"file": "bin.000001", "start": 4 + len(data[0]) + len(data[1]),
                        "next_file": "bin.000003"})
    segment(archive, "bin.000003", 4, data[2])

    first = copy_binlogs(primary, replica, STREAM)
    assert (first.records, first.segments, first.hole) == (4, 3, None)
    assert first.chunks_sent > 0 and first.bytes_sent == sum(map(len, data))
    reopened = Repository.open(LocalBackend(tmp / "replica"), key_file=tmp / "r.key")
    assert _records(reopened) == _records(primary)
    assert _blobs(reopened) == data
    assert reopened.check(read_data=True).ok

    again = copy_binlogs(primary, replica, STREAM)
    assert (again.records, again.chunks_sent) == (0, 0)

    # a new segment whose bytes the replica holds already: its record only
    segment(archive, "bin.000003", 4 + len(data[2]), data[0])
    third = copy_binlogs(primary, replica, STREAM)
    assert (third.records, third.chunks_sent) == (1, 0)
    assert _records(replica) == _records(primary)


def test_a_copy_killed_after_the_chunks_lists_no_record_and_the_next_one_completes(pair):
    primary, replica, tmp = pair
    archive = BinlogArchive(primary, STREAM)
    data = [os.urandom(400_000) for _ in range(2)]
    segment(archive, "bin.000001", 4, data[0])
    segment(archive, "bin.000001", 4 + len(data[0]), data[1])
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from snapkeep.repository import Repository, copy_binlogs\n"
        "from snapkeep.storage import LocalBackend\n"
        "t = Path(sys.argv[1])\n"
        "p = Repository.open(LocalBackend(t / 'primary'), key_file=t / 'p.key')\n"
        "r = Repository.open(LocalBackend(t / 'replica'), key_file=t / 'r.key')\n"
        "copy_binlogs(p, r, 'production')\n")
    env = {**os.environ, "SNAPKEEP_CRASH_AT": "binlog_copy.before_records"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    replica = Repository.open(LocalBackend(tmp / "replica"), key_file=tmp / "r.key")
    assert BinlogArchive(replica, STREAM).seqs() == []  # data written, no record

    res = copy_binlogs(primary, replica, STREAM)
    assert res.records == 2 and res.chunks_sent == 0  # the killed copy's packs reused
    assert _blobs(replica) == data
    assert replica.check(read_data=True).ok


def test_records_the_primary_pruned_before_they_were_copied_are_a_gap_in_the_replica(pair):
    primary, replica, _tmp = pair
    archive = BinlogArchive(primary, STREAM)
    pos = 4
    for _ in range(2):
        segment(archive, "bin.000001", pos, b"a" * 1000)
        pos += 1000
    copy_binlogs(primary, replica, STREAM)  # the replica has 1, 2
    for _ in range(3):
        segment(archive, "bin.000002", 4 if _ == 0 else pos, os.urandom(1000))
        pos = 1004 if _ == 0 else pos + 1000
    for seq in (1, 2, 3, 4):  # retention on the primary: 5 is its first record
        primary.backend.delete(segment_key(STREAM, seq))

    res = copy_binlogs(primary, replica, STREAM)
    assert res.hole is not None and res.hole.seq == 4 and res.hole.data["follows"] == 2
    assert res.records == 1  # record 5
    kept = BinlogArchive(replica, STREAM)
    assert kept.seqs() == [1, 2, 4, 5]
    gap = kept.load(4)
    assert (gap.kind, gap.file, gap.start, gap.data["next_file"]) == \
        ("gap", "bin.000001", 2004, "bin.000002")
    assert replica.check().ok  # the seq jump is the gap's: no hole reported
    primary.backend.delete(segment_key(STREAM, 5))
    BinlogArchive(primary, STREAM).store(kept.load(5))  # same record back: nothing new
    assert copy_binlogs(primary, replica, STREAM).records == 0


def test_a_primary_archive_started_anew_is_refused(pair):
    primary, replica, _tmp = pair
    archive = BinlogArchive(primary, STREAM)
    segment(archive, "bin.000001", 4, b"x" * 500)
    copy_binlogs(primary, replica, STREAM)
    primary.backend.delete(segment_key(STREAM, 1))
    fresh = BinlogArchive(primary, STREAM)
    segment(fresh, "bin.000009", 4, b"y" * 500)
    segment(fresh, "bin.000009", 504, b"z" * 500)
    with pytest.raises(RepositoryError, match="record 1 differs"):
        copy_binlogs(primary, replica, STREAM)
    assert BinlogArchive(replica, STREAM).seqs() == [1]
