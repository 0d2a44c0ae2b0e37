"""A cut-over interrupted by a killed process is settled from its record: the whole mount
back to the previous tree, or the new one kept — never a mix, never a leftover."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.engines.volumes import (
    cutover_record,
    prepare_restore,
    recover_cutover,
    snapshot_mount,
)
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    repo = Repository.init(LocalBackend(tmp_path / "repo"), key_file=tmp_path / "key")
    mount = tmp_path / "app" / "media"
    (mount / "a").mkdir(parents=True)
    (mount / "a" / "old.txt").write_text("snapshot")
    desc = snapshot_mount(mount, repo, NullReporter())
    (mount / "a" / "old.txt").write_text("changed after")
    (mount / "new.txt").write_text("added after")
    return repo, mount, desc


def leftovers(mount: Path) -> list[str]:
    return [n for n in os.listdir(mount.parent) if "snapkeep" in n]


def test_a_swapped_mount_is_rolled_back_to_the_previous_tree(setup):
    repo, mount, desc = setup
    before = files(mount)
    p = prepare_restore(mount, desc, repo, NullReporter())
    record = cutover_record(p)
    p.swap()  # ... and the process dies here
    assert files(mount) == {"a/old.txt": b"snapshot"}
    recover_cutover(record, keep_new=False)
    assert files(mount) == before and leftovers(mount) == []


def test_a_swapped_mount_is_kept_when_the_cutover_had_completed(setup):
    repo, mount, desc = setup
    p = prepare_restore(mount, desc, repo, NullReporter())
    record = cutover_record(p)
    p.swap()
    recover_cutover(record, keep_new=True)
    assert files(mount) == {"a/old.txt": b"snapshot"} and leftovers(mount) == []


def test_a_mount_not_yet_swapped_is_left_as_it_was(setup):
    repo, mount, desc = setup
    before = files(mount)
    p = prepare_restore(mount, desc, repo, NullReporter())
    record = cutover_record(p)  # killed before this mount's swap
    recover_cutover(record, keep_new=False)
    assert files(mount) == before and leftovers(mount) == []


def test_a_mount_that_did_not_exist_is_removed_again_on_rollback(setup):
    repo, mount, desc = setup
    other = mount.parent / "fresh"
    p = prepare_restore(other, desc, repo, NullReporter())
    record = cutover_record(p)
    p.swap()
    assert files(other) == {"a/old.txt": b"snapshot"}
    recover_cutover(record, keep_new=False)
    assert not other.exists() and leftovers(other) == []


def test_recovery_is_idempotent(setup):
    repo, mount, desc = setup
    before = files(mount)
    p = prepare_restore(mount, desc, repo, NullReporter())
    record = cutover_record(p)
    p.swap()
    recover_cutover(record, keep_new=False)
    recover_cutover(record, keep_new=False)
    assert files(mount) == before
