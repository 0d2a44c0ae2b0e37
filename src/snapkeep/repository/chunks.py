"""Chunks: content-defined cutting, and the encoding of one chunk's plaintext.

A stored chunk's plaintext (before sealing) is one encoding byte then the payload:
``0x00`` raw bytes, ``0x01`` one zstd frame (used when it is smaller than the raw bytes).

Like restic's ``auto`` mode, a chunk that does not compress (JPEG, PNG, ZIP, video: most of
a media tree) is stored raw without compressing all of it: samples of it are compressed
first, and only a chunk whose samples shrink is compressed whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Literal, cast, overload

import pyfastcdc
import zstandard

CDC_MIN = 512 * 1024
CDC_AVG = 1024 * 1024
CDC_MAX = 8 * 1024 * 1024
CDC_NC = 1

ENC_RAW = 0
ENC_ZSTD = 1
ZSTD_LEVEL = 3  # the default; a blob writer may use another (database rows: configurable)
# Database rows: level 5 stores the rows of bench/gen_magento.py's shop at 0.98x the size of
# ``mariadb-dump | zstd -3`` (level 3 in 1 MiB chunks: 1.04x) for ~0.3 s more CPU per
# 200 MiB of rows; level 6 happens to be larger than 5 on the same rows.
ROWS_ZSTD_LEVEL = 5

# Incompressibility probe: up to SAMPLES windows of SAMPLE bytes spread over the chunk are
# compressed at the chunk's level; unless one shrinks below SAMPLE_RATIO of its size the
# chunk is stored raw. A chunk no larger than PROBE_MIN is simply compressed whole.
SAMPLE = 16 * 1024
SAMPLES = 3
SAMPLE_RATIO = 0.97
PROBE_MIN = 4 * SAMPLE * SAMPLES

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cs = getattr(_local, "cs", None)
    if cs is None:
        cs = _local.cs = {}
    c = cs.get(level)
    if c is None:
        c = cs[level] = zstandard.ZstdCompressor(level=level)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def compresses(data: bytes | memoryview, level: int = ZSTD_LEVEL) -> bool:
    """Whether ``data`` looks worth compressing whole, judged from a few small samples."""
    n = len(data)
    if n <= PROBE_MIN:
        return True
    c = _compressor(level)
    step = (n - SAMPLE) // (SAMPLES - 1)
    # the first sample that shrinks decides: compressible data costs one sample
    return any(len(c.compress(data[i * step:i * step + SAMPLE])) < SAMPLE_RATIO * SAMPLE
               for i in range(SAMPLES))


def encode(data: bytes | memoryview, level: int = ZSTD_LEVEL) -> bytes:
    """The chunk plaintext: compressed (at zstd ``level``) when that saves space."""
    if compresses(data, level):
        packed = _compressor(level).compress(data)
        if len(packed) < len(data):
            return b"\x01" + packed
    return b"".join((b"\x00", data))  # one copy (not bytes(data) and then a second)


@overload
def decode(encoded: bytes, raw_len: int) -> bytes: ...
@overload
def decode(encoded: memoryview, raw_len: int) -> bytes | memoryview: ...
def decode(encoded: bytes | memoryview, raw_len: int) -> bytes | memoryview:
    """Inverse of ``encode``; ValueError on an unknown encoding or a bad frame. A raw
    chunk is a slice of ``encoded``: no copy when ``encoded`` is a memoryview."""
    if not encoded:
        raise ValueError("empty chunk")
    kind = encoded[0]
    if kind == ENC_RAW:
        return encoded[1:]
    if kind == ENC_ZSTD:
        try:
            return _decompressor().decompress(encoded[1:], max_output_size=raw_len)
        except zstandard.ZstdError as e:
            raise ValueError(f"cannot be decompressed: {e}") from e
    raise ValueError(f"unknown chunk encoding {kind}")


class Chunker:
    """Cuts a stream at content-defined boundaries, however ``feed()`` calls split it.

    A cut point depends only on the bytes from the current chunk's start, so every chunk
    but the last of a buffer is final; the last stays buffered until more data or
    ``finish()``.
    """

    BATCH = 2 * CDC_MAX

    def __init__(self, params: dict[str, int], seed: int) -> None:
        # the config's level (0-3) is an int in JSON; FastCDC refuses any other value
        nc = cast(Literal[0, 1, 2, 3], params.get("nc", CDC_NC))
        self._cdc = pyfastcdc.FastCDC(params["avg"], min_size=params["min"],
                                      max_size=params["max"], normalized_chunking=nc, seed=seed)
        self._pieces: list[bytes] = []
        self._pending = 0

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        if not data:
            return
        self._pieces.append(bytes(data))
        self._pending += len(data)
        if self._pending >= self.BATCH:
            yield from self._cut(final=False)

    def finish(self) -> Iterator[memoryview]:
        if self._pending:
            yield from self._cut(final=True)

    def _cut(self, final: bool) -> Iterator[memoryview]:
        buf = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        self._pieces, self._pending = [], 0
        view = memoryview(buf)
        last = None
        for c in self._cdc.cut_buf(buf):
            if last is not None:
                yield view[last.offset:last.offset + last.length]
            last = c
        if last is None:
            return
        tail = view[last.offset:last.offset + last.length]
        if final:
            yield tail
        else:
            self._pieces, self._pending = [bytes(tail)], len(tail)
