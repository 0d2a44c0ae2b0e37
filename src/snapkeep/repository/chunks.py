"""One chunk on disk: a format byte, then a zstd frame of the plaintext.

The chunk ID is the BLAKE3 hash of the plaintext (hex), so identical data is stored once
and every read can be checked against its name.
"""

from __future__ import annotations

import threading

import blake3
import zstandard

from snapkeep.errors import IntegrityError

FORMAT_ZSTD = b"\x01"
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=3)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def chunk_id(data: bytes) -> str:
    return blake3.blake3(data, max_threads=1).hexdigest()


def chunk_key(cid: str) -> str:
    return f"data/{cid[:2]}/{cid}"


def encode(data: bytes) -> bytes:
    return FORMAT_ZSTD + _compressor().compress(data)


def decode(cid: str, stored: bytes, where: str) -> bytes:
    """Plaintext of a stored chunk, or IntegrityError naming the chunk if it is damaged."""
    if stored[:1] != FORMAT_ZSTD:
        raise IntegrityError(f"chunk {cid} in {where} has an unknown format byte")
    try:
        data = _decompressor().decompress(stored[1:])
    except zstandard.ZstdError as e:
        raise IntegrityError(f"chunk {cid} in {where} cannot be decompressed: {e}") from e
    if chunk_id(data) != cid:
        raise IntegrityError(f"chunk {cid} in {where} does not match its hash")
    return data
