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
"""

from __future__ import annotations

import struct

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


class LeafCounter:
    """Feed the pages of one ``.ibd`` in order (``feed``); ``rows`` then tells its live
    clustered-index records, or None when they cannot be told from the pages."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.extent = 64 if page_size <= 16384 else (page_size * 64) // 16384
        self.page = 0
        self.pending = b""
        self.free: set[int] = set()
        self.index_id: bytes | None = None
        self.leaves: dict[int, tuple[int, int, int]] = {}  # page → (prev, next, rows)
        self.failed: str | None = None if page_size == 16384 else "page size not 16 KiB"

    def feed(self, data: bytes | memoryview) -> None:
        if self.failed:
            return
        buf = self.pending + bytes(data) if self.pending else bytes(data)
        size, at = self.page_size, 0
        while at + size <= len(buf) and not self.failed:
            self._page(buf[at:at + size])
            at += size
        self.pending = buf[at:]

    @property
    def rows(self) -> int | None:
        if self.failed or self.pending or self.index_id is None or not self.leaves:
            return None
        heads = [p for p, (prev, _, _) in self.leaves.items() if prev == FIL_NULL]
        if len(heads) != 1:
            return None
        seen, total, at = 0, 0, heads[0]
        while at != FIL_NULL:
            leaf = self.leaves.get(at)
            if leaf is None or seen > len(self.leaves):
                return None  # the chain leaves the index's pages, or loops
            seen += 1
            total += leaf[2]
            at = leaf[1]
        return total if seen == len(self.leaves) else None

    def _page(self, page: bytes) -> None:
        no = self.page
        self.page += 1
        if no % self.page_size == 0:
            self._descriptors(no, page)
        if no < ROOT or no in self.free:
            return
        kind = int.from_bytes(page[24:26], "big")
        if no == ROOT:
            if kind not in (FIL_PAGE_INDEX, FIL_PAGE_TYPE_INSTANT) or not self._compact(page):
                self.failed = "page 3 is not a COMPACT/DYNAMIC index root"
                return
            self.index_id = page[PAGE_INDEX_ID:PAGE_INDEX_ID + 8]
        elif kind != FIL_PAGE_INDEX:
            if kind in (34354, 37401):  # page-compressed (and encrypted)
                self.failed = "page-compressed tablespace"
            return
        if page[PAGE_INDEX_ID:PAGE_INDEX_ID + 8] != self.index_id:
            return
        if int.from_bytes(page[PAGE_LEVEL:PAGE_LEVEL + 2], "big") != 0:
            return
        _, number, prev = _PAGE_HEAD.unpack_from(page, 0)
        nxt = int.from_bytes(page[12:16], "big")
        rows = self._records(page) if number == no and self._compact(page) else None
        if rows is None:
            self.failed = f"leaf page {no} not understood"
            return
        self.leaves[no] = (prev, nxt, rows)

    def _descriptors(self, first: int, page: bytes) -> None:
        """Mark the pages the extent descriptors on ``page`` (page 0 or an XDES page)
        say are free."""
        per_page = self.page_size // self.extent
        for i in range(per_page):
            entry = XDES_ARRAY + i * XDES_SIZE_16K
            bitmap = page[entry + XDES_BITMAP:entry + XDES_BITMAP + self.extent // 4]
            if len(bitmap) < self.extent // 4:
                return
            base = first + i * self.extent
            for j in range(self.extent):
                if bitmap[(2 * j) >> 3] >> ((2 * j) & 7) & 1:
                    self.free.add(base + j)

    @staticmethod
    def _compact(page: bytes) -> bool:
        return bool(page[PAGE_N_HEAP] & 0x80)

    def _records(self, page: bytes) -> int | None:
        """Live user records of one leaf page; None when its record list is broken."""
        want = int.from_bytes(page[PAGE_N_RECS:PAGE_N_RECS + 2], "big")
        mask = self.page_size - 1
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
