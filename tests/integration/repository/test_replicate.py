"""``copy_snapshot`` between two local repositories: the replica's own key, dedup against
what it holds, verified before listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository import BlobRef, Repository, SnapshotManifest, copy_snapshot
from snapkeep.storage import LocalBackend


def snapshot(repo: Repository, sid: str, data: bytes) -> None:
    with repo.begin_snapshot() as s:
        ref = s.put_blob(data)
        s.commit(SnapshotManifest(
            id=sid, project="shop", environment="dev", environment_type="development",
            created_at="2026-12-01T00:00:00+00:00", expires_at=None, live=False,
            automated=False, commit_id=None, services={"database": {"rows": ref.to_json()}}))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Repository, Repository, Path]:
    primary = Repository.init(LocalBackend(tmp_path / "primary"), key_file=tmp_path / "p.key")
    replica = Repository.init_replica(LocalBackend(tmp_path / "replica"), primary,
                                      key_file=tmp_path / "r.key")
    return primary, replica, tmp_path


def test_the_replica_has_its_own_master_key_and_the_primarys_does_not_open_it(pair):
    primary, replica, tmp = pair
    assert replica.keys.master != primary.keys.master
    assert replica.replica_of == primary.config["id"]
    with pytest.raises(RepositoryError, match="is not the key of the repository"):
        Repository.open(LocalBackend(tmp / "replica"), key_file=tmp / "p.key")
    master = primary.keys.master
    assert master is not None
    for f in (tmp / "replica").rglob("*"):
        if f.is_file():
            assert master not in f.read_bytes() and master.hex().encode() not in f.read_bytes()


def test_a_copy_is_readable_with_the_replicas_key_and_the_next_one_sends_only_changes(pair):
    primary, replica, tmp = pair
    data = os.urandom(12 << 20)
    snapshot(primary, "s1", data)
    first = copy_snapshot(primary, replica, "s1")
    assert first.copied and first.chunks_sent == first.chunks
    changed = bytearray(data)
    changed[6 << 20] ^= 1  # one byte: one or two chunks differ
    snapshot(primary, "s2", bytes(changed))
    second = copy_snapshot(primary, replica, "s2")
    assert 0 < second.chunks_sent <= 3 < second.chunks
    assert not copy_snapshot(primary, replica, "s2").copied
    reopened = Repository.open(LocalBackend(tmp / "replica"), key_file=tmp / "r.key")
    assert reopened.verify_snapshot("s2").ok
    m = reopened.load_snapshot("s2")
    assert reopened.read_blob(BlobRef.from_json(m.services["database"]["rows"])) == changed


def test_a_copy_into_a_repository_that_is_no_replica_is_refused(pair):
    primary, _replica, tmp = pair
    other = Repository.init(LocalBackend(tmp / "other"), key_file=tmp / "o.key")
    snapshot(primary, "s1", b"x" * 1000)
    with pytest.raises(RepositoryError, match="is not a replica of"):
        copy_snapshot(primary, other, "s1")


def test_a_chunk_damaged_in_the_replica_fails_the_next_copy_before_it_is_listed(pair):
    primary, replica, tmp = pair
    data = os.urandom(9 << 20)  # over CDC_MAX: s2 shares s1's first chunk whatever the seed
    snapshot(primary, "s1", data)
    copy_snapshot(primary, replica, "s1")
    for f in (tmp / "replica" / "data").rglob("*"):
        if f.is_file():
            f.unlink()  # the packs are gone; the index still names them
    snapshot(primary, "s2", data + b"tail")
    with pytest.raises(IntegrityError, match="missing from the replica"):
        copy_snapshot(primary, replica, "s2")
    assert not replica.has_snapshot("s2")


def test_a_chunk_damaged_in_the_primary_is_not_copied(pair):
    primary, replica, tmp = pair
    snapshot(primary, "s1", os.urandom(2 << 20))
    m = primary.load_snapshot("s1")
    cid = BlobRef.from_json(m.services["database"]["rows"]).chunks[0][0]
    key, offset, _length = primary.locate_chunk(cid)
    pack = tmp / "primary" / key
    data = bytearray(pack.read_bytes())
    data[offset + 20] ^= 1
    pack.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"chunk {cid} .* does not match its hash"):
        copy_snapshot(primary, replica, "s1")
    assert not replica.has_snapshot("s1")
