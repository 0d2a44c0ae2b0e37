"""A path that fits PATH_MAX under the mount is restored, although the staging directory's
name is longer than the mount's (found by the generative test: ENAMETOOLONG, a snapshot
that could not be restored)."""

from __future__ import annotations

import os
from pathlib import Path

from snapkeep.engines.volumes import prepare_restore, snapshot_mount
from tests.helpers.recording import Recorder


def test_a_path_that_fits_path_max_under_the_mount_is_restored(tmp_path, repo):
    mount = tmp_path / "mount"
    mount.mkdir()
    room = 4095 - len(os.fsencode(mount)) - 1  # the longest relative path PATH_MAX allows
    rel = b""
    while len(rel) + 201 <= room:
        rel = (rel + b"/" if rel else b"") + b"d" * 200
    rel += b"/" + b"f" * min(room - len(rel) - 1, 255)
    full = os.fsencode(mount) + b"/" + rel
    os.makedirs(os.path.dirname(full))
    Path(os.fsdecode(full)).write_bytes(b"deep")
    deepest = os.path.dirname(full)
    os.chmod(deepest, 0o751)
    os.utime(deepest, ns=(1_000_000_123, 1_000_000_123))
    description = snapshot_mount(mount, repo, Recorder())
    os.unlink(full)
    prepared = prepare_restore(mount, description, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert Path(os.fsdecode(full)).read_bytes() == b"deep"
    st = os.lstat(deepest)
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o751, 1_000_000_123)
