"""A snapshot that fails on its storage: the failure is that snapshot's alone, and what
it wrote is removed at once (#13 item 8). Real full disks (tmpfs), real packs."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from snapkeep.errors import RepositoryError
from snapkeep.repository import Repository, SnapshotManifest
from snapkeep.repository.packs import PACK_TARGET
from snapkeep.storage import LocalBackend


def manifest(sid: str) -> SnapshotManifest:
    return SnapshotManifest(id=sid, project="p", environment="e", environment_type="development",
                            created_at="2026-12-04T00:00:00+00:00", expires_at=None, live=False,
                            automated=False, commit_id=None)


def stream(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def packs_in(root: Path) -> list[Path]:
    return [p for p in (root / "data").rglob("*") if p.is_file()]


def snapshot(repo: Repository, sid: str, data: bytes) -> None:
    with repo.begin_snapshot() as s:
        w = s.blob_writer()
        w.write(data)
        s.add_ref(w.close())
        s.commit(manifest(sid))


def test_a_full_disk_fails_one_snapshot_its_packs_are_removed_and_the_next_succeeds(tmpfs):
    root = tmpfs("24m") / "repo"
    repo = Repository.init(LocalBackend(root))
    snapshot(repo, "before", stream(1, 1 << 20))
    kept = packs_in(root)
    # Four full packs do not fit: two are written in the background at a time, and the
    # write after the fourth is refused with the failure of one of them.
    with pytest.raises(RepositoryError, match="is full"):
        snapshot(repo, "failed", stream(2, 4 * PACK_TARGET + (4 << 20)))
    left = set(packs_in(root)) - set(kept)
    assert "failed" not in set(repo.snapshot_ids())
    # The same Repository object (a long-lived server's) takes the next snapshot.
    snapshot(repo, "after", stream(3, 3 << 20))
    assert left == set()  # what the failed snapshot wrote was removed when it failed
    assert repo.check(read_data=True).ok
    for sid in ("before", "after"):
        assert repo.verify_snapshot(sid).ok
    reopened = Repository.open(LocalBackend(root))
    assert reopened.check(read_data=True).ok and reopened.verify_snapshot("after").ok


def test_a_failed_session_keeps_the_packs_a_live_session_shares(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root))
    data = stream(4, PACK_TARGET + (6 << 20))  # one full pack and an open one
    failing = repo.begin_snapshot()
    w = failing.blob_writer()
    w.write(data)
    w.close()
    other = repo.begin_snapshot()
    w = other.blob_writer()
    w.write(data)  # every chunk deduplicated against the failing session's packs
    ref = w.close()
    assert other.added_bytes == 0
    failing.close()  # fails: nothing of it may go that the other one needs
    assert failing.discarded is not None and failing.discarded.packs == 0
    other.add_ref(ref)
    other.commit(manifest("shared"))
    assert repo.read_blob(ref) == data
    assert repo.verify_snapshot("shared").ok and repo.check(read_data=True).ok


def test_a_failed_session_removes_only_its_own_packs(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root))
    snapshot(repo, "first", stream(5, 2 << 20))
    kept = packs_in(root)
    s = repo.begin_snapshot()
    w = s.blob_writer()
    w.write(stream(5, 2 << 20))  # deduplicated against the committed snapshot
    w.write(stream(6, PACK_TARGET + (1 << 20)))  # new: a full pack, then an open one
    w.close()
    s.close()
    assert s.discarded is not None and s.discarded.packs == 1 and s.discarded.left == 0
    assert sorted(packs_in(root)) == sorted(kept)
    assert repo.verify_snapshot("first").ok and repo.check(read_data=True).ok
    snapshot(repo, "second", stream(6, 1 << 20))  # the dropped open pack is stored again
    assert repo.verify_snapshot("second").ok


def test_a_failed_write_without_a_session_is_reported_once_and_then_forgotten(tmpfs):
    """A write without a session (no snapshot to fail) learns of a background pack's
    failure at its next store; the store after that works again once there is room — a
    long-lived worker is not failed by an old error until it restarts (issue 19)."""
    root = tmpfs("24m") / "repo"
    repo = Repository.init(LocalBackend(root))
    rng = random.Random(7)
    raised = None
    for i in range(80):  # the second full pack (32 MiB in all) cannot be written
        try:
            repo.store_chunk(rng.randbytes(1 << 20))
        except RepositoryError as e:
            raised = e
            break
        if i >= 32:  # give its upload time to fail, so the open pack stays small
            time.sleep(0.2)
    assert raised is not None and "is full" in str(raised)
    # The same object stores again (the open pack is in memory, and 8 MiB are free for
    # its flush); before, every later store raised the old error.
    data = rng.randbytes(1 << 20)
    cid = repo.store_chunk(data)
    repo.flush()
    assert repo.load_chunk(cid) == data
