"""Prune: deleting unused packs, repacking partly-used ones, refusing when unsafe."""

import random

import pytest

from snapkeep.errors import BusyError, RepositoryError
from snapkeep.repository import BlobRef, Repository, SnapshotManifest
from snapkeep.repository import packs as packs_mod
from snapkeep.repository import prune as prune_mod
from snapkeep.storage import LocalBackend

MiB = 1 << 20


def manifest(sid, **kw):
    return SnapshotManifest(id=sid, project="p", environment="e", environment_type="development",
                            created_at="2026-11-26T00:00:00+00:00", expires_at=None, live=False,
                            automated=False, commit_id=None, **kw)


def stream(seed, size):
    return random.Random(seed).randbytes(size)


def size_of(root):
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture
def repo(tmp_path):
    return Repository.init(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "k")


def snap(repo, sid, blobs=(), reuse=()):
    s = repo.begin_snapshot()
    refs = {f"b{i}": s.put_blob(b).to_json() for i, b in enumerate(blobs)}
    for i, r in enumerate(reuse):
        s.add_ref(r)
        refs[f"r{i}"] = r.to_json()
    s.commit(manifest(sid, services={"x": refs}))
    return {k: BlobRef.from_json(v) for k, v in refs.items()}


def test_prune_deletes_unused_packs_and_keeps_the_rest_readable(repo, tmp_path):
    a = snap(repo, "a", [stream(1, 20 * MiB)])
    b = snap(repo, "b", [stream(2, 20 * MiB)])
    before = size_of(tmp_path / "repo")
    repo.forget_snapshot("a")
    report = Repository.open(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "k").prune()
    assert report.stats["bytes_freed"] > 19 * MiB
    assert before - size_of(tmp_path / "repo") > 19 * MiB
    fresh = Repository.open(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "k")
    assert fresh.read_blob(b["b0"]) == stream(2, 20 * MiB)
    assert fresh.check(read_data=True).ok
    with pytest.raises(Exception, match="missing"):
        fresh.read_blob(a["b0"])


def test_prune_repacks_partly_used_packs(repo, tmp_path):
    # Two small blobs land in the same pack; a later snapshot keeps only one of them.
    first = snap(repo, "a", [stream(3, 3 * MiB), stream(4, 3 * MiB)])
    keep = first["b0"]
    snap(repo, "b", reuse=[keep])
    assert len(list(repo.backend.list("data/"))) == 2  # data pack + reference-list pack
    repo.forget_snapshot("a")
    report = repo.prune(repack_threshold=0.1)
    assert report.stats["packs_repacked"] >= 1 and report.stats["packs_written"] >= 1
    assert report.stats["bytes_freed"] > 2.5 * MiB
    fresh = Repository.open(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "k")
    assert fresh.read_blob(keep) == stream(3, 3 * MiB)
    assert fresh.verify_snapshot("b").ok
    check = fresh.check(read_data=True)
    assert check.ok and check.notes == []
    # Idempotent: nothing left to do.
    again = fresh.prune(repack_threshold=0.1)
    assert again.stats["bytes_freed"] == 0 and again.stats["packs_repacked"] == 0


def test_prune_needs_the_exclusive_lock(repo):
    snap(repo, "a", [b"x" * 1000])
    with repo.begin_snapshot(), pytest.raises(BusyError, match="shared lock"):
        repo.prune()


def test_prune_refuses_snapshots_without_a_reference_list(repo):
    ref = repo.put_blob(b"y" * 1000)
    repo.commit_snapshot(manifest("old", services={"x": {"b": ref.to_json()}}))
    with pytest.raises(RepositoryError, match="without a reference list"):
        repo.prune()
    assert repo.read_blob(ref) == b"y" * 1000


def test_a_prune_interrupted_after_its_new_index_is_finished_by_the_next(repo, tmp_path):
    keep = snap(repo, "a", [stream(5, 3 * MiB), stream(6, 3 * MiB)])["b0"]
    snap(repo, "b", reuse=[keep])
    repo.forget_snapshot("a")
    old_index = sorted(repo.backend.list("index/"))
    old_packs = sorted(repo.backend.list("data/"))
    # Simulate a kill right after the new index is written: put the old files back.
    saved = {k: repo.backend.get(k) for k in old_index + old_packs}
    repo.prune(repack_threshold=0.1)
    for k, v in saved.items():
        repo.backend.put(k, v)
    fresh = Repository.open(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "k")
    assert fresh.read_blob(keep) == stream(5, 3 * MiB)
    check = fresh.check(read_data=True)
    assert check.ok and any("superseded" in n for n in check.notes)
    fresh.prune(repack_threshold=0.1)
    assert not set(fresh.backend.list("index/")) & set(old_index)
    assert fresh.check(read_data=True).ok and fresh.check().notes == []
    assert fresh.read_blob(keep) == stream(5, 3 * MiB)


def contents(backend):
    return {k: backend.get(k) for k in sorted(backend.list(""))}


def test_a_prune_plan_changes_nothing_and_is_what_the_prune_then_does(repo, monkeypatch):
    monkeypatch.setattr(prune_mod, "INDEX_MAX_CHUNKS", 2)  # several new index files
    keep = snap(repo, "a", [stream(7, 3 * MiB), stream(8, 3 * MiB)])["b0"]  # one pack
    snap(repo, "b", reuse=[keep])
    snap(repo, "c", [stream(9, 20 * MiB)])  # a full pack and a partial one
    snap(repo, "d", [stream(10, 2 * MiB)])  # kept as it is
    repo.forget_snapshot("a")
    repo.forget_snapshot("c")
    orphan, data = packs_mod.build_pack(repo.keys, b"", [])  # as a killed writer leaves
    repo.backend.put(packs_mod.pack_key(orphan), data)
    before = contents(repo.backend)

    plan = repo.plan_prune(repack_threshold=0.1)
    assert contents(repo.backend) == before  # byte for byte: nothing written or deleted
    assert plan.keep and plan.drop and plan.repack and list(plan.orphans) == [orphan]
    assert plan.index_files_written > 1 and plan.bytes_freed > 20 * MiB
    lines = plan.lines()
    gone_packs = {packs_mod.pack_key(p) for p in [*plan.drop, *plan.orphans]} \
        | {packs_mod.pack_key(p) for p, _s, _e in plan.repack}
    assert all(any(k in line for line in lines) for k in gone_packs)

    report = repo.prune(repack_threshold=0.1)
    assert report.stats == plan.stats()
    after = contents(repo.backend)
    assert set(before) - set(after) == gone_packs | {
        f"index/{i}" for i in plan.index_files_replaced}
    new = set(after) - set(before)
    assert sorted(len(after[k]) for k in new if k.startswith("data/")) == \
        sorted(size for _n, size in plan.new_packs)
    assert len([k for k in new if k.startswith("index/")]) == plan.index_files_written
    assert repo.read_blob(keep) == stream(7, 3 * MiB) and repo.check(read_data=True).ok


def test_a_prune_plan_with_nothing_to_do(repo):
    snap(repo, "a", [stream(11, MiB)])  # big enough that its pack header is not repacked
    plan = repo.plan_prune()
    assert plan.lines() == [] and plan.bytes_freed == 0 and not plan.changed
    assert repo.prune().stats == plan.stats()
