"""Chunks: content-defined cutting, and the encoding of one chunk's plaintext.

A stored chunk's plaintext (before sealing) is one encoding byte then the payload:
``0x00`` raw bytes, ``0x01`` one zstd frame (used when it is smaller than the raw bytes).

Like restic's ``auto`` mode, a chunk that does not compress (JPEG, PNG, ZIP, video: most of
a media tree) is stored raw without compressing all of it: samples of it are compressed
first, and only a chunk whose samples shrink is compressed whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import threading
from collections.abc import Iterator
from typing import Literal, cast, overload

import pyfastcdc
import zstandard

from snapkeep.malloc import lazy_buffer

CDC_MIN = 512 * 1024
CDC_AVG = 1024 * 1024
CDC_MAX = 8 * 1024 * 1024
CDC_NC = 1

ENC_RAW = 0
ENC_ZSTD = 1
ZSTD_LEVEL = 3  # the default; a blob writer may use another (database rows: configurable)
# Database rows: level 3, as ``mariadb-dump | zstd -3``. Compression is the dump's largest
# client cost: level 5 stored bench/gen_magento.py's shop ~5 % smaller than level 3 in
# 1 MiB chunks (0.98x against 1.03x that pipe) for ~60 % more zstd CPU, which on 2 cores
# the server's side of the dump waits for (docs/performance.md, "Rows").
ROWS_ZSTD_LEVEL = 3

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


class _OneShot:
    """libzstd's one-shot ``ZSTD_decompressDCtx`` through ctypes (GIL released during the
    call), one decompression context per thread, freed with it. python-zstandard has no
    one-shot call into a given buffer; its stream reader decompresses into its window and
    copies from there: 1.10 s/GiB against 0.92 s/GiB one-shot on text-like pages here."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.dctx = lib.ZSTD_createDCtx()
        if not self.dctx:
            raise MemoryError("ZSTD_createDCtx")

    def __del__(self) -> None:
        self.lib.ZSTD_freeDCtx(self.dctx)

    def into(self, src: memoryview, out: memoryview) -> int:
        """Decompress the one frame ``src`` into ``out``; its length. ValueError when the
        frame is damaged or holds more than ``out``."""
        s = (ctypes.c_char * len(src)).from_buffer(src)
        d = (ctypes.c_char * len(out)).from_buffer(out)
        n = self.lib.ZSTD_decompressDCtx(self.dctx, d, len(out), s, len(src))
        if self.lib.ZSTD_isError(n):
            name = self.lib.ZSTD_getErrorName(n).decode("ascii", "replace")
            raise ValueError(f"cannot be decompressed: {name}")
        return int(n)


@functools.cache
def _libzstd() -> ctypes.CDLL | None:
    """The system's libzstd (Debian's dpkg depends on it), or None: then the stream reader."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("zstd") or "libzstd.so.1")
    except OSError:
        return None
    lib.ZSTD_createDCtx.restype = ctypes.c_void_p
    lib.ZSTD_freeDCtx.argtypes = [ctypes.c_void_p]
    lib.ZSTD_decompressDCtx.restype = ctypes.c_size_t
    lib.ZSTD_decompressDCtx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                        ctypes.c_void_p, ctypes.c_size_t]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    lib.ZSTD_getErrorName.restype = ctypes.c_char_p
    lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
    return lib


def _one_shot() -> _OneShot | None:
    o: _OneShot | None = getattr(_local, "one_shot", None)
    if o is None:
        lib = _libzstd()
        if lib is None:
            return None
        o = _local.one_shot = _OneShot(lib)
    return o


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


def _encoding(data: bytes | memoryview, level: int) -> tuple[int, bytes | memoryview]:
    """(encoding byte, payload): compressed (at zstd ``level``) when that saves space."""
    if compresses(data, level):
        packed = _compressor(level).compress(data)
        if len(packed) < len(data):
            return ENC_ZSTD, packed
    return ENC_RAW, data


def encode(data: bytes | memoryview, level: int = ZSTD_LEVEL) -> bytes:
    """The chunk plaintext: compressed (at zstd ``level``) when that saves space."""
    kind, payload = _encoding(data, level)
    return b"".join((bytes([kind]), payload))


def encode_reused(data: bytes | memoryview, level: int = ZSTD_LEVEL) -> memoryview:
    """``encode`` into this thread's reusable buffer (no fresh chunk-sized mapping for each
    chunk): a view valid until this thread's next call, so seal it before encoding again."""
    kind, payload = _encoding(data, level)
    n = 1 + len(payload)
    buf: mmap.mmap | None = getattr(_local, "plain", None)
    if buf is None or len(buf) < n:
        buf = lazy_buffer(max(n, CDC_MAX + 1))
        if len(buf) == CDC_MAX + 1:  # keep the usual size, not a one-off giant
            _local.plain = buf
    buf[0] = kind
    buf[1:n] = payload
    return memoryview(buf)[:n]


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


def decode_into(encoded: memoryview, raw_len: int, out: memoryview) -> memoryview:
    """``decode`` into ``out`` (at least ``raw_len`` bytes, reused chunk after chunk: no
    fresh mapping per chunk); the view of ``out`` holding the plaintext."""
    if not encoded:
        raise ValueError("empty chunk")
    kind = encoded[0]
    if kind == ENC_RAW:
        n = len(encoded) - 1
        if n > len(out):
            raise ValueError(f"holds {n} bytes where {raw_len} were stored")
        out[:n] = encoded[1:]
        return out[:n]
    if kind != ENC_ZSTD:
        raise ValueError(f"unknown chunk encoding {kind}")
    one = _one_shot()
    if one is not None and not encoded.readonly and not out.readonly:
        if len(out) < raw_len:
            raise ValueError(f"needs {raw_len} bytes, given {len(out)}")
        try:
            return out[:one.into(encoded[1:], out[:raw_len])]
        except ValueError as e:
            if "too small" in str(e):  # more than was stored: not this chunk
                raise ValueError(f"holds more than the {raw_len} bytes stored") from None
            raise
    n = 0
    try:
        with _decompressor().stream_reader(encoded[1:], read_across_frames=False) as r:
            while n < raw_len and (got := r.readinto(out[n:raw_len])):
                n += got
            if n == raw_len and r.read(1):  # more than was stored: not this chunk
                n += 1
    except zstandard.ZstdError as e:
        raise ValueError(f"cannot be decompressed: {e}") from e
    return out[:n]


class WindowCutter:
    """A stream gathered in a reused window and cut into chunks by ``_cut`` (a subclass's).

    The window (``_size`` bytes) is taken from a small pool on first use and given back by
    ``finish()``, so that its memory is reused from one stream to the next instead of
    being mapped (and zeroed, page by page) again. A writer either reads straight into it
    (``space``/``commit``: no copy of the stream) or hands it bytes (``feed``). The
    chunks ``_cut`` yields are views into the window: each is valid only until the
    generator that yielded it resumes, so a caller stores (or copies) a chunk before
    asking for the next one.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._window: mmap.mmap | None = None
        self._pending = 0  # bytes of the window filled

    def space(self) -> memoryview:
        """The free part of the window (never empty): write up to its length into it,
        then ``commit`` how much was written."""
        if self._window is None:
            self._window = _windows.take(self._size)
        return memoryview(self._window)[self._pending:]

    def commit(self, n: int) -> Iterator[memoryview]:
        """``n`` bytes were written at the start of ``space()``; the chunks now final."""
        assert self._window is not None and 0 <= n <= len(self._window) - self._pending
        self._pending += n
        if self._cut_now():
            yield from self._cut(final=False)

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        view = memoryview(data).cast("B")
        while view:
            room = self.space()
            n = min(len(room), len(view))
            room[:n] = view[:n]
            view = view[n:]
            yield from self.commit(n)

    def finish(self) -> Iterator[memoryview]:
        if self._pending:
            yield from self._cut(final=True)
        if self._window is not None:  # every chunk of it has been consumed: reuse it
            window, self._window = self._window, None
            _windows.give(window)

    def _cut_now(self) -> bool:
        """Whether a commit cuts what the window holds (else it waits for more)."""
        raise NotImplementedError

    def _cut(self, final: bool) -> Iterator[memoryview]:
        """The final chunks of the window's ``_pending`` bytes (all of them when
        ``final``); what is left is moved to the window's start."""
        raise NotImplementedError


class Chunker(WindowCutter):
    """Cuts a stream at content-defined boundaries (FastCDC), however ``feed()`` calls
    split it (``WindowCutter``).

    A cut point depends only on the bytes from the current chunk's start, so every chunk
    but the last of a window is final; the last is moved to the window's start and cut
    again with more data, or by ``finish()``. The window is cut when full.
    """

    WINDOW = 2 * CDC_MAX

    def __init__(self, params: dict[str, int], seed: int) -> None:
        # a cut window always leaves at least half of itself free (see _cut)
        super().__init__(max(self.WINDOW, 2 * params["max"]))
        self._cdc = _fastcdc(params["avg"], params["min"], params["max"],
                             params.get("nc", CDC_NC), seed)

    def _cut_now(self) -> bool:
        return self._window is not None and self._pending == len(self._window)

    def _cut(self, final: bool) -> Iterator[memoryview]:
        assert self._window is not None
        view = memoryview(self._window)[:self._pending]
        last = None
        for c in self._cdc.cut_buf(view):
            if last is not None:
                yield view[last.offset:last.offset + last.length]
            last = c
        self._pending = 0
        if last is None:
            return
        if final:
            yield view[last.offset:last.offset + last.length]
            return
        # the last chunk is at most max <= half the window long and ends at its end, so
        # it starts at or after its own length: moving it to the start cannot overlap
        start, n = last.offset, last.length
        assert start >= n
        self._window[:n] = view[start:start + n]
        self._pending = n


@functools.lru_cache(maxsize=8)
def _fastcdc(avg: int, min_size: int, max_size: int, nc: int, seed: int) -> pyfastcdc.FastCDC:
    """One cutter per configuration, shared (its state is read-only after construction,
    which seeds its gear tables: a file's chunker no longer pays for that)."""
    # the config's level (0-3) is an int in JSON; FastCDC refuses any other value
    level = cast(Literal[0, 1, 2, 3], nc)
    return pyfastcdc.FastCDC(avg, min_size=min_size, max_size=max_size,
                             normalized_chunking=level, seed=seed)


class _WindowPool:
    """Chunker windows kept for reuse: two (a file's and its tree's writer at once); more
    writers at once (a parallel dump) map more, given back to the system when done."""

    KEEP = 2

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> mmap.mmap:
        with self._lock:
            if self._free and size == Chunker.WINDOW:
                return self._free.pop()
        return lazy_buffer(size)

    def give(self, window: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self.KEEP and len(window) == Chunker.WINDOW:
                self._free.append(window)


_windows = _WindowPool()
