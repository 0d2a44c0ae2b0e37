"""The page chunker (``repository/pages.py``): cuts only after whole pages, within its
bounds, where a plain reading of its rule over the whole stream cuts, however the stream
is handed to it (``feed`` pieces of any size, or read into its window), and a changed
page moves at most the one cut after it."""

from __future__ import annotations

import hashlib
import os
import random

from snapkeep.repository.pages import AVG_PAGES, MAX_PAGES, MIN_PAGES, PageChunker

PAGE = 16384
SEED = 0x5EED


def _reference(data: bytes) -> list[int]:
    """Chunk lengths by the rule, read over the whole stream at once (the last chunk is
    what follows the last cut, its partial page included)."""
    key = SEED.to_bytes(8, "little")
    out, start, i = [], 0, 0
    pages = len(data) // PAGE
    while start // PAGE + i < pages:
        i += 1
        page = data[start + (i - 1) * PAGE:start + i * PAGE]
        h = hashlib.blake2b(page[:64], digest_size=8, key=key)
        h.update(page[-8:])
        cut = int.from_bytes(h.digest(), "little") & (AVG_PAGES - 1) == 0
        if i >= MAX_PAGES or (i >= MIN_PAGES and cut):
            out.append(i * PAGE)
            start, i = start + i * PAGE, 0
    if len(data) > start:
        out.append(len(data) - start)
    return out


def _fed(data: bytes, sizes: list[int]) -> list[bytes]:
    c, out, at, k = PageChunker(SEED, PAGE), [], 0, 0
    while at < len(data):
        n = sizes[k % len(sizes)]
        out += [bytes(v) for v in c.feed(data[at:at + n])]
        at, k = at + n, k + 1
    return out + [bytes(v) for v in c.finish()]


def _read_into(data: bytes, most: int) -> list[bytes]:
    c, out, at = PageChunker(SEED, PAGE), [], 0
    while True:
        room = c.space()
        n = min(len(room), most, len(data) - at)
        room[:n] = data[at:at + n]
        at += n
        out += [bytes(v) for v in c.commit(n)]
        if not n:
            break
    return out + [bytes(v) for v in c.finish()]


def test_cuts_follow_the_rule_however_the_stream_comes():
    rng = random.Random(7)
    data = os.urandom(PAGE * 700 + 1000)  # a tail shorter than a page, too
    want = _reference(data)
    assert sum(want) == len(data) and len(want) > 20
    assert all(n % PAGE == 0 and MIN_PAGES * PAGE <= n <= MAX_PAGES * PAGE for n in want[:-2])
    for sizes in ([PAGE], [1 << 20], [len(data)], [rng.randrange(1, 3 * PAGE)
                                                   for _ in range(50)]):
        got = _fed(data, sizes)
        assert [len(g) for g in got] == want, sizes
        assert b"".join(got) == data
    for most in (5 * PAGE + 3, 1 << 24):
        got = _read_into(data, most)
        assert [len(g) for g in got] == want and b"".join(got) == data


def test_a_changed_page_moves_at_most_one_cut():
    data = bytearray(os.urandom(PAGE * 500))
    before = _fed(bytes(data), [1 << 20])
    data[PAGE * 250 + 10] ^= 0xFF
    data[PAGE * 250:PAGE * 250 + 8] = os.urandom(8)  # its checksum changes too
    after = _fed(bytes(data), [1 << 20])
    changed = set(after) - set(before)
    assert 1 <= len(changed) <= 2  # the chunk holding the page (and the next, if it cut)
