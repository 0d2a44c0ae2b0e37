import os

import pytest

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository import Repository, SnapshotManifest
from snapkeep.repository.blobs import CHUNK_SIZE, BlobRef
from snapkeep.storage import LocalBackend


@pytest.fixture
def repo(tmp_path):
    return Repository.init(LocalBackend(tmp_path / "repo"))


def test_blobs_round_trip_across_chunk_boundaries(repo):
    data = os.urandom(CHUNK_SIZE * 2 + 123)
    ref = repo.put_blob(data)
    assert ref.size == len(data) and len(ref.chunks) == 3
    assert repo.read_blob(ref) == data
    assert repo.open_blob(ref).read() == data
    assert BlobRef.from_json(ref.to_json()) == ref


def test_identical_content_is_stored_once(repo, tmp_path):
    data = b"x" * 1000
    a, b = repo.put_blob(data), repo.put_blob(data)
    assert a == b
    assert len(list(repo.backend.list("data/"))) == 1


def test_a_flipped_byte_in_a_chunk_is_detected_on_read(repo, tmp_path):
    ref = repo.put_blob(os.urandom(5000))
    (path,) = [p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(IntegrityError, match=ref.chunks[0][0]):
        fresh.read_blob(ref)


def test_a_missing_chunk_is_an_integrity_error(repo, tmp_path):
    ref = repo.put_blob(b"hello")
    for p in (tmp_path / "repo" / "data").rglob("*"):
        if p.is_file():
            p.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        Repository.open(LocalBackend(tmp_path / "repo")).read_blob(ref)


def test_opening_a_directory_without_a_repository_says_how_to_create_one(tmp_path):
    with pytest.raises(RepositoryError, match="snapkeep init"):
        Repository.open(LocalBackend(tmp_path / "none"))


def test_a_snapshot_exists_only_once_its_manifest_is_committed(repo):
    assert list(repo.snapshot_ids()) == []
    m = SnapshotManifest(id="s1", project="p", environment="e", environment_type="development",
                         created_at="2026-11-26T00:00:00+00:00", expires_at=None, live=False,
                         automated=False, commit_id=None)
    repo.commit_snapshot(m)
    assert list(repo.snapshot_ids()) == ["s1"]
    assert repo.load_snapshot("s1") == m
    repo.forget_snapshot("s1")
    assert list(repo.snapshot_ids()) == []
