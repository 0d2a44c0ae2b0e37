"""A prune killed while it deletes archived binlog records leaves a consistent archive: a
suffix of it, every kept record readable, and the next prune finishes the job."""

import os
import subprocess
import sys
import textwrap

from snapkeep.repository import BinlogArchive, Repository, SnapshotManifest
from snapkeep.storage import LocalBackend

PRUNER = textwrap.dedent("""
    import sys
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend
    Repository.open(LocalBackend(sys.argv[1]), key_file=sys.argv[2]).prune()
""")


def test_a_prune_killed_between_record_deletions_leaves_a_suffix(tmp_path):
    root, key = tmp_path / "repo", tmp_path / "k"
    repo = Repository.init(LocalBackend(root), key_file=key)
    archive = BinlogArchive(repo, "production")
    data = {}
    start = 4
    for seq in range(1, 8):  # one file, seven segments
        data[seq] = os.urandom(200_000)
        w = archive.begin_segment()
        w.write(data[seq])
        w.commit({"file": "mysql-bin.000001", "start": start, "end": start + 200_000})
        start += 200_000
    s = repo.begin_snapshot()
    ref = s.put_blob(b"dump")
    # the base is in file .2 (seq 8, below): all of file .1 (seqs 1-7) goes
    s.commit(SnapshotManifest(
        id="base", project="p", environment="production", environment_type="production",
        created_at="2026-12-05T11:00:00+00:00", expires_at=None, live=False, automated=True,
        commit_id=None, services={"db": {"dump": ref.to_json(), "binlog": {
            "file": "mysql-bin.000002", "position": 100, "gtid": "0-1-9",
            "method": "binlog_snapshot"}}}))
    w = archive.begin_segment()  # seq 8: the start of file .2, holding the position
    data[8] = os.urandom(1000)
    w.write(data[8])
    w.commit({"file": "mysql-bin.000002", "start": 4, "end": 1004})

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
               SNAPKEEP_CRASH_AT="prune.binlog-deleted-3")
    done = subprocess.run([sys.executable, "-c", PRUNER, str(root), str(key)], env=env)
    assert done.returncode == -9  # killed after deleting its third record

    fresh = Repository.open(LocalBackend(root), key_file=key)
    records = list(BinlogArchive(fresh, "production").records())
    assert [r.seq for r in records] == [4, 5, 6, 7, 8]  # a suffix: oldest deleted first
    assert all(fresh.read_blob(r.blob) == data[r.seq] for r in records)
    assert fresh.check(read_data=True).ok

    report = fresh.prune()
    assert report.stats["binlog_records_deleted"] == 4
    assert report.stats["bytes_freed"] >= 7 * 200_000  # the killed prune's too
    again = Repository.open(LocalBackend(root), key_file=key)
    (last,) = BinlogArchive(again, "production").records()
    assert last.seq == 8 and again.read_blob(last.blob) == data[8]
    assert again.check(read_data=True).ok
