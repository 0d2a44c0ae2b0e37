"""A snapshot writer killed with SIGKILL leaves a consistent repository."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from snapkeep.repository import Repository, SnapshotManifest
from snapkeep.storage import LocalBackend

MiB = 1 << 20

WRITER = textwrap.dedent("""
    import random, sys, time
    from pathlib import Path
    from snapkeep.repository import Repository, SnapshotManifest
    from snapkeep.storage import LocalBackend

    repo_dir, key_file, mode, marker = sys.argv[1:]
    if mode == "before-manifest":
        def paused(self, manifest):
            Path(marker).write_text("packs and index written")
            time.sleep(3600)  # the parent kills us here
        Repository.put_manifest = paused
    repo = Repository.open(LocalBackend(repo_dir), key_file=key_file)
    session = repo.begin_snapshot()
    rng = random.Random(7)
    total = 2000 if mode == "packs" else 40
    with session.blob_writer() as w:
        for i in range(total):
            w.write(rng.randbytes(1 << 20))
            if i == 5 and mode == "packs":
                Path(marker).write_text("writing")
    session.commit(SnapshotManifest(
        id="killed", project="p", environment="e", environment_type="development",
        created_at="2026-11-26T00:00:00+00:00", expires_at=None, live=False, automated=False,
        commit_id=None, mounts={"m": {"tree": w.close().to_json()}}))
""")


def manifest(sid, **kw):
    return SnapshotManifest(id=sid, project="p", environment="e", environment_type="development",
                            created_at="2026-11-26T00:00:00+00:00", expires_at=None, live=False,
                            automated=False, commit_id=None, **kw)


def packs_on_disk(root):
    return [p for p in (root / "data").rglob("*") if p.is_file() and not p.name.startswith(".")]


def wait_for(cond, proc, what):
    deadline = time.monotonic() + 120  # a hang guard, not a performance threshold
    while not cond():
        assert proc.poll() is None, f"the writer ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("mode", ["packs", "before-manifest"])
def test_a_writer_killed_part_way_leaves_a_consistent_repository(tmp_path, mode):
    root, key = tmp_path / "repo", tmp_path / "k"
    repo = Repository.init(LocalBackend(root), key_file=key)
    base = random.Random(1).randbytes(3 * MiB)
    s = repo.begin_snapshot()
    ref = s.put_blob(base)
    s.commit(manifest("base", services={"x": {"b": ref.to_json()}}))
    base_packs = {p.name for p in packs_on_disk(root)}
    marker = tmp_path / "marker"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(key), mode,
                             str(marker)], env=env)
    try:
        if mode == "packs":
            wait_for(lambda: marker.exists() and len(packs_on_disk(root)) >= len(base_packs) + 3,
                     proc, "packs to be written")
        else:
            wait_for(marker.exists, proc, "the manifest write")
            assert len(list((root / "index").iterdir())) == 2  # base's and the writer's
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(packs_on_disk(root)) > len(base_packs)
    assert list((root / "locks").iterdir())  # the dead writer's lock is left behind

    fresh = Repository.open(LocalBackend(root), key_file=key)
    report = fresh.check(read_data=True)
    assert report.ok, report.problems
    assert list(fresh.snapshot_ids()) == ["base"]
    # The next snapshot works (its shared lock removes the dead writer's stale lock).
    s = fresh.begin_snapshot()
    again = s.put_blob(base + b"more")
    s.commit(manifest("next", services={"x": {"b": again.to_json()}}))
    assert sorted(fresh.snapshot_ids()) == ["base", "next"]
    # Prune reclaims everything the killed writer stored.
    pruned = fresh.prune()
    assert pruned.stats["bytes_freed"] > (3 * 16 * MiB if mode == "packs" else 30 * MiB)
    left = {p.name for p in packs_on_disk(root)}
    assert len(left) <= len(base_packs) + 3
    after = Repository.open(LocalBackend(root), key_file=key)
    assert after.read_blob(ref) == base and after.read_blob(again) == base + b"more"
    final = after.check(read_data=True)
    assert final.ok and final.notes == []
