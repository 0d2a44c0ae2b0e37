"""A mount's digest: recorded at snapshot time, recomputed from a directory, checked by a
restore before its swap."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from snapkeep.engines.volumes import digest, prepare_restore, snapshot_mount
from snapkeep.errors import IntegrityError
from snapkeep.repository import Repository
from snapkeep.repository.blobs import BlobRef
from tests.helpers.recording import Recorder
from tests.helpers.trees import leftovers, listing, new_mount

MiB = 1 << 20


# cache keys are recorded (no racy window): the digest must not count them
pytestmark = pytest.mark.usefixtures("no_racy_window")


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    return new_mount(tmp_path / "app" / "var", big=2 * MiB + 5)


def restored_copy(desc: dict, repo: Repository, where: Path) -> Path:
    p = prepare_restore(where, desc, repo, Recorder())
    p.swap()
    p.finish()
    return where


def test_a_restored_copy_has_the_recorded_digest_and_any_change_alters_it(mount, repo,
                                                                          tmp_path):
    desc = snapshot_mount(mount, repo, Recorder())
    assert desc["digest"].startswith("blake3:")
    assert digest.tree_digest(mount, repo) == desc["digest"]
    copy = restored_copy(desc, repo, tmp_path / "copy")  # other inodes and ctimes
    assert digest.tree_digest(copy, repo) == desc["digest"]

    big = copy / "big.bin"
    st = os.stat(big)
    data = bytearray(big.read_bytes())
    data[MiB] ^= 1
    big.write_bytes(bytes(data))
    os.utime(big, ns=(st.st_mtime_ns, st.st_mtime_ns))  # same size and mtime
    assert digest.tree_digest(copy, repo) != desc["digest"]

    copy2 = restored_copy(desc, repo, tmp_path / "copy2")
    os.chmod(copy2 / "secret", 0o640)
    assert digest.tree_digest(copy2, repo) != desc["digest"]
    copy3 = restored_copy(desc, repo, tmp_path / "copy3")
    t = os.lstat(copy3 / "a").st_mtime_ns + 1
    os.utime(copy3 / "a", ns=(t, t))
    assert digest.tree_digest(copy3, repo) != desc["digest"]


def test_recomputing_the_digest_stores_nothing(mount, repo, tmp_path):
    desc = snapshot_mount(mount, repo, Recorder())
    repo.flush()
    (mount / "new.bin").write_bytes(os.urandom(MiB))
    size = sum(p.stat().st_size for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert digest.tree_digest(mount, repo) != desc["digest"]
    repo.flush()
    assert sum(p.stat().st_size for p in (tmp_path / "repo").rglob("*") if p.is_file()) == size


def test_a_restore_refuses_a_tree_that_does_not_give_the_recorded_digest(mount, repo,
                                                                         tmp_path):
    """A tree blob that decodes fine but is not the one the snapshot wrote (here: a mode
    changed in it) is refused before the swap; the live mount is untouched."""
    desc = snapshot_mount(mount, repo, Recorder())
    lines = repo.read_blob(BlobRef.from_json(desc["tree"])).splitlines(keepends=True)
    objs = [json.loads(line) for line in lines]
    next(o for o in objs if o.get("path") == "secret")["mode"] = 0o644
    tree = b"".join(json.dumps(o, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                    for o in objs)
    forged = {**desc, "tree": repo.put_blob(tree).to_json()}
    (mount / "later.txt").write_text("after the snapshot")
    before = listing(mount)
    with pytest.raises(IntegrityError, match="digest"):
        prepare_restore(mount, forged, repo, Recorder())
    assert listing(mount) == before and leftovers(mount.parent) == []
    # a description from before digests restores as before
    old = {k: v for k, v in forged.items() if k != "digest"}
    restored_copy(old, repo, tmp_path / "old")
    assert os.stat(tmp_path / "old" / "secret").st_mode & 0o777 == 0o644
    shutil.rmtree(tmp_path / "old")
