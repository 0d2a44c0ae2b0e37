"""The write path reuses its buffers (chunker windows, plaintext, pack buffers): no chunk may
come out of a buffer overwritten before it was stored, and the format stays the same."""

from __future__ import annotations

import functools
import random

import blake3
import pyfastcdc
import pytest

from snapkeep.repository import Repository, SnapshotManifest, chunks, packs
from snapkeep.repository.crypto import Keys
from snapkeep.storage import LocalBackend

MiB = 1 << 20
PARAMS = {"min": chunks.CDC_MIN, "avg": chunks.CDC_AVG, "max": chunks.CDC_MAX, "nc": chunks.CDC_NC}


def stream(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def reference_cut(data: bytes, seed: int) -> list[bytes]:
    """The chunks of the whole stream cut at once (what any split of it must give)."""
    cdc = pyfastcdc.FastCDC(PARAMS["avg"], min_size=PARAMS["min"], max_size=PARAMS["max"],
                            normalized_chunking=1, seed=seed)
    return [bytes(c.data) for c in cdc.cut_buf(data)]


def fed(chunker: chunks.Chunker, data: bytes, rng: random.Random) -> list[bytes]:
    """Feed in random splits, by ``feed`` and by ``space``/``commit``; a copy of each chunk
    taken when it is yielded (a view is valid only until the generator resumes)."""
    out, pos = [], 0
    while pos < len(data):
        n = min(rng.choice([1, 4096, MiB, 3 * MiB + 1, 9 * MiB]), len(data) - pos)
        if rng.random() < 0.5:
            out += [bytes(c) for c in chunker.feed(data[pos:pos + n])]
        else:
            room = chunker.space()
            n = min(n, len(room))
            room[:n] = data[pos:pos + n]
            out += [bytes(c) for c in chunker.commit(n)]
        pos += n
    return out + [bytes(c) for c in chunker.finish()]


def test_chunks_cut_over_a_reused_window_are_those_of_the_whole_stream():
    rng = random.Random(5)
    # 40 MiB crosses several windows (the tail moves to the start each time); the second
    # and third streams get the first one's window back from the pool
    for i, size in enumerate([40 * MiB + 3, 5 * MiB, 17 * MiB]):
        data = stream(i, size)
        got = fed(chunks.Chunker(PARAMS, seed=77), data, rng)
        assert got == reference_cut(data, 77)
        assert b"".join(got) == data


def test_two_chunkers_at_once_never_share_a_window():
    a, b = chunks.Chunker(PARAMS, seed=3), chunks.Chunker(PARAMS, seed=3)
    da, db = stream(10, 20 * MiB), stream(11, 20 * MiB)
    out_a, out_b = [], []
    for pos in range(0, 20 * MiB, MiB):  # interleaved writes
        out_a += [bytes(c) for c in a.feed(da[pos:pos + MiB])]
        out_b += [bytes(c) for c in b.feed(db[pos:pos + MiB])]
    out_a += [bytes(c) for c in a.finish()]
    out_b += [bytes(c) for c in b.finish()]
    assert out_a == reference_cut(da, 3) and out_b == reference_cut(db, 3)


def test_encode_reused_is_encode_until_the_next_call():
    text = b"lorem ipsum " * 100_000
    noise = stream(1, MiB)
    first = chunks.encode_reused(text)
    assert bytes(first) == chunks.encode(text) and first[0] == chunks.ENC_ZSTD
    second = chunks.encode_reused(noise)
    assert bytes(second) == chunks.encode(noise) == b"\x00" + noise


@pytest.mark.parametrize("encrypt", [True, False])
def test_seal_into_opens_as_seal_does(encrypt):
    keys = Keys.from_master(bytes(range(32))) if encrypt else Keys.plaintext(b"k" * 32)
    plain = b"\x00" + stream(2, 100_000)
    out = bytearray(len(plain) + 100)
    n = keys.seal_into(plain, b"ad", memoryview(out))
    assert n == len(plain) + 28
    assert keys.unseal(bytes(out[:n]), b"ad") == plain
    assert len(keys.seal(plain, b"ad")) == n


def test_ids_and_packs_are_those_of_the_format_after_buffers_were_reused(tmp_path):
    """Several packs (each buffer reused: more than UPLOAD_QUEUE + 1 of them) of files of
    many sizes; every chunk id is the keyed BLAKE3 of the chunk the whole stream's cut
    gives, every pack is named by its hash and opens with the pack-reading functions, and
    every blob reads back byte-exact, before and after reopening."""
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root), encrypt=True)
    rng = random.Random(9)
    sizes = [rng.choice([1, 700, 64 << 10, MiB + 5, 3 * MiB, 9 * MiB + 11]) for _ in range(40)]
    sizes += [20 * MiB + 1]
    blobs = {}
    with repo.begin_snapshot() as s:
        for i, size in enumerate(sizes):
            data = stream(100 + i, size)
            w = s.blob_writer()
            pos = 0
            while pos < size:  # the walk's way: read straight into the chunker's window
                pos += w.write_from(functools.partial(_read, data, pos))
            ref = w.close()
            s.add_ref(ref)
            blobs[i] = (ref, data)
            # a chunk still in the open (reused) pack buffer reads back right
            assert repo.read_blob(ref) == data
        s.commit(_manifest())
    pack_files = [p for p in (root / "data").rglob("*") if p.is_file()]
    assert len(pack_files) > 4
    stored = {}
    for p in pack_files:
        raw = p.read_bytes()
        assert blake3.blake3(raw).hexdigest() == p.name
        for e in packs.read_header(repo.keys, raw):
            sealed = raw[e.offset:e.offset + e.length]
            plain = chunks.decode(repo.keys.unseal(sealed, packs.chunk_ad(e.cid)), e.raw_len)
            assert repo.keys.chunk_id(plain) == e.cid
            stored[e.cid] = plain
    for ref, data in blobs.values():
        expected = reference_cut(data, repo.keys.cdc_seed)
        assert [c for c, _n in ref.chunks] == [repo.keys.chunk_id(c) for c in expected]
        assert b"".join(stored[c] for c, _n in ref.chunks) == data
    reopened = Repository.open(LocalBackend(root))
    for ref, data in blobs.values():
        assert reopened.read_blob(ref) == data
    assert reopened.check(read_data=True).ok


def _read(data: bytes, pos: int, room: memoryview) -> int:
    n = min(len(room), 4 * MiB, len(data) - pos)
    room[:n] = data[pos:pos + n]
    return n


def _manifest() -> SnapshotManifest:
    return SnapshotManifest(id="s", project="p", environment="e",
                            environment_type="development",
                            created_at="2026-12-04T00:00:00+00:00", expires_at=None,
                            live=False, automated=False, commit_id=None)


def test_pack_buffers_are_reused_during_a_snapshot_and_unmapped_once_it_is_flushed(tmp_path):
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    writer = repo._writer
    with repo.begin_snapshot() as s:
        w = s.blob_writer()
        w.write(stream(3, 3 * packs.PACK_TARGET))
        ref = w.close()
        # packs written in the background gave their buffers back for the next packs
        with writer._cond:
            while writer._uploading:
                writer._cond.wait()
        assert writer._spare
        s.add_ref(ref)
        s.commit(_manifest())
    assert writer._spare == []  # a long-lived process keeps no idle pack buffer
    assert repo.read_blob(ref) == stream(3, 3 * packs.PACK_TARGET)
