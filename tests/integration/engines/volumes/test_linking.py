"""A restore in place links the live files that already are the snapshot's (content and
every recorded attribute) instead of rewriting them; anything different, or changed
before the cut-over, is written from the repository; the result is always exactly the
snapshot, and a killed restore leaves the mount all old or all new."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snapkeep.engines.volumes import (
    cleanup_leftovers,
    prepare_restore,
    recover_cutover,
    snapshot_mount,
    tree_digest,
)
from snapkeep.engines.volumes import linking as linking_module
from snapkeep.engines.volumes.linking import Prover, try_link
from snapkeep.engines.volumes.tree import FILE, Entry
from snapkeep.repository import Repository
from tests.helpers.recording import Recorder
from tests.helpers.trees import listing

T0 = 1_600_000_000_000_000_000


def inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()}


def sha256s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def leftovers(mount: Path) -> list[str]:
    return sorted(n for n in os.listdir(mount.parent) if "snapkeep" in n)


def media(mount: Path) -> Path:
    """A small media mount: images of several chunks, small files, a read-only dir."""
    (mount / "img" / "a").mkdir(parents=True)
    (mount / "ro").mkdir()
    for i in range(6):
        (mount / "img" / "a" / f"{i}.jpg").write_bytes(os.urandom(300_000 + i * 70_001))
    for name in ("same.txt", "mode.txt", "mtime.txt", "content.txt", "xattr.txt",
                 "twice.txt", "empty.txt", "ro/kept.txt"):
        (mount / name).write_bytes(name.encode() * 100 if name != "empty.txt" else b"")
    os.setxattr(mount / "xattr.txt", "user.tag", b"v1")
    for i, p in enumerate(sorted(mount.rglob("*"), reverse=True)):
        os.utime(p, ns=(T0 + i, T0 + i))
    os.chmod(mount / "ro", 0o555)
    os.utime(mount / "ro", ns=(T0, T0))
    return mount


@pytest.fixture
def snap(tmp_path: Path, repo: Repository) -> tuple[Path, dict]:
    mount = media(tmp_path / "app" / "media")
    return mount, snapshot_mount(mount, repo, Recorder())


def test_identical_files_are_linked_and_the_restored_tree_is_exact(snap, repo):
    mount, desc = snap
    before, ino = listing(mount), inodes(mount)
    rec = Recorder()
    p = prepare_restore(mount, desc, repo, rec)
    staged = inodes(p.staging)
    assert staged == ino  # every file: the live inode, linked
    assert any("unchanged since the snapshot: linked" in m for m in rec.lines)
    assert all(os.lstat(mount / f).st_nlink == 2 for f in ino)
    p.swap()
    p.finish()
    assert inodes(mount) == ino and listing(mount) == before
    assert all(os.lstat(mount / f).st_nlink == 1 for f in ino)  # the old paths: unlinked
    assert tree_digest(mount, repo) == desc["digest"] and leftovers(mount) == []


def test_files_differing_in_content_or_any_attribute_are_written_fresh(snap, repo):
    mount, desc = snap
    want = listing(mount)
    ino = inodes(mount)
    # same size and mtime, other bytes: only the content proof can tell
    with open(mount / "content.txt", "r+b") as f:
        f.write(b"X")
    os.utime(mount / "content.txt", ns=(want[b"content.txt"][3],) * 2)
    os.chmod(mount / "mode.txt", 0o600)
    os.utime(mount / "mtime.txt", ns=(T0 - 5, T0 - 5))
    os.setxattr(mount / "xattr.txt", "user.tag", b"v2")
    os.link(mount / "twice.txt", mount / "twice-link.txt")  # two links in the live tree
    changed = {"content.txt", "mode.txt", "mtime.txt", "xattr.txt", "twice.txt"}
    live_before = {n: (os.lstat(mount / n).st_mode, os.lstat(mount / n).st_mtime_ns)
                   for n in changed}
    p = prepare_restore(mount, desc, repo, Recorder())
    staged = inodes(p.staging)
    assert {n for n in ino if staged[n] != ino[n]} == changed
    # the live inodes of what differs were never touched
    assert {n: (os.lstat(mount / n).st_mode, os.lstat(mount / n).st_mtime_ns)
            for n in changed} == live_before
    p.swap()
    p.finish()
    assert listing(mount) == want and tree_digest(mount, repo) == desc["digest"]
    assert os.getxattr(mount / "xattr.txt", "user.tag") == b"v1"


def test_the_snapshots_hard_links_and_sparse_files_are_written_fresh(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    (mount / "first").write_bytes(b"shared" * 1000)
    os.link(mount / "first", mount / "second")
    with open(mount / "sparse", "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"data")
    (mount / "plain").write_bytes(b"plain" * 1000)
    desc = snapshot_mount(mount, repo, Recorder())
    os.unlink(mount / "second")  # "first" now has one link: the snapshot still has two
    (mount / "second").write_bytes(b"shared" * 1000)
    os.utime(mount / "second", ns=(os.lstat(mount / "first").st_mtime_ns,) * 2)
    ino = inodes(mount)
    p = prepare_restore(mount, desc, repo, Recorder())
    staged = inodes(p.staging)
    assert staged["plain"] == ino["plain"]
    assert staged["first"] == staged["second"] and staged["first"] not in ino.values()
    assert staged["sparse"] != ino["sparse"]
    p.swap()
    p.finish()
    assert tree_digest(mount, repo) == desc["digest"]
    assert os.lstat(mount / "first").st_nlink == 2


def test_a_file_written_between_staging_and_the_cutover_is_rewritten(snap, repo):
    mount, desc = snap
    want, want_sha, ino = listing(mount), sha256s(mount), inodes(mount)
    rec = Recorder()
    p = prepare_restore(mount, desc, repo, rec)
    assert inodes(p.staging) == ino
    # The app, still running, rewrites a linked file in place and puts its mtime back.
    target = mount / "img" / "a" / "2.jpg"
    with open(target, "r+b") as f:
        f.write(os.urandom(4096))
    os.utime(target, ns=(want[b"img/a/2.jpg"][3],) * 2)
    (mount / "ro" / "kept.txt").write_bytes(b"other")  # and one in a read-only dir
    p.swap()
    assert any("2 linked files" in m and "rewritten" in m for m in rec.lines)
    new = inodes(mount)
    assert new["img/a/2.jpg"] != ino["img/a/2.jpg"] and new["ro/kept.txt"] != ino["ro/kept.txt"]
    assert {n for n in new if new[n] == ino[n]} == set(ino) - {"img/a/2.jpg", "ro/kept.txt"}
    p.finish()
    assert listing(mount) == want and sha256s(mount) == want_sha
    assert tree_digest(mount, repo) == desc["digest"]


def test_a_rollback_gives_back_the_previous_tree_and_its_shared_inodes_untouched(snap, repo):
    mount, desc = snap
    (mount / "mode.txt").chmod(0o640)
    (mount / "new.txt").write_text("added after")
    before, ino = listing(mount), inodes(mount)
    p = prepare_restore(mount, desc, repo, Recorder())
    p.swap()
    assert (mount / "new.txt").exists() is False
    p.rollback()
    assert listing(mount) == before and inodes(mount) == ino and leftovers(mount) == []
    assert all(os.lstat(mount / f).st_nlink == 1 for f in ino)


def test_a_file_linked_within_the_racy_window_is_not_trusted(tmp_path, repo):
    """The link's ctime is recorded; a change in the same clock tick would not change it,
    so the proof waits until the clock has passed it by the files cache's window."""
    live, staging = tmp_path / "live", tmp_path / "staging"
    live.mkdir()
    staging.mkdir()
    data = os.urandom(10_000)
    (live / "f").write_bytes(data)
    st = os.lstat(live / "f")
    entry = Entry(b"f", FILE, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns,
                  len(data), blob=repo.put_blob(data))
    lfd, sfd = os.open(live, os.O_RDONLY), os.open(staging, os.O_RDONLY)
    try:
        item = try_link(lfd, sfd, b"f", entry)
        assert item is not None
        prover = Prover(repo)
        assert not prover.proven(sfd, b"f", item)  # linked just now
        linking_module.wait_out_racy_window(item.keys[4])
        assert prover.proven(sfd, b"f", item)
        (staging / "f").write_bytes(data)  # same bytes, but the inode changed: no proof
        assert not prover.proven(sfd, b"f", item)
    finally:
        os.close(lfd)
        os.close(sfd)


# -- killed with SIGKILL at the new crash points ---------------------------------------------

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from snapkeep.engines.volumes import cutover_record, prepare_restore
    from snapkeep.progress import NullReporter
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend

    repo_dir, desc_file, mount, record_file, then = sys.argv[1:]
    mount = Path(mount)
    repo = Repository.open(LocalBackend(repo_dir))
    p = prepare_restore(mount, json.loads(Path(desc_file).read_text()), repo, NullReporter())
    Path(record_file).write_text(json.dumps(cutover_record(p)))  # the journal's part
    with open(mount / "img" / "a" / "1.jpg", "r+b") as f:  # the app writes a linked file
        f.write(b"app write")
    p.swap()
    if then == "kill-swapped":
        os.kill(os.getpid(), signal.SIGKILL)
    p.finish()
""")


@pytest.mark.parametrize("crash_at", ["volumes.linked", "volumes.rewritten-1",
                                      "volumes.rechecked", "kill-swapped"])
def test_a_restore_killed_at_a_linking_step_leaves_the_mount_all_old(
        snap, repo, tmp_path, crash_at):
    mount, desc = snap
    (tmp_path / "desc.json").write_text(json.dumps(desc))
    repo.flush()  # the child reads the packs from disk
    record_file = tmp_path / "record.json"
    env = {**os.environ, "SNAPKEEP_CRASH_AT": crash_at}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "repo"), str(tmp_path / "desc.json"),
         str(mount), str(record_file), crash_at], env=env, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if crash_at == "volumes.linked":  # killed while staging: no record yet
        assert not record_file.exists()
        want = listing(mount)
        cleanup_leftovers(mount)
    else:
        # the previous tree as it was when the process died: with the app's write
        record = json.loads(record_file.read_text())
        if crash_at == "kill-swapped":
            old = mount.parent / f".{mount.name}.snapkeep-old-{record['token']}"
            want = listing(old)
        else:
            want = listing(mount)
        recover_cutover(record, keep_new=False)
    assert listing(mount) == want and leftovers(mount) == []
    assert (mount / "img" / "a" / "1.jpg").read_bytes().startswith(b"app write") \
        == (crash_at != "volumes.linked")
    assert all(p.lstat().st_nlink == 1 for p in mount.rglob("*") if p.is_file())


def test_a_restore_killed_after_its_swap_is_kept_new_exactly(snap, repo, tmp_path):
    mount, desc = snap
    want = listing(mount)
    (tmp_path / "desc.json").write_text(json.dumps(desc))
    repo.flush()  # the child reads the packs from disk
    record_file = tmp_path / "record.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "repo"), str(tmp_path / "desc.json"),
         str(mount), str(record_file), "kill-swapped"], capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    recover_cutover(json.loads(record_file.read_text()), keep_new=True)
    assert listing(mount) == want and leftovers(mount) == []
    assert tree_digest(mount, repo) == desc["digest"]
