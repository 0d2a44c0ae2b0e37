"""Chunk encoding: incompressible chunks are stored raw without being compressed whole."""

import os
import random

import pytest

from snapkeep.repository import chunks
from snapkeep.repository.crypto import Keys


class Recording:
    """A zstd compressor that records the size of everything it is asked to compress."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def compress(self, data):
        self.sizes.append(len(data))
        return self.inner.compress(data)


@pytest.fixture
def compressed(monkeypatch):
    seen = {}
    real = chunks._compressor

    def recording(level):
        if level not in seen:
            seen[level] = Recording(real(level))
        return seen[level]

    monkeypatch.setattr(chunks, "_compressor", recording)
    return lambda: [n for r in seen.values() for n in r.sizes]


def text(n: int) -> bytes:
    rng = random.Random(3)
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"INSERT", b"VALUES", b"(1,'a')"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def test_random_bytes_are_stored_raw_from_samples_alone(compressed):
    data = os.urandom(chunks.CDC_AVG)
    encoded = chunks.encode(memoryview(data))
    assert encoded[0] == chunks.ENC_RAW
    assert max(compressed()) <= chunks.SAMPLE  # never the whole chunk
    assert len(compressed()) == chunks.SAMPLES
    assert chunks.decode(encoded, len(data)) == data


def test_text_is_compressed_after_one_sample(compressed):
    data = text(chunks.CDC_AVG)
    encoded = chunks.encode(data)
    assert encoded[0] == chunks.ENC_ZSTD and len(encoded) < len(data) // 2
    assert compressed() == [chunks.SAMPLE, len(data)]
    assert chunks.decode(encoded, len(data)) == data


def test_a_compressible_tail_is_found_by_a_later_sample():
    data = os.urandom(600_000) + text(600_000)
    encoded = chunks.encode(data)
    assert encoded[0] == chunks.ENC_ZSTD
    assert chunks.decode(encoded, len(data)) == data


@pytest.mark.parametrize("size", [0, 1, 1000, chunks.PROBE_MIN, chunks.PROBE_MIN + 1])
def test_small_and_edge_sizes_round_trip(size):
    for data in (os.urandom(size), text(size)):
        assert chunks.decode(chunks.encode(data), len(data)) == data


def test_seal_buffer_and_unseal_round_trip_in_both_ciphers():
    ad = b"snapkeep chunk x"
    for keys in (Keys.from_master(os.urandom(32)), Keys.plaintext(os.urandom(32))):
        plain = os.urandom(100_000)
        sealed = keys.seal_buffer(plain, ad)
        assert keys.unseal(sealed, ad) == plain
        assert keys.unseal(memoryview(bytes(sealed)), ad) == plain
        assert keys.unseal(keys.seal(plain, ad), ad) == plain


def _not_read_as(enc: memoryview, n: int, out: memoryview) -> bool:
    """Whether ``decode_into`` refuses ``enc`` as a chunk of ``n`` bytes: it raises, or
    gives another length (the repository then refuses it)."""
    from snapkeep.repository.chunks import decode_into
    try:
        return len(decode_into(enc, n, out)) != n
    except ValueError:
        return True


@pytest.mark.parametrize("path", ["one-shot", "stream"])
def test_decode_into_a_reused_buffer_gives_what_decode_gives(path, monkeypatch):
    """Both ways of decompressing into a buffer: libzstd's one-shot call (a writable
    source, as the repository's scratch buffers are) and the stream reader (a read-only
    source, or no libzstd)."""
    import os

    from snapkeep.repository import chunks
    from snapkeep.repository.chunks import decode, decode_into, encode
    if path == "one-shot":
        assert chunks._libzstd() is not None  # Debian's dpkg depends on libzstd1
        used: list[int] = []
        real = chunks._OneShot.into
        monkeypatch.setattr(chunks._OneShot, "into",
                            lambda self, src, o: used.append(1) or real(self, src, o))
    else:
        monkeypatch.setattr(chunks, "_one_shot", lambda: None)

    def held(b: bytes) -> memoryview:
        return memoryview(bytearray(b))  # writable, as a scratch buffer

    out = memoryview(bytearray(1 << 20))
    for data in (os.urandom(70_000), b"page" * 50_000, b"x"):
        enc = held(encode(data, 1))
        got = decode_into(enc, len(data), out)
        assert bytes(got) == bytes(decode(enc, len(data))) == data
    data = os.urandom(1000) * 200
    packed = held(encode(data, 1))
    assert len(packed) < len(data) // 50
    # a frame holding more than was stored, or cut short, is never read as the chunk
    assert _not_read_as(packed, 100, out)
    assert _not_read_as(packed[:len(packed) // 2], len(data), out)
    with pytest.raises(ValueError, match="unknown chunk encoding"):
        decode_into(memoryview(bytearray(b"\x09abc")), 3, out)
    if path == "one-shot":
        assert used  # the one-shot call did the work
