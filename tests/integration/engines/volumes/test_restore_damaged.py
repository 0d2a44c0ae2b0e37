"""Restoring a mount whatever state its path is in: missing, a regular file or a symlink
(to a file, or through a missing directory) in its place, or a directory full of other
files. The restore brings back exactly the snapshot's tree with the same two-rename
cut-over; a rollback, or the cleanup after a restore killed between the renames, puts
back exactly what was there — and nothing outside the mount is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from snapkeep.engines.volumes import cleanup_leftovers, prepare_restore, snapshot_mount
from snapkeep.engines.volumes.layout import remove_tree
from tests.helpers.recording import Recorder
from tests.helpers.trees import killed_between_renames, leftovers, listing, new_mount, siblings

pytestmark = pytest.mark.usefixtures("no_racy_window")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    new_mount(root / "var", big=1 << 20)
    (root / "index.php").write_text("<?php code, never snapshotted")
    return root


def _replace(mount: Path, make: Callable[[Path], None]) -> None:
    remove_tree(mount)
    make(mount)


def _full_of_other_files(mount: Path) -> None:
    remove_tree(mount / "a")
    (mount / "empty.txt").write_text("not empty any more")
    for i in range(30):
        (mount / f"other-{i}").mkdir()
        (mount / f"other-{i}" / "f.txt").write_text(str(i))
    os.symlink("/nonexistent", mount / "a")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "missing": lambda m: remove_tree(m),
    "a regular file": lambda m: _replace(m, lambda p: p.write_bytes(b"not a directory\n")),
    "a symlink to a file": lambda m: _replace(m, lambda p: os.symlink("index.php", p)),
    "a symlink through a missing directory": lambda m: _replace(
        m, lambda p: os.symlink("no/such/dir/var", p)),
    "an empty directory": lambda m: _replace(m, lambda p: p.mkdir()),
    "full of other files": _full_of_other_files,
}


def path_state(path: Path) -> object:
    """What is at ``path`` itself: nothing, a link (target), a file (bytes) or a tree."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_dir():
        return ("tree", listing(path))
    return ("file", path.read_bytes(), os.lstat(path).st_mode)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_restore_brings_the_snapshots_tree_back_whatever_is_at_the_mount(
        app, repo, damage):
    mount = app / "var"
    before = listing(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    DAMAGES[damage](mount)
    outside = siblings(app)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert not mount.is_symlink()
    assert listing(mount) == before
    assert siblings(app) == outside  # e.g. index.php, the target of a link in its place
    assert leftovers(app) == []


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_rollback_puts_back_exactly_what_was_at_the_mount(app, repo, damage):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    DAMAGES[damage](mount)
    damaged = path_state(mount)
    outside = siblings(app)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    assert path_state(mount) != damaged
    prepared.rollback()
    assert path_state(mount) == damaged
    assert siblings(app) == outside
    assert leftovers(app) == []


@pytest.mark.parametrize("damage", ["a regular file", "a symlink to a file",
                                    "a symlink through a missing directory"])
@pytest.mark.parametrize("killed_in", ["swap", "rollback"])
def test_a_restore_killed_between_the_renames_puts_the_file_or_link_back(
        app, repo, damage, killed_in):
    mount = app / "var"
    desc = snapshot_mount(mount, repo, Recorder())
    DAMAGES[damage](mount)
    damaged = path_state(mount)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    killed_between_renames(mount, prepared, killed_in)
    assert not os.path.lexists(mount)
    cleanup_leftovers(mount)
    assert path_state(mount) == damaged
    assert leftovers(app) == []


def test_a_symlink_to_a_directory_stays_a_deploy_link_restored_at_its_target(app, repo):
    mount = app / "var"
    before = listing(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    shared = app.parent / "shared-var"
    os.rename(mount, shared)
    (shared / "later.txt").write_text("written after the snapshot")
    os.symlink(shared, mount)
    prepared = prepare_restore(mount, desc, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert mount.is_symlink() and listing(shared) == before
