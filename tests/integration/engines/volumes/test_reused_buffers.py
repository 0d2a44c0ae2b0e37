"""A mount's files are read straight into the chunker's reused window and sealed into reused
pack buffers: many files of many sizes (several windows and packs' worth, sparse ones too)
restore byte-exact, and each file's chunks are those of its whole content."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from snapkeep.engines.volumes import prepare_restore, snapshot_mount
from snapkeep.repository import Repository
from snapkeep.repository.blobs import BlobRef
from tests.helpers.recording import Recorder
from tests.helpers.trees import MiB, listing

pytestmark = pytest.mark.usefixtures("no_racy_window")


def fill(mount: Path, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {}
    sizes = [0, 1, 4095, 64 << 10, MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 3, 33 * MiB + 17]
    sizes += [rng.randint(1, 3 * MiB) for _ in range(60)]
    for i, size in enumerate(sizes):
        d = mount / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size) if i % 3 else (b"text %d " % i) * (size // 8 + 1)
        (d / f"f{i:03d}").write_bytes(data[:size])
        files[f"d{i % 7}/f{i:03d}"] = data[:size]
    with open(mount / "sparse", "wb") as f:  # data, a 10 MiB hole, data
        f.write(rng.randbytes(3 * MiB))
        f.seek(13 * MiB)
        f.write(rng.randbytes(5 * MiB + 9))
    return files


def test_many_files_restore_byte_exact_with_the_chunks_of_their_whole_content(tmp_path, repo):
    mount = tmp_path / "app" / "media"
    files = fill(mount, 4)
    before = listing(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    lines = repo.read_blob(BlobRef.from_json(desc["tree"])).splitlines()
    blobs = {e["path"]: e.get("blob") for e in map(json.loads, lines) if "path" in e}
    # the blob of a file read piece by piece is the blob of its content written at once
    for rel in ("d6/f006", "d0/f007", "d1/f008"):  # 4 MiB + 1, 9 MiB + 3, 33 MiB + 17
        w = repo.blob_writer()
        w.write(files[rel])
        assert blobs[rel] == w.close().to_json(), rel
    for p in mount.rglob("*"):
        if p.is_file():
            p.write_bytes(b"overwritten")
    repo.flush()
    prepared = prepare_restore(mount, desc, Repository.open(repo.backend), Recorder())
    prepared.swap()
    prepared.finish()
    assert listing(mount) == before
