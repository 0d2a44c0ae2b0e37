import hashlib
import json
import random
import threading

import blake3
import pytest

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.repository import EMPTY_BLOB, BlobRef, Repository, SnapshotManifest
from snapkeep.repository import packs as packs_mod
from snapkeep.repository.blobs import Scratch, thread_scratch
from snapkeep.repository.chunks import CDC_MAX
from snapkeep.storage import LocalBackend

CHEAP_KDF = {"t": 1, "m": 1024, "p": 1}
MiB = 1 << 20


def manifest(sid: str, **kw) -> SnapshotManifest:
    return SnapshotManifest(id=sid, project="p", environment="e", environment_type="development",
                            created_at="2026-11-26T00:00:00+00:00", expires_at=None, live=False,
                            automated=False, commit_id=None, **kw)


def stream(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def repo_bytes(root) -> int:
    return sum(p.stat().st_size for p in files(root))


@pytest.fixture
def repo(tmp_path):
    return Repository.init(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "repo.key")


def reopen(tmp_path):
    return Repository.open(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "repo.key")


# -- blobs and chunking ----------------------------------------------------------------------


def test_blobs_round_trip_in_this_process_and_after_reopening(repo, tmp_path):
    data = stream(1, 5 * MiB + 123)
    with repo.blob_writer() as w:
        for i in range(0, len(data), 65_537):
            w.write(data[i:i + 65_537])
    ref = w.close()
    assert ref.size == len(data) and sum(n for _c, n in ref.chunks) == len(data)
    assert len(ref.chunks) >= 2
    assert repo.read_blob(ref) == data  # served from the open pack before any flush
    assert repo.open_blob(ref).read() == data
    assert BlobRef.from_json(ref.to_json()) == ref
    repo.flush()
    fresh = reopen(tmp_path)
    assert fresh.read_blob(ref) == data
    assert b"".join(fresh.open_blob(ref).iter_chunks()) == data
    assert repo.put_blob(b"") == EMPTY_BLOB


def test_chunk_sizes_follow_the_cdc_parameters_stored_in_config(repo):
    cfg = repo.config["chunker"]
    assert (cfg["min"], cfg["avg"], cfg["max"]) == (512 * 1024, MiB, 8 * MiB)
    ref = repo.put_blob(stream(2, 40 * MiB))
    sizes = [n for _c, n in ref.chunks]
    assert all(cfg["min"] <= n <= cfg["max"] for n in sizes[:-1])
    assert 10 <= len(sizes) <= 80


def test_the_same_stream_gives_the_same_chunks_however_writes_split_it(repo):
    data = stream(3, 20 * MiB + 77)
    whole = repo.put_blob(data)
    rng = random.Random(4)
    w = repo.blob_writer()
    i = 0
    while i < len(data):
        n = rng.choice([1, 100, 4096, 65536, MiB, 3 * MiB + 5])
        w.write(memoryview(data)[i:i + n])
        i += n
    assert w.close() == whole


def test_inserting_bytes_in_the_middle_leaves_most_chunks_unchanged(repo):
    data = stream(5, 30 * MiB)
    edited = data[:15 * MiB] + b"inserted bytes" + data[15 * MiB:]
    a = {c for c, _n in repo.put_blob(data).chunks}
    b = {c for c, _n in repo.put_blob(edited).chunks}
    assert len(a & b) >= len(a) - 3


def test_chunk_ids_are_keyed_not_plain_hashes(repo, tmp_path):
    data = b"some content" * 1000
    (cid, _n), = repo.put_blob(data).chunks
    assert cid != blake3.blake3(data).hexdigest() and cid != hashlib.sha256(data).hexdigest()
    other = Repository.init(LocalBackend(tmp_path / "other"), key_file=tmp_path / "other.key")
    assert other.put_blob(data).chunks[0][0] != cid


# -- dedup, threads, layout ------------------------------------------------------------------


def test_a_second_identical_snapshot_adds_almost_nothing(repo, tmp_path):
    data = stream(6, 12 * MiB)
    s1 = repo.begin_snapshot()
    ref1 = s1.put_blob(data)
    m1 = s1.commit(manifest("s1", services={"db": {"rows": ref1.to_json()}}))
    before = repo_bytes(tmp_path / "repo")
    s2 = reopen(tmp_path).begin_snapshot()
    ref2 = s2.put_blob(data)
    m2 = s2.commit(manifest("s2", services={"db": {"rows": ref2.to_json()}}))
    assert ref1 == ref2
    assert m1.added_bytes > len(data) * 0.99
    assert m2.added_bytes < 20_000  # the reference list only
    assert repo_bytes(tmp_path / "repo") - before < 40_000


def test_a_chunk_pending_in_an_open_pack_is_not_stored_twice(repo):
    data = stream(7, 3 * MiB)
    a, b = repo.put_blob(data), repo.put_blob(data)
    assert a == b
    repo.flush()
    (pack,) = list(repo.backend.list("data/"))
    entries = packs_mod.read_header(repo.keys, repo.backend.get(pack))
    assert sorted(e.cid for e in entries) == sorted(c for c, _n in a.chunks)


def test_several_writer_threads_at_once(repo, tmp_path):
    shared = stream(8, 6 * MiB)
    results: dict[int, tuple[bytes, BlobRef]] = {}
    errors = []
    session = repo.begin_snapshot()

    def work(i: int) -> None:
        try:
            data = stream(100 + i, 9 * MiB) + shared
            with session.blob_writer() as w:
                for j in range(0, len(data), 300_001):
                    w.write(data[j:j + 300_001])
            results[i] = (data, w.close())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    session.commit(manifest("s", services={str(i): {"b": r.to_json()} for i, (_d, r)
                                           in results.items()}))
    fresh = reopen(tmp_path)
    for data, ref in results.values():
        assert fresh.read_blob(ref) == data
    assert fresh.check(read_data=True).ok
    assert fresh.verify_snapshot("s").ok


def test_layout_packs_index_manifest_keys_and_config(tmp_path):
    repo = Repository.init(LocalBackend(tmp_path / "repo"), passphrase="pw",
                           kdf_params=CHEAP_KDF)
    s = repo.begin_snapshot()
    ref = s.put_blob(stream(9, 40 * MiB))
    s.commit(manifest("snap1", services={"db": {"rows": ref.to_json()}}))
    root = tmp_path / "repo"
    names = {p.relative_to(root).as_posix() for p in files(root)}
    cfg = json.loads((root / "config").read_text())
    assert cfg["cipher"] == "aes-256-gcm" and cfg["kdf"] == "argon2id" and cfg["version"] == 2
    pack_keys = [n for n in names if n.startswith("data/")]
    assert 2 <= len(pack_keys) <= 4  # ~16 MiB packs
    for key in pack_keys:
        _, sub, pid = key.split("/")
        raw = (root / key).read_bytes()
        assert sub == pid[:2] and blake3.blake3(raw).hexdigest() == pid
        assert packs_mod.read_header(repo.keys, raw)
    index_keys = [n for n in names if n.startswith("index/")]
    assert index_keys and all(blake3.blake3((root / k).read_bytes()).hexdigest() ==
                              k.split("/")[1] for k in index_keys)
    assert "snapshots/snap1" in names
    (slot,) = [n for n in names if n.startswith("keys/")]
    assert json.loads((root / slot).read_text())["kdf"] == "argon2id"
    assert not [n for n in names if n.startswith("locks/")]  # released on commit
    assert repo.load_snapshot("snap1").references is not None


# -- encryption and keys ---------------------------------------------------------------------


def test_a_marker_appears_nowhere_in_the_repository_files(tmp_path):
    marker = b"MARKER-7f3a9c-PLAINTEXT"
    repo = Repository.init(LocalBackend(tmp_path / "repo"), passphrase="pw",
                           kdf_params=CHEAP_KDF)
    s = repo.begin_snapshot()
    compressible = (marker + b" some row data\n") * 50_000
    ref1 = s.put_blob(compressible)
    ref2 = s.put_blob(stream(10, MiB) + marker + stream(11, MiB))
    s.commit(manifest("m1", services={"db": {"rows": ref1.to_json(), "note": marker.decode()}},
                      mounts={"media": {"tree": ref2.to_json()}}))
    found = [p for p in files(tmp_path / "repo") if marker in p.read_bytes()
             or marker.lower() in p.read_bytes()]
    assert found == []
    assert marker in Repository.open(LocalBackend(tmp_path / "repo"),
                                     passphrase="pw").read_blob(ref2)


def test_a_wrong_passphrase_or_key_file_is_refused_clearly(tmp_path):
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, passphrase="right", kdf_params=CHEAP_KDF)
    with pytest.raises(RepositoryError, match="wrong passphrase for the repository at"):
        Repository.open(backend, passphrase="wrong")
    with pytest.raises(RepositoryError, match="is encrypted: give its passphrase"):
        Repository.open(backend)
    other_key = tmp_path / "other.key"
    Repository.init(LocalBackend(tmp_path / "other"), key_file=other_key)
    with pytest.raises(RepositoryError, match="is not the key of the repository"):
        Repository.open(backend, key_file=other_key)
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    with pytest.raises(RepositoryError, match="not a snapkeep key"):
        Repository.open(backend, key_file=junk)
    with pytest.raises(RepositoryError, match="cannot read the key file"):
        Repository.open(backend, key_file=tmp_path / "absent.key")


def test_key_file_is_private_and_both_ways_of_holding_the_key_work(tmp_path):
    backend = LocalBackend(tmp_path / "repo")
    key_file = tmp_path / "keys" / "repo.key"
    repo = Repository.init(backend, passphrase="pw", key_file=key_file, kdf_params=CHEAP_KDF)
    assert key_file.stat().st_mode & 0o777 == 0o600
    ref = repo.put_blob(b"hello")
    repo.flush()
    assert Repository.open(backend, key_file=key_file).read_blob(ref) == b"hello"
    assert Repository.open(backend, passphrase="pw").read_blob(ref) == b"hello"
    status = Repository.open(backend, key_file=key_file).key_status()
    assert status["cipher"] == "aes-256-gcm" and status["protected"] is True
    assert status["key_file"] == str(key_file)
    assert [s["kind"] for s in status["slots"]] == ["passphrase"]


def test_passphrase_change_add_and_export(tmp_path):
    backend = LocalBackend(tmp_path / "repo")
    repo = Repository.init(backend, passphrase="old", kdf_params=CHEAP_KDF)
    ref = repo.put_blob(b"data")
    repo.flush()
    with pytest.raises(RepositoryError, match="wrong passphrase"):
        repo.change_passphrase("nope", "new")
    repo.change_passphrase("old", "new", kdf_params=CHEAP_KDF)
    with pytest.raises(RepositoryError, match="wrong passphrase"):
        Repository.open(backend, passphrase="old")
    again = Repository.open(backend, passphrase="new")
    again.add_passphrase("second", kdf_params=CHEAP_KDF)
    assert Repository.open(backend, passphrase="second").read_blob(ref) == b"data"
    exported = again.export_key()
    assert Repository.open(backend, key=exported).read_blob(ref) == b"data"
    other = Repository.init(LocalBackend(tmp_path / "o"), key_file=tmp_path / "o.key")
    with pytest.raises(RepositoryError, match="not the key"):
        Repository.open(other.backend, key=exported)


def test_an_unprotected_repository_says_so_and_a_passphrase_protects_it(tmp_path):
    backend = LocalBackend(tmp_path / "repo")
    repo = Repository.init(backend)  # no key material: key stored unprotected
    assert repo.key_status()["protected"] is False
    ref = repo.put_blob(b"x" * 100)
    repo.flush()
    assert Repository.open(backend).read_blob(ref) == b"x" * 100
    repo.add_passphrase("pw", kdf_params=CHEAP_KDF)
    assert repo.key_status()["protected"] is True
    with pytest.raises(RepositoryError, match="encrypted"):
        Repository.open(backend)
    assert Repository.open(backend, passphrase="pw").read_blob(ref) == b"x" * 100


def test_a_plaintext_repository_when_encryption_is_off(tmp_path):
    backend = LocalBackend(tmp_path / "repo")
    repo = Repository.init(backend, encrypt=False)
    s = repo.begin_snapshot()
    ref = s.put_blob(stream(12, 2 * MiB))
    s.commit(manifest("p1", services={"x": {"b": ref.to_json()}}))
    fresh = Repository.open(backend)
    assert fresh.read_blob(ref) == stream(12, 2 * MiB)
    assert fresh.key_status()["encrypted"] is False
    assert fresh.check(read_data=True).ok


@pytest.mark.parametrize("encrypt", [True, False], ids=["aes", "plaintext"])
def test_views_into_a_reused_buffer_give_the_same_chunks(tmp_path, encrypt):
    """The restore's read path (``iter_views``): raw and compressed chunks, decrypted into
    one thread's scratch buffers, equal what ``load_chunk`` returns."""
    backend = LocalBackend(tmp_path / "repo")
    repo = (Repository.init(backend, key_file=tmp_path / "repo.key") if encrypt
            else Repository.init(backend, encrypt=False))
    # the random part is longer than the largest chunk, so the blob has several chunks
    # whatever the repository's (random) chunker seed: raw ones, then zstd ones
    data = stream(30, CDC_MAX + MiB) + b"text compresses " * 200_000
    s = repo.begin_snapshot()
    ref = s.put_blob(data)
    s.commit(manifest("v1", services={"x": {"b": ref.to_json()}}))
    fresh = (Repository.open(backend, key_file=tmp_path / "repo.key") if encrypt
             else Repository.open(backend))
    got = [bytes(v) for v in fresh.open_blob(ref).iter_views()]
    assert got == [fresh.load_chunk(cid) for cid, _ in ref.chunks]
    assert b"".join(got) == data and len(got) > 1


def test_a_scratch_buffer_is_reused_while_big_enough():
    scratch = Scratch()
    a = scratch.plain(MiB)
    a[:3] = b"abc"
    b = scratch.plain(MiB // 2)  # the same memory: no new mapping per chunk
    assert b.obj is a.obj and bytes(b[:3]) == b"abc"
    c = scratch.plain(3 * MiB)  # grown once when a chunk needs more
    assert c.obj is not a.obj and len(c) == 3 * MiB
    assert scratch.sealed(10).obj is not c.obj  # sealed bytes and plaintext apart
    assert thread_scratch() is thread_scratch()
    other: list[Scratch] = []
    t = threading.Thread(target=lambda: other.append(thread_scratch()))
    t.start()
    t.join()
    assert other[0] is not thread_scratch()


# -- integrity -------------------------------------------------------------------------------


def flip(path, offset=None):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(raw))


def snapshot_with_data(repo, sid="s1", size=3 * MiB, seed=20):
    s = repo.begin_snapshot()
    ref = s.put_blob(stream(seed, size))
    s.commit(manifest(sid, services={"db": {"rows": ref.to_json()}}))
    return ref


def test_a_flipped_byte_in_a_pack_is_reported_and_a_read_fails(repo, tmp_path):
    ref = snapshot_with_data(repo)
    cid = ref.chunks[-1][0]  # chunk boundaries follow the key: 3 MiB may be one chunk
    key, off, length = repo.locate_chunk(cid)
    flip(tmp_path / "repo" / key, off + length // 2)
    fresh = reopen(tmp_path)
    with pytest.raises(IntegrityError, match=cid):
        fresh.read_blob(ref)
    v = fresh.verify_snapshot("s1")
    assert not v.ok and v.problems[0].key == key and cid in v.problems[0].message
    assert fresh.check(read_data=False).ok  # headers and index are intact
    c = fresh.check(read_data=True)
    assert {p.key for p in c.problems} == {key}
    assert any("does not match its name" in p.message for p in c.problems)
    assert any(cid in p.message for p in c.problems)


def test_a_flipped_byte_in_a_pack_fails_the_restores_view_read(repo, tmp_path):
    ref = snapshot_with_data(repo)
    cid = ref.chunks[-1][0]
    key, off, length = repo.locate_chunk(cid)
    flip(tmp_path / "repo" / key, off + length // 2)
    with pytest.raises(IntegrityError, match=cid):
        for _ in reopen(tmp_path).open_blob(ref).iter_views():
            pass


def test_a_flipped_byte_in_a_pack_header_is_reported(repo, tmp_path):
    snapshot_with_data(repo)
    (pack,) = [p for p in files(tmp_path / "repo" / "data")]
    flip(pack, pack.stat().st_size - 10)
    c = reopen(tmp_path).check()
    assert [p.key for p in c.problems] == [f"data/{pack.parent.name}/{pack.name}"]
    assert "header" in c.problems[0].message


def test_a_flipped_byte_in_an_index_is_reported(repo, tmp_path):
    ref = snapshot_with_data(repo)
    (index,) = files(tmp_path / "repo" / "index")
    flip(index)
    fresh = reopen(tmp_path)
    c = fresh.check()
    key = f"index/{index.name}"
    assert key in {p.key for p in c.problems}
    assert any(p.key == "snapshots/s1" and "missing" in p.message for p in c.problems)
    with pytest.raises(IntegrityError, match="missing"):
        fresh.read_blob(ref)
    with pytest.raises(RepositoryError, match="damaged index"):
        fresh.prune()
    fresh.rebuild_index()  # the pack headers are enough to rebuild it
    assert fresh.read_blob(ref) == stream(20, 3 * MiB)
    assert fresh.check(read_data=True).ok


def test_a_flipped_byte_in_a_manifest_is_reported(repo, tmp_path):
    snapshot_with_data(repo)
    flip(tmp_path / "repo" / "snapshots" / "s1")
    fresh = reopen(tmp_path)
    with pytest.raises(IntegrityError, match="manifest of snapshot s1"):
        fresh.load_snapshot("s1")
    assert [p.key for p in fresh.verify_snapshot("s1").problems] == ["snapshots/s1"]
    assert [p.key for p in fresh.check().problems] == ["snapshots/s1"]


def test_a_manifest_cannot_be_passed_off_as_another_snapshot(repo, tmp_path):
    snapshot_with_data(repo, "s1")
    snaps = tmp_path / "repo" / "snapshots"
    (snaps / "s2").write_bytes((snaps / "s1").read_bytes())
    with pytest.raises(IntegrityError):
        reopen(tmp_path).load_snapshot("s2")


def test_a_missing_pack_is_an_integrity_error(repo, tmp_path):
    ref = snapshot_with_data(repo)
    for p in files(tmp_path / "repo" / "data"):
        p.unlink()
    fresh = reopen(tmp_path)
    with pytest.raises(IntegrityError, match="missing"):
        fresh.read_blob(ref)
    assert any("missing" in p.message for p in fresh.check().problems)


# -- snapshots, sessions, usage --------------------------------------------------------------


def test_opening_a_directory_without_a_repository_says_how_to_create_one(tmp_path):
    with pytest.raises(RepositoryError, match="snapkeep init"):
        Repository.open(LocalBackend(tmp_path / "none"))


def test_a_snapshot_exists_only_once_its_manifest_is_committed(repo):
    assert list(repo.snapshot_ids()) == []
    m = manifest("s1")
    repo.commit_snapshot(m)
    assert list(repo.snapshot_ids()) == ["s1"]
    assert repo.load_snapshot("s1") == m
    repo.forget_snapshot("s1")
    assert list(repo.snapshot_ids()) == []
    with pytest.raises(NotFoundError):
        repo.load_snapshot("s1")


def test_a_session_records_reused_blobs_and_reports_usage(repo, tmp_path):
    base = stream(30, 4 * MiB)
    s1 = repo.begin_snapshot()
    a = s1.put_blob(base)
    s1.commit(manifest("s1", size_bytes=len(base), services={"x": {"b": a.to_json()}}))
    s2 = repo.begin_snapshot()
    s2.add_ref(a)  # reused without rewriting (files cache)
    extra = s2.put_blob(stream(31, 2 * MiB))
    m2 = s2.commit(manifest("s2", services={"x": {"b": a.to_json(), "c": extra.to_json()}}))
    refs = repo.load_references(m2)
    assert {c for c, _n in a.chunks} | {c for c, _n in extra.chunks} <= refs
    u1, u2 = repo.snapshot_usage("s1"), repo.snapshot_usage("s2")
    assert u1["logical_bytes"] == len(base)
    assert u1["unique_bytes"] < 10_000  # everything of s1 is also in s2
    assert 2 * MiB <= u2["unique_bytes"] <= m2.added_bytes + 1000
    assert u2["stored_bytes"] > 6 * MiB
    assert repo.verify_snapshot("s2").ok
    with pytest.raises(IntegrityError, match="missing"):
        repo.begin_snapshot(lock=False).add_ref(BlobRef(1, (("00" * 32, 1),)))


def test_verify_reports_a_blob_the_session_was_not_told_about(repo):
    outside = repo.put_blob(b"not announced")
    s = repo.begin_snapshot()
    s.commit(manifest("s", services={"x": {"b": outside.to_json()}}))
    report = repo.verify_snapshot("s")
    assert any("not in its reference list" in p.message for p in report.problems)


# -- locks -----------------------------------------------------------------------------------


def test_shared_locks_coexist_and_exclusive_is_refused(repo):
    from snapkeep.errors import BusyError

    with repo.lock(), repo.lock(), pytest.raises(BusyError, match="shared lock held by pid"):
        repo.lock(exclusive=True).acquire()
    with repo.lock(exclusive=True):
        with pytest.raises(BusyError, match="exclusive lock held by pid"), repo.lock():
            pass
        with pytest.raises(BusyError):
            repo.begin_snapshot()
    with repo.lock(exclusive=True):
        pass
    assert list(repo.backend.list("locks/")) == []


def test_a_stale_lock_of_a_dead_process_is_removed(repo, caplog):
    import socket
    import subprocess
    import sys
    import time

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    info = {"version": 1, "id": "x" * 32, "host": socket.gethostname(), "pid": dead.pid,
            "user": "u", "exclusive": True, "created": now, "time": now}
    repo.backend.put("locks/" + "x" * 32, json.dumps(info).encode())
    old = dict(info, id="y" * 32, host="elsewhere", pid=1, exclusive=False,
               time=now - 31 * 60)
    repo.backend.put("locks/" + "y" * 32, json.dumps(old).encode())
    live = dict(info, id="z" * 32, host="elsewhere", pid=1, exclusive=False)
    repo.backend.put("locks/" + "z" * 32, json.dumps(live).encode())
    with caplog.at_level("WARNING"), repo.lock():
        pass
    assert "removing stale repository lock" in caplog.text
    assert list(repo.backend.list("locks/")) == ["locks/" + "z" * 32]


def test_a_held_lock_is_refreshed(repo):
    import time

    with repo.lock(refresh_interval=0.01) as lk:
        first = lk.info["time"]
        deadline = time.monotonic() + 30
        while json.loads(repo.backend.get(lk.key))["time"] == first:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_session_never_replaces_an_existing_snapshot(tmp_path):
    from snapkeep.errors import RepositoryError
    from snapkeep.repository import Repository, SnapshotManifest
    from snapkeep.storage import LocalBackend

    repo = Repository.init(LocalBackend(tmp_path / "r"), key_file=tmp_path / "k")

    def manifest() -> SnapshotManifest:
        return SnapshotManifest(id="same", project="p", environment="e",
                                environment_type="development", created_at="2026-11-26T00:00:00",
                                expires_at=None, live=True, automated=False, commit_id=None)

    with repo.begin_snapshot() as s:
        s.put_blob(b"first")
        s.commit(manifest())
    with repo.begin_snapshot() as s, pytest.raises(RepositoryError, match="already exists"):
        s.commit(manifest())


def test_the_digest_writer_names_chunks_as_a_session_stores_them_and_stores_nothing(
        repo, tmp_path):
    data = stream(7, 9 * MiB + 4321)  # over CDC_MAX: more than one chunk whatever the seed
    with repo.begin_snapshot() as session:
        stored = session.put_blob(data)
    repo.flush()
    before = repo_bytes(tmp_path / "repo")
    hashed = repo.digest_writer()
    for i in range(0, len(data), 100_000):  # other write boundaries, the same chunks
        hashed.write(data[i:i + 100_000])
    assert hashed.close() == stored and len(stored.chunks) > 1
    other = repo.digest_writer()
    other.write(stream(8, MiB))
    assert not any(repo.has_chunk(c) for c, _ in other.close().chunks)
    repo.flush()
    assert repo_bytes(tmp_path / "repo") == before


def test_a_blob_read_sparse_gives_chunks_of_zeros_as_lengths_never_loaded(repo):
    page = 16384
    data = stream(3, 40 * page) + bytes(300 * page) + stream(4, 40 * page) + bytes(200 * page)
    with repo.page_writer(page) as w:
        w.write(data)
    ref = w.close()
    zero = {cid for cid, n in ref.chunks if cid == repo.chunk_id(bytes(n))}
    assert zero  # the page chunker cuts runs of zero pages into chunks of their own
    loaded = []
    real = repo.load_chunk_view
    repo.load_chunk_view = lambda cid, scratch: loaded.append(cid) or real(cid, scratch)
    out = bytearray()
    for piece in repo.open_blob(ref).iter_sparse():
        out += bytes(piece) if isinstance(piece, int) else piece
    assert bytes(out) == data
    assert loaded == [cid for cid, _ in ref.chunks if cid not in zero]
