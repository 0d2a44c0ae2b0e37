"""Generative differential test of the volumes engine: random tree → snapshot → random
damage → restore → the tree's fingerprint is the one taken before the damage.

Reproduce a failure with the command printed under "generative: reproduce"; the printed
Tree lists the build steps. Features, pending list: ``features.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.engines.volumes import prepare_restore, snapshot_mount
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.generative.tree_gen import (
    apply_damage,
    build,
    tree_damages,
    tree_diff,
    tree_features,
    tree_fingerprint,
    trees,
)
from tests.helpers.recording import Recorder

# a fixed-length scratch root, so deep paths come as near PATH_MAX in every run
SCRATCH = Path(tempfile.gettempdir()) / f"snapkeep-gen-tree-{os.getpid():08d}"


@pytest.fixture(scope="module")
def features():
    return tree_features(SCRATCH)


def _mount() -> Path:
    return SCRATCH / "app" / "mount"


@given(data=st.data())
def test_a_restore_after_random_damage_gives_back_the_snapshotted_tree(features, data):
    mount = _mount()
    tree = data.draw(trees(features, len(os.fsencode(mount))), label="tree")
    damage = data.draw(tree_damages(features), label="damage")
    sparse = "sparse_allocation" in features
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    try:
        build(tree, mount)
        before = tree_fingerprint(mount, sparse=sparse)
        repo = Repository.init(LocalBackend(SCRATCH / "repo"))
        description = snapshot_mount(mount, repo, Recorder())
        assert tree_fingerprint(mount, sparse=sparse) == before, "a snapshot changed the tree"

        apply_damage(damage, tree, mount)
        prepared = prepare_restore(mount, description, repo, Recorder())
        prepared.swap()
        prepared.finish()
        after = tree_fingerprint(mount, sparse=sparse)
        assert after == before, tree_diff(after, before)
        assert sorted(n for n in os.listdir(mount.parent) if ".snapkeep-" in n) == []
    finally:
        if SCRATCH.exists():
            shutil.rmtree(SCRATCH)


