"""The files cache: an unchanged file is taken from the parent snapshot without reading it."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapkeep.engines.volumes import prepare_restore, snapshot_mount, walk
from snapkeep.engines.volumes.tree import decode_tree, encode_tree
from snapkeep.errors import IntegrityError
from snapkeep.repository import Repository
from snapkeep.repository.blobs import BlobRef
from tests.helpers.recording import Recorder
from tests.helpers.trees import MiB, listing, new_mount

pytestmark = pytest.mark.usefixtures("no_racy_window")  # files made by a test are brand new


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    return new_mount(tmp_path / "app" / "media", big=3 * MiB + 5)


class CountingWriter:
    def __init__(self, owner: CountingRepo, inner: Any) -> None:
        self.owner, self.inner = owner, inner

    def write(self, data: bytes) -> int:
        self.owner.written += len(data)
        return self.inner.write(data)

    def write_from(self, read: Any) -> int:
        n = self.inner.write_from(read)
        self.owner.written += n
        return n

    def close(self) -> BlobRef:
        return self.inner.close()


class CountingRepo:
    """A repository (like the coming snapshot session) that counts what goes through it."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.writers = 0
        self.written = 0
        self.refs: list[BlobRef] = []

    def blob_writer(self) -> CountingWriter:
        self.writers += 1
        return CountingWriter(self, self.repo.blob_writer())

    def open_blob(self, ref: BlobRef) -> Any:
        return self.repo.open_blob(ref)

    def add_ref(self, ref: BlobRef) -> None:
        self.refs.append(ref)


class NoRefRepo:
    """Only what a repository without snapshot sessions offers: no ``add_ref``."""

    def __init__(self, repo: Repository) -> None:
        self.blob_writer, self.open_blob = repo.blob_writer, repo.open_blob


def tree_of(repo: Repository, desc: dict) -> dict[str, dict]:
    lines = repo.read_blob(BlobRef.from_json(desc["tree"])).splitlines()
    return {obj.get("path", obj.get("path_b64")): obj for obj in map(json.loads, lines)}


def restore(mount: Path, desc: dict, repo: Repository) -> None:
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    prepared.finish()


def test_an_unchanged_tree_is_snapshotted_without_reading_a_single_file(mount, repo):
    before = listing(mount)
    first = snapshot_mount(mount, repo, Recorder())
    counting, rec = CountingRepo(repo), Recorder()
    second = snapshot_mount(mount, counting, rec, parent=first)

    assert counting.writers == 1, "only the tree blob is written"
    tree_bytes = BlobRef.from_json(second["tree"]).size
    assert counting.written == tree_bytes
    assert (second["files"], second["bytes"]) == (first["files"], first["bytes"])
    assert first["files"] == 13 and first["bytes"] > 3 * MiB
    assert (second["reused"], second["reused_bytes"]) == (13, first["bytes"])
    assert rec.done == second["bytes"], "progress reaches 100 % for reused files"
    assert any("13 unchanged files reused" in line and f"{first['bytes']} bytes skipped" in line
               and "0 files read" in line for line in rec.lines)
    assert second["tree"] == first["tree"]
    files = [obj for obj in tree_of(repo, first).values() if obj["type"] == "file"]
    assert sorted(r.size for r in counting.refs) == sorted(o["size"] for o in files)
    assert {json.dumps(r.to_json(), sort_keys=True) for r in counting.refs} == \
        {json.dumps(o["blob"], sort_keys=True) for o in files}

    (mount / "a" / "b" / "c" / "file.txt").write_text("changed after the snapshot")
    restore(mount, second, repo)
    assert listing(mount) == before


def test_every_file_entry_carries_its_inode_and_ctime(mount, repo):
    desc = snapshot_mount(mount, repo, Recorder())
    st = os.lstat(mount / "big.bin")
    big = tree_of(repo, desc)["big.bin"]
    assert (big["ino"], big["ctime_ns"]) == (st.st_ino, st.st_ctime_ns)
    assert all("ino" not in obj for obj in tree_of(repo, desc).values() if obj["type"] != "file")


def test_a_touched_file_and_a_new_file_are_read_again(mount, repo):
    first = snapshot_mount(mount, repo, Recorder())
    st = os.lstat(mount / "big.bin")
    os.utime(mount / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    (mount / "a" / "new.txt").write_text("new file")
    before = listing(mount)
    counting = CountingRepo(repo)
    second = snapshot_mount(mount, counting, Recorder(), parent=first)
    assert second["files"] == 14
    assert (second["reused"], second["reused_bytes"]) == (12, first["bytes"] - st.st_size)
    assert counting.written == st.st_size + len("new file") + BlobRef.from_json(
        second["tree"]).size
    (mount / "big.bin").write_bytes(b"garbage")
    restore(mount, second, repo)
    assert listing(mount) == before


def test_a_replaced_file_with_the_same_size_and_mtime_is_read_again(mount, repo):
    target = mount / "a" / "b" / "c" / "file.txt"
    first = snapshot_mount(mount, repo, Recorder())
    st = os.lstat(target)
    new = target.with_name("file.txt.tmp")
    new.write_text("NESTED\n")  # same size; created while the old file exists: a new inode
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, target)
    after = os.lstat(target)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert after.st_ino != st.st_ino
    before = listing(mount)
    second = snapshot_mount(mount, repo, Recorder(), parent=first)
    assert second["reused"] == first["files"] - 1
    restore(mount, second, repo)
    assert listing(mount) == before
    assert target.read_text() == "NESTED\n"


def test_a_file_rewritten_in_place_with_its_mtime_put_back_is_read_again(mount, repo):
    target = mount / "secret"
    first = snapshot_mount(mount, repo, Recorder())
    st = os.lstat(target)
    with open(target, "r+b") as f:
        f.write(b"SECRET")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.lstat(target)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    second = snapshot_mount(mount, repo, Recorder(), parent=first)
    assert second["reused"] == first["files"] - 1, "the ctime gives the rewrite away"
    restore(mount, second, repo)
    assert target.read_text() == "SECRET"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_parent_tree_is_logged_and_every_file_is_read(mount, repo, damage):
    first = snapshot_mount(mount, repo, Recorder())
    raw = repo.read_blob(BlobRef.from_json(first["tree"]))
    bad = b"\x01garbage\n" if damage == "garbage" else raw[: len(raw) // 2] + b"{cut\n"
    parent = {**first, "tree": repo.put_blob(bad).to_json()}
    before = listing(mount)
    counting, rec = CountingRepo(repo), Recorder()
    second = snapshot_mount(mount, counting, rec, parent=parent)
    assert second["reused"] == 0 and counting.refs == []
    assert counting.written == second["bytes"] + BlobRef.from_json(second["tree"]).size
    assert any("cannot be used" in line and "reading every file" in line for line in rec.lines)
    (mount / "big.bin").unlink()
    restore(mount, second, repo)
    assert listing(mount) == before


class RefusingRepo(CountingRepo):
    """A session whose ``add_ref`` finds a reused blob's chunk gone (e.g. pruned)."""

    def add_ref(self, ref: BlobRef) -> None:
        if ref.size > MiB:
            raise IntegrityError(f"chunk {ref.chunks[0][0]} of a reused blob is missing")
        super().add_ref(ref)


def test_a_reused_blob_the_repository_no_longer_has_is_read_again(mount, repo):
    first = snapshot_mount(mount, repo, Recorder())
    big = os.lstat(mount / "big.bin").st_size
    refusing, rec = RefusingRepo(repo), Recorder()
    second = snapshot_mount(mount, refusing, rec, parent=first)
    assert second["reused"] == first["files"] - 1
    assert refusing.written == big + BlobRef.from_json(second["tree"]).size
    assert any("cannot reuse" in line and "big.bin" in line for line in rec.lines)
    assert rec.done == second["bytes"] == first["bytes"]


class ForgetfulRepo(NoRefRepo):
    """A repository without sessions that can tell whether it has a chunk; it has none."""

    def has_chunk(self, cid: str) -> bool:
        return False


def test_without_add_ref_a_blob_whose_chunks_are_gone_is_not_reused(mount, repo):
    first = snapshot_mount(mount, repo, Recorder())
    second = snapshot_mount(mount, ForgetfulRepo(repo), Recorder(), parent=first)
    assert second["reused"] == 1, "only empty.txt, which has no chunk to lose"
    assert second["tree"] == first["tree"]


@pytest.mark.parametrize("parent", [
    {}, {"kind": "mysql", "format": 1, "tree": {"size": 0, "chunks": []}},
    {"kind": "volume", "format": 99, "tree": {"size": 0, "chunks": []}},
    {"kind": "volume", "format": 2}, {"kind": "volume", "format": 2, "tree": "nonsense"},
    {"kind": "volume", "format": 2, "tree": {"size": 3, "chunks": [["00" * 32, 3]]}},
])
def test_a_parent_description_that_is_not_a_readable_volume_tree_is_ignored(mount, repo, parent):
    rec = Recorder()
    desc = snapshot_mount(mount, repo, rec, parent=parent)
    assert desc["reused"] == 0 and desc["files"] == 13
    assert any("cannot be used" in line for line in rec.lines)


def test_a_format_1_parent_is_read_and_never_matches_and_still_restores(mount, repo):
    before = listing(mount)
    current = snapshot_mount(mount, repo, Recorder())
    raw = repo.read_blob(BlobRef.from_json(current["tree"]))
    old = [replace(e, ino=None, ctime_ns=None) for e in decode_tree(io.BytesIO(raw))]
    v1 = {**current, "format": 1, "tree": repo.put_blob(encode_tree(old)).to_json()}
    del v1["reused"], v1["reused_bytes"]
    assert all("ino" not in obj for obj in tree_of(repo, v1).values())
    desc = snapshot_mount(mount, repo, Recorder(), parent=v1)
    assert desc["reused"] == 0 and desc["tree"] == current["tree"]
    (mount / "big.bin").unlink()
    restore(mount, v1, repo)
    assert listing(mount) == before


def test_files_changed_just_before_they_are_read_are_not_cached(mount, repo, monkeypatch):
    """Racily clean files: a later write in the same clock tick could keep every key."""
    monkeypatch.setattr(walk, "RACY_WINDOW_NS", 10**18)  # every file is "too recent"
    first = snapshot_mount(mount, repo, Recorder())
    assert all("ino" not in obj for obj in tree_of(repo, first).values())
    monkeypatch.setattr(walk, "RACY_WINDOW_NS", 0)
    second = snapshot_mount(mount, repo, Recorder(), parent=first)
    assert second["reused"] == 0
    third = snapshot_mount(mount, repo, Recorder(), parent=second)
    assert third["reused"] == 13


def test_a_repository_without_add_ref_gets_the_same_reuse(mount, repo):
    first = snapshot_mount(mount, repo, Recorder())
    second = snapshot_mount(mount, NoRefRepo(repo), Recorder(), parent=first)
    assert second["reused"] == 13 and second["tree"] == first["tree"]


def _rewritten(repo: Repository, desc: dict, edit: Any) -> dict:
    """``desc`` with its tree's lines passed through ``edit(obj) -> bytes``."""
    raw = repo.read_blob(BlobRef.from_json(desc["tree"]))
    lines = [edit(json.loads(line)) for line in raw.splitlines()]
    return {**desc, "tree": repo.put_blob(b"".join(lines)).to_json()}


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_a_parent_entry_that_is_not_valid_only_makes_its_own_file_read(mount, repo):
    """The cache checks a parent line's content fields when it reuses them: one bad line
    costs a read of its file, not the whole cache."""
    first = snapshot_mount(mount, repo, Recorder())

    def edit(obj: dict) -> bytes:
        if obj.get("path") == "big.bin":
            obj["blob"]["size"] += 1  # no longer the file's size
        return _canonical(obj)

    parent = _rewritten(repo, first, edit)
    before = listing(mount)
    counting, rec = CountingRepo(repo), Recorder()
    second = snapshot_mount(mount, counting, rec, parent=parent)
    big = os.lstat(mount / "big.bin").st_size
    assert second["reused"] == first["files"] - 1
    assert counting.written == big + BlobRef.from_json(second["tree"]).size
    assert any("big.bin" in line and "not valid" in line for line in rec.lines)
    assert second["tree"] == first["tree"]
    (mount / "big.bin").write_bytes(b"garbage")
    restore(mount, second, repo)
    assert listing(mount) == before


def test_a_reused_file_gets_the_mode_and_owner_it_has_not_the_parent_line(mount, repo):
    """An unchanged file's parent line is taken over verbatim only when it says what the
    file is: a parent line with another mode (same cache keys) is encoded anew."""
    first = snapshot_mount(mount, repo, Recorder())
    mode = tree_of(repo, first)["big.bin"]["mode"]

    def edit(obj: dict) -> bytes:
        if obj.get("path") == "big.bin":
            obj["mode"] = mode ^ 0o070
        return _canonical(obj)

    second = snapshot_mount(mount, repo, Recorder(), parent=_rewritten(repo, first, edit))
    assert second["reused"] == first["files"]
    assert tree_of(repo, second)["big.bin"]["mode"] == mode
    assert second["tree"] == first["tree"] and second["digest"] == first["digest"]


def test_lines_of_an_older_format_are_encoded_anew(mount, repo):
    """Only lines of the current format are taken over verbatim; a format-2 parent's lines
    (here written with spaces) give the canonical tree all the same."""
    first = snapshot_mount(mount, repo, Recorder())
    spaced = _rewritten(repo, first,
                        lambda obj: json.dumps(obj, sort_keys=True).encode() + b"\n")
    second = snapshot_mount(mount, repo, Recorder(), parent={**spaced, "format": 2})
    assert second["reused"] == first["files"]
    assert second["tree"] == first["tree"] and second["digest"] == first["digest"]


def test_reused_files_are_reported_in_batches_in_order_with_the_files_read(tmp_path, repo):
    """Progress for reused files comes REPORT_EVERY files at a time (a report costs as much
    as a reuse), and what was reused is reported before a file is read."""
    mount = tmp_path / "many"
    mount.mkdir()
    for i in range(2 * walk.REPORT_EVERY + 5):
        (mount / f"f{i:04d}").write_bytes(b"x" * (i + 1))
    first = snapshot_mount(mount, repo, Recorder())
    (mount / "f9999").write_bytes(b"new")  # read after every reused file (tree order)
    rec, seen = Recorder(), []
    rec.on_advance = lambda: seen.append(rec.done)
    second = snapshot_mount(mount, repo, rec, parent=first)
    assert second["reused"] == first["files"]
    assert rec.done == second["bytes"]
    reused = first["bytes"]
    assert len(seen) <= 3 + 1, "two full batches, the rest before the read, the read"
    assert reused in seen, "the reused bytes are reported before the new file's"


def test_a_parent_line_with_a_path_in_both_forms_is_encoded_anew(mount, repo):
    """``path`` wins when a line has both; such a line is not what the encoder writes, so
    it is not taken over verbatim."""
    first = snapshot_mount(mount, repo, Recorder())

    def edit(obj: dict) -> bytes:
        if obj.get("path") == "big.bin":
            obj["path_b64"] = "Ym9ndXM="
        return _canonical(obj)

    second = snapshot_mount(mount, repo, Recorder(), parent=_rewritten(repo, first, edit))
    assert second["reused"] == first["files"]
    assert second["tree"] == first["tree"]


def test_an_unchanged_file_comes_out_of_the_walk_as_its_parent_line(mount, repo):
    from snapkeep.engines.volumes.snapshot import _load_cache
    from snapkeep.engines.volumes.walk import Walk

    first = snapshot_mount(mount, repo, Recorder())
    cache = _load_cache(first, repo, Recorder())
    parent = {line for *_, line in cache.values()}
    w = Walk(mount, repo, Recorder(), cache=cache)
    fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = list(w.entries(fd))
    finally:
        os.close(fd)
    lines = [x for x in out if isinstance(x, bytes)]
    assert len(lines) == w.counts["reused"] == 13 and set(lines) == parent  # no Entry built
    assert b"".join(map(w.line, out)) == repo.read_blob(BlobRef.from_json(first["tree"]))
