"""Pack files: sealed chunks back to back, then a sealed header listing them.

```
pack   = entry* || sealed_header || u32 LE len(sealed_header)
header = 0x01 || (chunk id (32 bytes) || offset u32 LE || length u32 LE || raw_len u32 LE)*
```

``offset``/``length`` locate the sealed chunk in the pack; ``raw_len`` is the chunk's
plaintext length. The pack ID is the BLAKE3-256 hash (hex) of the whole pack's bytes.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field

import blake3

from snapkeep.repository.chunks import CDC_MAX
from snapkeep.repository.crypto import OVERHEAD, Keys, SealError

PACK_TARGET = 16 * 1024 * 1024
HEADER_VERSION = 1
ENTRY = struct.Struct("<32sIII")
AD_HEADER = b"snapkeep pack header"


def chunk_ad(cid: str) -> bytes:
    return b"snapkeep chunk " + bytes.fromhex(cid)


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


def pack_id_of_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "data" and len(parts[2]) == 64 \
            and parts[2].startswith(parts[1]):
        return parts[2]
    return None


@dataclass(frozen=True)
class Entry:
    cid: str
    offset: int
    length: int
    raw_len: int


# A pack buffer's length: a full pack (the target plus the largest chunk that can start just
# under it) and room for its header (44 bytes per chunk), so that it is never reallocated.
# Pages never written are never mapped in, so the slack costs no memory.
BUFFER = PACK_TARGET + CDC_MAX + 2 * OVERHEAD + 2 * 1024 * 1024


@dataclass
class PackBuilder:
    """A pack being filled: ``buf[:size]`` holds its sealed chunks back to back.

    ``buf`` may be longer than ``size`` (a preallocated, reused buffer: see
    ``PackWriter``); it is grown only when a chunk or the header does not fit."""

    buf: bytearray | mmap.mmap = field(default_factory=bytearray)
    size: int = 0
    entries: dict[str, Entry] = field(default_factory=dict)
    # who stored into it or deduplicated against it: snapshot sessions, or None for a
    # write without one (see Repository.discard_session)
    users: set[object] = field(default_factory=set)

    def _room(self, n: int) -> None:
        short = self.size + n - len(self.buf)
        if short > 0:  # a preallocated buffer is too small (rare): a growable copy
            if not isinstance(self.buf, bytearray):
                self.buf = bytearray(self.buf[:self.size])
            self.buf += bytes(self.size + n - len(self.buf))

    def add(self, cid: str, sealed: bytes | bytearray | memoryview, raw_len: int) -> None:
        self._room(len(sealed))
        self.buf[self.size:self.size + len(sealed)] = sealed
        self.entries[cid] = Entry(cid, self.size, len(sealed), raw_len)
        self.size += len(sealed)

    def seal(self, keys: Keys, cid: str, plaintext: bytes | memoryview, raw_len: int) -> int:
        """Seal a chunk's plaintext straight into the pack; its sealed length."""
        self._room(len(plaintext) + OVERHEAD)
        with memoryview(self.buf) as view:
            n = keys.seal_into(plaintext, chunk_ad(cid), view[self.size:])
        self.entries[cid] = Entry(cid, self.size, n, raw_len)
        self.size += n
        return n

    def sealed_chunk(self, cid: str) -> bytes:
        e = self.entries[cid]
        return bytes(self.buf[e.offset:e.offset + e.length])

    def full(self) -> bool:
        return self.size >= PACK_TARGET

    def build(self, keys: Keys) -> tuple[str, bytes]:
        """(pack id, pack bytes); the builder must no longer change."""
        return build_pack(keys, memoryview(self.buf)[:self.size], list(self.entries.values()))

    def build_in_place(self, keys: Keys) -> tuple[str, memoryview]:
        """``build`` without a copy: the header is written after the chunks in ``buf``;
        the pack is a view of ``buf``, valid while the buffer is not reused."""
        tail = _sealed_header(keys, list(self.entries.values()))
        self._room(len(tail))
        end = self.size + len(tail)
        self.buf[self.size:end] = tail
        view = memoryview(self.buf)[:end]
        return blake3.blake3(view).hexdigest(), view


def _sealed_header(keys: Keys, entries: list[Entry]) -> bytes:
    """The sealed header and its length: what follows the chunks."""
    header = bytearray([HEADER_VERSION])
    for e in entries:
        header += ENTRY.pack(bytes.fromhex(e.cid), e.offset, e.length, e.raw_len)
    sealed = keys.seal(bytes(header), AD_HEADER)
    return sealed + struct.pack("<I", len(sealed))


def build_pack(keys: Keys, body: bytes | bytearray | memoryview,
               entries: list[Entry]) -> tuple[str, bytes]:
    data = b"".join((body, _sealed_header(keys, entries)))
    return blake3.blake3(data).hexdigest(), data


def read_header(keys: Keys, pack: bytes) -> list[Entry]:
    """The entries of a whole pack's header; ValueError naming what is wrong."""
    if len(pack) < 4:
        raise ValueError("too short to be a pack")
    (hlen,) = struct.unpack("<I", pack[-4:])
    if hlen + 4 > len(pack):
        raise ValueError("the header length is out of range")
    return parse_header(keys, pack[-4 - hlen:-4], len(pack) - 4 - hlen)


def parse_header(keys: Keys, sealed: bytes, data_end: int) -> list[Entry]:
    try:
        header = keys.unseal(sealed, AD_HEADER)
    except SealError as e:
        raise ValueError(f"the pack header fails authentication ({e})") from None
    if not header or header[0] != HEADER_VERSION or (len(header) - 1) % ENTRY.size:
        raise ValueError("the pack header is malformed")
    out = []
    for i in range(1, len(header), ENTRY.size):
        raw_id, off, length, raw_len = ENTRY.unpack_from(header, i)
        if off + length > data_end:
            raise ValueError("a pack header entry points past the chunk data")
        out.append(Entry(raw_id.hex(), off, length, raw_len))
    return out
