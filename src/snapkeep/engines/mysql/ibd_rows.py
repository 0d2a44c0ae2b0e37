"""Counting a table's rows in its prepared ``.ibd``, from the pages, while they are stored.

A restore drill of a table stored as pages has no row digest to compare against (reading
every row through SQL at snapshot time is the cost the physical path avoids). What the
pages give for free, as they stream past the page writer: the number of records of the
table's clustered index (every row, history rows of a system-versioned table included).

``LeafCounter`` is fed the file's pages in order and keeps, for every in-use leaf page
of the clustered index, its live records (neither delete-marked — the import purges
those — nor the instant-ALTER metadata record) and its leaf-chain neighbours:

- the clustered index is the first one created in a file-per-table tablespace, rooted
  at page 3; its id is that page's ``PAGE_INDEX_ID``;
- a page counts when its type is INDEX, its ``PAGE_INDEX_ID`` that id, its level 0, and
  the extent descriptors (page 0, and every ``page_size``-th page) do not mark it free —
  freed pages keep their stale records;
- the chain of those pages (``FIL_PAGE_PREV``/``NEXT``) must run from one head to one
  tail through every one of them, and each page's record list from infimum to supremum
  must hold exactly ``PAGE_N_RECS`` user records.

Anything else — ``ROW_FORMAT=COMPRESSED``/``REDUNDANT``, page-compressed or encrypted
tablespaces, a layout not understood — gives None: the count is not recorded and the
drill says that table's row count is not verifiable (``verify.py``).

The walk over the leaf pages and the chain check run in C (``_ibdpages.c``, the GIL
released: in Python they cost 2.3 s of CPU per GiB, more than half of storing the pages);
``py_leaves``/``py_chain`` here are the same rules in Python, used where the extension is
not built, and the reference the tests compare it with.
"""

from __future__ import annotations

import struct
from array import array

FIL_NULL = 0xFFFFFFFF
FIL_PAGE_INDEX = 17855
FIL_PAGE_TYPE_INSTANT = 18  # a clustered root after an instant ALTER
PAGE_HEADER = 38
PAGE_N_HEAP = PAGE_HEADER + 4
PAGE_N_RECS = PAGE_HEADER + 16
PAGE_LEVEL = PAGE_HEADER + 26
PAGE_INDEX_ID = PAGE_HEADER + 28
INFIMUM, SUPREMUM = 99, 112  # record origins of a COMPACT/DYNAMIC page
ROOT = 3  # the clustered index's root page in a file-per-table tablespace
XDES_ARRAY = PAGE_HEADER + 112  # FSP_HEADER_OFFSET + FSP_HEADER_SIZE
XDES_SIZE_16K = 40  # an extent descriptor: id, list node, state, 2 bits per page
XDES_BITMAP = 24
REC_DELETED, REC_MIN = 0x20, 0x10  # info bits
STATUS_ORDINARY, STATUS_INSTANT = 0, 4  # a user record; instant ALTER's metadata record

_PAGE_HEAD = struct.Struct(">I I I")  # checksum, page number, prev
_NEXT_REL = struct.Struct(">h")
BAD_LEAF, BAD_COMPRESSED = 1, 2  # what stopped a walk (``leaves``)


def _records(page: bytes, page_size: int) -> int | None:
    """Live user records of one COMPACT/DYNAMIC leaf page; None when its list is broken."""
    want = int.from_bytes(page[PAGE_N_RECS:PAGE_N_RECS + 2], "big")
    mask = page_size - 1
    at = (INFIMUM + _NEXT_REL.unpack_from(page, INFIMUM - 2)[0]) & mask
    seen = live = 0
    meta = False
    while at != SUPREMUM:
        if at < SUPREMUM or seen > want + 1:
            return None
        info, status = page[at - 5], page[at - 3] & 7
        if status == STATUS_INSTANT and info & REC_MIN and not seen and not meta:
            meta = True
        elif status != STATUS_ORDINARY:
            return None
        else:
            seen += 1
            live += not info & REC_DELETED
        at = (at + _NEXT_REL.unpack_from(page, at - 2)[0]) & mask
    return live if seen == want or (meta and seen + 1 == want) else None


def py_leaves(pages: bytes | memoryview, first_no: int, page_size: int, index_id: bytes,
              free: bytes | bytearray) -> tuple[bytes, int, int]:
    """The clustered index's leaf pages among ``pages`` (whole pages, the first numbered
    ``first_no``), the free ones (bit n of ``free`` set) left out: (packed records of four
    native uint32 — page, prev, next, live records —, the page that stopped the walk, why:
    0 none, ``BAD_LEAF``, ``BAD_COMPRESSED``). ``_ibdpages.leaves`` in Python."""
    out = array("I")
    view = memoryview(pages)
    for i in range(len(view) // page_size):
        no = first_no + i
        if no < ROOT or (no >> 3 < len(free) and free[no >> 3] >> (no & 7) & 1):
            continue
        page = bytes(view[i * page_size:(i + 1) * page_size])
        kind = int.from_bytes(page[24:26], "big")
        if kind != FIL_PAGE_INDEX and not (no == ROOT and kind == FIL_PAGE_TYPE_INSTANT):
            if kind in (34354, 37401):  # page-compressed (and encrypted)
                return out.tobytes(), no, BAD_COMPRESSED
            continue
        if page[PAGE_INDEX_ID:PAGE_INDEX_ID + 8] != index_id \
                or int.from_bytes(page[PAGE_LEVEL:PAGE_LEVEL + 2], "big") != 0:
            continue
        _, number, prev = _PAGE_HEAD.unpack_from(page, 0)
        live = _records(page, page_size) if number == no and _compact(page) else None
        if live is None:
            return out.tobytes(), no, BAD_LEAF
        out.extend((no, prev, int.from_bytes(page[12:16], "big"), live))
    return out.tobytes(), 0, 0


def py_chain(packed: bytes | bytearray) -> int | None:
    """The live records of the leaves in ``packed`` (``py_leaves``) when they form one
    list: one head, one tail, every leaf on it once. ``_ibdpages.chain`` in Python."""
    recs = array("I", bytes(packed))
    leaves = {recs[i]: (recs[i + 1], recs[i + 2], recs[i + 3]) for i in range(0, len(recs), 4)}
    heads = [p for p, (prev, _, _) in leaves.items() if prev == FIL_NULL]
    if len(heads) != 1 or len(leaves) * 4 != len(recs):
        return None
    seen, total, at = 0, 0, heads[0]
    while at != FIL_NULL:
        leaf = leaves.get(at)
        if leaf is None or seen >= len(leaves):
            return None  # the chain leaves the index's pages, or loops
        seen += 1
        total += leaf[2]
        at = leaf[1]
    return total if seen == len(leaves) else None


def _compact(page: bytes) -> bool:
    return bool(page[PAGE_N_HEAP] & 0x80)


try:
    from snapkeep.engines.mysql import _ibdpages
except ImportError:  # not built (no compiler at install): the same walk, slower
    _ibdpages = None  # type: ignore[assignment]
leaves = _ibdpages.leaves if _ibdpages is not None else py_leaves
chain = _ibdpages.chain if _ibdpages is not None else py_chain


class LeafCounter:
    """Feed the pages of one ``.ibd`` in order (``feed``); ``rows`` then tells its live
    clustered-index records, or None when they cannot be told from the pages."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.extent = 64 if page_size <= 16384 else (page_size * 64) // 16384
        self.page = 0
        self.pending = b""
        self.free = bytearray()  # bit n: page n is free (its records are stale)
        self.index_id: bytes | None = None
        self.packed = bytearray()  # the leaves so far, as ``leaves`` packs them
        self.failed: str | None = None if page_size == 16384 else "page size not 16 KiB"

    def feed(self, data: bytes | memoryview) -> None:
        if self.failed:
            return
        buf = self.pending + bytes(data) if self.pending else data
        size = self.page_size
        whole = len(buf) // size * size
        view = memoryview(buf)[:whole]
        first = self.page
        for no in range(-(-first // size) * size, first + whole // size, size):
            self._descriptors(no, view[(no - first) * size:(no - first + 1) * size])
        if first <= ROOT < first + whole // size and not self._root(
                bytes(view[(ROOT - first) * size:(ROOT - first + 1) * size])):
            return
        if self.index_id is not None and whole:
            packed, bad_no, bad = leaves(view, first, size, self.index_id, self.free)
            self.packed += packed
            if bad == BAD_COMPRESSED:
                self.failed = "page-compressed tablespace"
            elif bad:
                self.failed = f"leaf page {bad_no} not understood"
        self.page += whole // size
        self.pending = bytes(buf[whole:])

    @property
    def rows(self) -> int | None:
        if self.failed or self.pending or self.index_id is None or not self.packed:
            return None
        return chain(self.packed)

    def _root(self, page: bytes) -> bool:
        """Take the clustered index's id from its root, page 3; False when it is not one
        this walk understands."""
        kind = int.from_bytes(page[24:26], "big")
        if kind not in (FIL_PAGE_INDEX, FIL_PAGE_TYPE_INSTANT) or not _compact(page):
            self.failed = "page 3 is not a COMPACT/DYNAMIC index root"
            return False
        self.index_id = page[PAGE_INDEX_ID:PAGE_INDEX_ID + 8]
        return True

    def _descriptors(self, first: int, page: memoryview) -> None:
        """Mark the pages the extent descriptors on ``page`` (page 0 or an XDES page)
        say are free."""
        per_page = self.page_size // self.extent
        need = (first + per_page * self.extent) // 8 + 1
        if len(self.free) < need:
            self.free.extend(bytes(need - len(self.free)))
        for i in range(per_page):
            entry = XDES_ARRAY + i * XDES_SIZE_16K
            bitmap = page[entry + XDES_BITMAP:entry + XDES_BITMAP + self.extent // 4]
            if len(bitmap) < self.extent // 4:
                return
            base = first + i * self.extent
            for j in range(self.extent):
                if bitmap[(2 * j) >> 3] >> ((2 * j) & 7) & 1:
                    no = base + j
                    self.free[no >> 3] |= 1 << (no & 7)
