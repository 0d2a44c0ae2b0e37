"""The volumes engine against real files: snapshots, all-or-nothing restores, recovery."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from snapkeep.engines.volumes import (
    cleanup_leftovers,
    measure_mount,
    prepare_restore,
    snapshot_mount,
)
from snapkeep.errors import ConfigError, IntegrityError, ServiceUnavailable
from snapkeep.repository import Repository
from snapkeep.repository.blobs import BlobRef
from tests.helpers.recording import Recorder
from tests.helpers.trees import (
    MiB,
    killed_between_renames,
    leftovers,
    listing,
    make_tree,
    new_mount,
    siblings,
)

FLAG = ".maintenance.flag"


pytestmark = pytest.mark.usefixtures("no_racy_window")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app root with the mount ``var``, siblings, and a file just outside the mount."""
    root = tmp_path / "app"
    new_mount(root / "var")
    (root / "index.php").write_text("<?php code, never snapshotted")
    (root / "pub" / "media").mkdir(parents=True)
    (root / "pub" / "media" / "cat.jpg").write_bytes(b"\xff\xd8meow")
    (root / "outside.txt").write_text("outside the mount")
    return root


def restore(mount: Path, desc: dict, repo: Repository, **kw) -> None:
    prepared = prepare_restore(mount, desc, repo, Recorder(), **kw)
    prepared.swap()
    prepared.finish()


def test_a_restored_mount_is_identical_to_the_snapshotted_one(app, repo):
    mount = app / "var"
    before = listing(mount)
    rec = Recorder()
    desc = snapshot_mount(mount, repo, rec)
    assert listing(mount) == before, "a snapshot does not change the mount"
    assert desc["kind"] == "volume" and desc["format"] == 3
    assert (desc["reused"], desc["reused_bytes"]) == (0, 0)
    kinds = [v[0] for v in before.values()]
    assert (desc["files"], desc["symlinks"]) == (kinds.count("file"), 4) == (13, 4)
    assert desc["dirs"] == kinds.count("dir") - 1
    assert desc["bytes"] == rec.done == measure_mount(mount)
    json.dumps(desc)

    (mount / "a" / "b" / "c" / "file.txt").write_text("changed")
    (mount / "big.bin").unlink()
    os.chmod(mount / "secret", 0o644)
    rec = Recorder()
    prepared = prepare_restore(mount, desc, repo, rec)
    assert rec.done == desc["bytes"]
    prepared.swap()
    prepared.finish()
    assert listing(mount) == before
    assert leftovers(app) == []


def test_the_tree_blob_is_the_same_for_the_same_mount(app, repo):
    mount = app / "var"
    assert snapshot_mount(mount, repo, Recorder())["tree"] == \
        snapshot_mount(mount, repo, Recorder())["tree"]


def test_file_content_is_streamed_in_pieces_that_span_several_chunks(app, repo):
    desc = snapshot_mount(app / "var", repo, Recorder())
    tree = repo.read_blob(BlobRef.from_json(desc["tree"])).splitlines()
    big = next(json.loads(line) for line in tree if json.loads(line).get("path") == "big.bin")
    assert big["size"] == 6 * MiB + 7 == sum(n for _, n in big["blob"]["chunks"])
    assert len(big["blob"]["chunks"]) > 1


def test_files_added_after_the_snapshot_are_gone_and_siblings_are_untouched(app, repo):
    mount = app / "var"
    before, outside = listing(mount), siblings(app)
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "cache").mkdir()
    (mount / "cache" / "new.bin").write_bytes(b"new")
    (mount / "new.txt").write_text("new")
    (app / "pub" / "media" / "dog.jpg").write_bytes(b"woof")
    outside = siblings(app)
    restore(mount, desc, repo)
    assert listing(mount) == before
    assert siblings(app) == outside
    assert (app / "outside.txt").read_text() == "outside the mount"


def test_keep_carries_the_maintenance_flag_over_from_the_live_mount(app, repo):
    mount = app / "var"
    before = listing(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / FLAG).write_text("paused")
    (mount / "other.txt").write_text("not kept")
    restore(mount, desc, repo, keep=frozenset({FLAG, "not/there"}))
    assert (mount / FLAG).read_text() == "paused"
    after = listing(mount)
    del after[FLAG.encode()]
    root_before, root_after = before.pop(b""), after.pop(b"")
    assert after == before
    assert root_after[:2] == root_before[:2]


def test_keep_replaces_the_snapshots_copy_and_creates_missing_parents(app, repo):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "a" / "b" / "c" / "file.txt").write_text("live")
    (mount / "newdir" / "sub").mkdir(parents=True)
    (mount / "newdir" / "sub" / "flag").write_text("live flag")
    restore(mount, desc, repo, keep=frozenset({"a/b/c/file.txt", "newdir/sub/flag"}))
    assert (mount / "a" / "b" / "c" / "file.txt").read_text() == "live"
    assert (mount / "newdir" / "sub" / "flag").read_text() == "live flag"


def test_excluded_paths_are_not_in_the_snapshot(app, repo):
    mount = app / "var"
    (mount / FLAG).write_text("paused")
    (mount / "cache" / "deep").mkdir(parents=True)
    (mount / "cache" / "deep" / "x").write_text("x")
    desc = snapshot_mount(mount, repo, Recorder(), exclude=frozenset({FLAG, "cache/"}))
    restore(mount, desc, repo)
    assert not (mount / FLAG).exists() and not (mount / "cache").exists()
    assert (mount / "a" / "b" / "c" / "file.txt").exists()


def _with_tree(repo: Repository, desc: dict, tree: bytes) -> dict:
    return {**desc, "tree": repo.put_blob(tree).to_json()}


def test_a_file_whose_content_is_not_in_the_repository_fails_prepare_untouched(app, repo):
    """Byte-level damage to packs is the repository's tests' business; here the engine's
    contract: a chunk that cannot be read stops the restore before the mount is touched."""
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    lines = repo.read_blob(BlobRef.from_json(desc["tree"])).splitlines(keepends=True)
    objs = [json.loads(line) for line in lines]
    big = next(o for o in objs if o.get("path") == "big.bin")
    big["blob"]["chunks"][-1][0] = "00" * 32  # a chunk no repository has
    tree = b"".join(json.dumps(o, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                    for o in objs)
    (mount / "new.txt").write_text("after the snapshot")
    before = listing(mount)
    with pytest.raises(IntegrityError):
        prepare_restore(mount, _with_tree(repo, desc, tree), repo, Recorder())
    assert listing(mount) == before
    assert leftovers(app) == []


def test_a_damaged_tree_fails_prepare_and_leaves_no_staging(app, repo):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    before = listing(mount)
    raw = repo.read_blob(BlobRef.from_json(desc["tree"]))
    for tree in (b"\x01garbage", raw[: len(raw) // 2] + b"{cut\n"):
        with pytest.raises(IntegrityError):
            prepare_restore(mount, _with_tree(repo, desc, tree), repo, Recorder())
        assert listing(mount) == before and leftovers(app) == []


def test_rollback_after_swap_gives_back_the_exact_previous_tree(app, repo):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("newer")
    (mount / "empty-dir").rmdir()
    os.chmod(mount, 0o700)
    previous = listing(mount)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    assert not (mount / "new.txt").exists()
    prepared.rollback()
    assert listing(mount) == previous
    assert leftovers(app) == []


def test_abort_and_rollback_before_swap_only_remove_the_staging_dir(app, repo):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("newer")
    previous = listing(mount)
    for undo in ("abort", "rollback"):
        prepared = prepare_restore(mount, desc, repo, Recorder())
        assert prepared.staging.parent == app and prepared.staging.is_dir()
        getattr(prepared, undo)()
        assert listing(mount) == previous and leftovers(app) == []


def test_a_missing_mount_is_created_by_the_restore_and_removed_by_rollback(app, repo):
    mount = app / "var"
    before = listing(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    prepared = prepare_restore(mount, desc, repo, Recorder())
    os.chmod(mount / "readonly", 0o755)
    os.chmod(mount / "sticky", 0o755)
    shutil.rmtree(mount)
    prepared.swap()
    assert listing(mount) == before
    prepared.rollback()
    assert not mount.exists() and leftovers(app) == []
    restore(mount, desc, repo)
    assert listing(mount) == before


def test_a_symlinked_mount_root_is_restored_at_its_target_and_stays_a_link(tmp_path, repo):
    shared = tmp_path / "shared" / "media"
    shared.mkdir(parents=True)
    (shared / "a.jpg").write_text("a")
    app = tmp_path / "app"
    app.mkdir()
    os.symlink(shared, app / "media")
    desc = snapshot_mount(app / "media", repo, Recorder())
    (shared / "b.jpg").write_text("b")
    restore(app / "media", desc, repo)
    assert (app / "media").is_symlink()
    assert sorted(os.listdir(shared)) == ["a.jpg"]


_KILLED_PREPARE = """
import json, os, sys, threading
from pathlib import Path
from snapkeep.engines.volumes import prepare_restore
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

class Stall:
    lock = threading.Lock()  # writer threads advance at once: say "staging" once
    done = 0
    def log(self, m): pass
    def add_total(self, n): pass
    def advance(self, n):
        with self.lock:
            self.done += n
            if self.done > 3 * 1024 * 1024:
                print("staging", flush=True)
                sys.stdin.read()  # wait here until the test kills the process

repo = Repository.open(LocalBackend(sys.argv[1]))
prepare_restore(Path(sys.argv[2]), json.loads(sys.argv[3]), repo, Stall())
"""


def test_a_restore_killed_during_prepare_leaves_the_mount_intact_and_cleanup_removes_staging(
        app, repo, tmp_path):
    mount = app / "var"
    for i in range(20):
        (mount / f"media-{i:02}.bin").write_bytes(os.urandom(MiB))
    desc = snapshot_mount(mount, repo, Recorder())
    flush = getattr(repo, "flush", None)  # a repository with packs: write them out first
    if flush is not None:
        flush()
    (mount / "new.txt").write_text("after the snapshot")
    before, outside = listing(mount), siblings(app)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PREPARE, str(tmp_path / "repo"), str(mount),
         json.dumps(desc)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
    finally:  # killed whatever it said: a failed check must not wait on it forever
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert line == b"staging\n"
    assert proc.returncode == -signal.SIGKILL
    assert len(leftovers(app)) == 1 and "-staging-" in leftovers(app)[0]
    assert listing(mount) == before
    cleanup_leftovers(mount)
    assert leftovers(app) == []
    assert listing(mount) == before and siblings(app) == outside


@pytest.mark.parametrize("killed_in", ["swap", "rollback"])
def test_a_restore_killed_between_the_two_renames_is_recovered_by_cleanup(
        app, repo, killed_in):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("live data")
    previous = listing(mount)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    killed_between_renames(mount, prepared, killed_in)
    assert not mount.exists()
    cleanup_leftovers(mount)
    assert listing(mount) == previous
    assert leftovers(app) == []


def test_cleanup_leaves_a_completed_swap_and_unrelated_files_alone(app, repo):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    (app / ".var.snapkeep-notes").write_text("not ours")
    (app / ".media.snapkeep-staging-0123456789abcdef").mkdir()
    cleanup_leftovers(mount)
    assert len([n for n in leftovers(app) if "-old-" in n]) == 1
    assert (app / ".var.snapkeep-notes").exists()
    assert (app / ".media.snapkeep-staging-0123456789abcdef").exists()
    prepared.finish()
    assert [n for n in leftovers(app) if n.startswith(".var.")] == [".var.snapkeep-notes"]


def test_a_mount_that_does_not_exist_or_is_not_a_directory_is_a_config_error(tmp_path, repo):
    (tmp_path / "file").write_text("x")
    for path in (tmp_path / "nope", tmp_path / "file"):
        with pytest.raises(ConfigError, match="snapkeep.toml") as e:
            snapshot_mount(path, repo, Recorder())
        assert str(path) in str(e.value)
        with pytest.raises(ConfigError):
            measure_mount(path)


def test_a_restore_into_a_missing_parent_is_a_config_error(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    desc = snapshot_mount(mount, repo, Recorder())
    with pytest.raises(ConfigError, match="parent"):
        prepare_restore(tmp_path / "no" / "m", desc, repo, Recorder())


def test_files_that_vanish_or_change_during_a_live_snapshot_are_logged_not_fatal(
        tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    (mount / "a-growing.log").write_bytes(b"x" * (3 * MiB))
    (mount / "z-vanishing.txt").write_text("gone soon")
    (mount / "zz-dir").mkdir()

    class Meddler(Recorder):
        def advance(self, units: int) -> None:
            super().advance(units)
            if (mount / "z-vanishing.txt").exists():
                (mount / "z-vanishing.txt").unlink()
                (mount / "zz-dir").rmdir()
                with open(mount / "a-growing.log", "ab") as f:
                    f.write(b"more")

    rec = Meddler()
    desc = snapshot_mount(mount, repo, rec)
    assert desc["files"] == 1 and desc["dirs"] == 0
    assert any("changed while it was read" in line for line in rec.lines)
    assert sum("vanished" in line for line in rec.lines) == 2
    lines = [json.loads(line) for line in repo.read_blob(BlobRef.from_json(desc["tree"]))
             .splitlines()]
    grown = next(obj for obj in lines if obj["path"] == "a-growing.log")
    assert "ino" not in grown and "ctime_ns" not in grown, "a changed file is never cached"
    again = snapshot_mount(mount, repo, Recorder(), parent=desc)
    assert again["reused"] == 0 and again["bytes"] == 3 * MiB + 4


def test_sockets_are_skipped_with_a_warning_line(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(mount / "sock"))
        (mount / "latin1-\udce9").write_text("undecodable name")
        (mount / "f").write_text("f")
        rec = Recorder()
        desc = snapshot_mount(mount, repo, rec)
    assert desc["files"] == 2
    assert any(line.startswith("warning: skipped") and "sock" in line for line in rec.lines)
    for line in rec.lines:
        line.encode("utf-8")


def test_an_unreadable_file_is_service_unavailable_naming_it(repo):
    base = Path(tempfile.mkdtemp(prefix="snapkeep-perm-"))
    try:
        os.chmod(base, 0o755)
        mount = base / "m"
        mount.mkdir()
        (mount / "secret").write_text("s")
        os.chmod(mount / "secret", 0o000)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            with pytest.raises(ServiceUnavailable, match="secret"):
                snapshot_mount(mount, repo, Recorder())
        finally:
            if as_root:
                os.seteuid(0)
    finally:
        shutil.rmtree(base)


# -- a mount that is a mount point is swapped by its children ----------------------------------


@pytest.fixture
def mounted(tmp_path: Path):
    """``app/var`` as a real tmpfs mount point (needs root; skipped otherwise)."""
    root = tmp_path / "app"
    (root / "var").mkdir(parents=True)
    (root / "index.php").write_text("code")
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "snapkeep-test", str(root / "var")],
            capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root and mount privileges")
    try:
        make_tree(root / "var", big=3 * MiB)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "var")], check=True)


def inner_leftovers(mount: Path) -> list[str]:
    return sorted(n for n in os.listdir(mount) if n.startswith(".snapkeep-"))


def test_a_mount_point_is_restored_by_swapping_its_children(mounted, repo):
    mount = mounted / "var"
    before, outside = listing(mount), siblings(mounted)
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("new")
    (mount / "a" / "b" / "c" / "file.txt").write_text("changed")
    prepared = prepare_restore(mount, desc, repo, Recorder())
    assert prepared.staging.parent == mount
    prepared.swap()
    assert os.path.ismount(mount)
    prepared.finish()
    assert listing(mount) == before
    assert inner_leftovers(mount) == [] and leftovers(mounted) == []
    assert siblings(mounted) == outside


def test_a_mount_point_rollback_and_abort_give_back_the_exact_previous_tree(mounted, repo):
    mount = mounted / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("new")
    os.chmod(mount, 0o750)
    previous = listing(mount)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    added = listing(mount).keys() - previous.keys()
    assert {k.split(b"/")[0] for k in added} == {prepared.staging.name.encode()}
    prepared.abort()
    assert listing(mount) == previous
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    assert not (mount / "new.txt").exists()
    prepared.rollback()
    assert listing(mount) == previous and inner_leftovers(mount) == []


def test_a_snapshot_of_a_mount_point_skips_the_restores_work_dirs(mounted, repo):
    mount = mounted / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    prepared = prepare_restore(mount, desc, repo, Recorder())
    # the digest, not the tree blob: staging links the unchanged files, which changes their
    # ctimes (the files cache's keys) but not their entries
    assert snapshot_mount(mount, repo, Recorder())["digest"] == desc["digest"]
    prepared.abort()


@pytest.mark.parametrize("killed_in", ["moving out", "moving in", "rolling back"])
def test_a_mount_point_swap_killed_half_way_is_recovered_by_cleanup(mounted, repo, killed_in):
    mount = mounted / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    (mount / "new.txt").write_text("live data")
    previous = listing(mount)
    del previous[b""]  # moving children changes the mount root's mtime
    prepared = prepare_restore(mount, desc, repo, Recorder())
    token = prepared.staging.name.rsplit("-", 1)[1]
    moving, old = mount / f".snapkeep-moving-{token}", mount / f".snapkeep-old-{token}"
    live = sorted(n for n in os.listdir(mount) if not n.startswith(".snapkeep-"))
    if killed_in == "moving out":  # half of the previous children moved aside
        moving.mkdir()
        for name in live[: len(live) // 2]:
            os.rename(mount / name, moving / name)
    elif killed_in == "moving in":  # all moved aside, half of the new ones moved in
        moving.mkdir()
        for name in live:
            os.rename(mount / name, moving / name)
        os.rename(moving, old)
        new = sorted(os.listdir(prepared.staging))
        for name in new[: len(new) // 2]:
            os.rename(prepared.staging / name, mount / name)
    else:  # swap done; rollback moved the new tree to trash and half of the old one back
        prepared.swap()
        prepared.staging.mkdir()
        for name in sorted(n for n in os.listdir(mount) if not n.startswith(".snapkeep-")):
            os.rename(mount / name, prepared.staging / name)
        os.rename(prepared.staging, mount / f".snapkeep-trash-{token}")
        for name in sorted(os.listdir(old))[:3]:
            os.rename(old / name, mount / name)
    cleanup_leftovers(mount)
    after = listing(mount)
    del after[b""]
    assert after == previous
    assert inner_leftovers(mount) == []
