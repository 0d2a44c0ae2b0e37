"""The page walk in C (``_ibdpages.c``) against its rules in Python (``ibd_rows.py``), on
real tablespaces flushed for export by a private server, intact and damaged: the same
leaves, the same page that stops a walk, the same chain verdict, and the counts equal to
``COUNT(*)``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engines.mysql import ibd_rows
from snapkeep.engines.mysql.ibd_rows import LeafCounter, py_chain, py_leaves
from tests.helpers.dbstate import q

_ibdpages = pytest.importorskip("snapkeep.engines.mysql._ibdpages")
PAGE = 16384

TABLES = [
    "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB",
    "INSERT INTO big SELECT seq, REPEAT('x', 1 + seq % 200) FROM seq_1_to_20000",
    "DELETE FROM big WHERE id % 7 = 0",
    "CREATE TABLE nokey (v INT, s TEXT) ENGINE=InnoDB",
    "INSERT INTO nokey SELECT seq, REPEAT('y', seq % 3000) FROM seq_1_to_3000",
    "CREATE TABLE wide (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO wide SELECT seq FROM seq_1_to_500",
    "ALTER TABLE wide ADD COLUMN later INT DEFAULT 7, ALGORITHM=INSTANT",
    "INSERT INTO wide (id) VALUES (501)",
    "CREATE TABLE tiny (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO tiny VALUES (1), (2)",
    "CREATE TABLE empty (id INT PRIMARY KEY) ENGINE=InnoDB",
]


@pytest.fixture(scope="module")
def tablespaces(mariadb) -> Iterator[dict[str, tuple[bytes, int]]]:
    """Each table's .ibd (as flushed for export) and its COUNT(*)."""
    db = "ibd_pages"
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        for sql in TABLES:
            cur.execute(sql)
        conn.commit()
        names = ["big", "nokey", "wide", "tiny", "empty"]
        counts = {}
        for n in names:
            cur.execute(f"SELECT COUNT(*) FROM {q(n)}")
            counts[n] = cur.fetchone()[0]
        cur.execute("FLUSH TABLES " + ", ".join(names) + " FOR EXPORT")
        files = {n: (Path(mariadb.datadir) / db / f"{n}.ibd").read_bytes() for n in names}
        cur.execute("UNLOCK TABLES")
        cur.execute(f"DROP DATABASE {db}")
    conn.close()
    yield {n: (files[n], counts[n]) for n in names}


def _count(data: bytes, feed: int) -> LeafCounter:
    c = LeafCounter(PAGE)
    for at in range(0, len(data), feed):
        c.feed(memoryview(data)[at:at + feed])
    return c


def _both(data: bytes, index_id: bytes, free: bytes) -> tuple[tuple, tuple]:
    c = _ibdpages.leaves(data, 0, PAGE, index_id, free)
    p = py_leaves(data, 0, PAGE, index_id, free)
    return (c, _ibdpages.chain(c[0]) if c[0] else None), \
        (p, py_chain(p[0]) if p[0] else None)


def _index_and_free(data: bytes) -> tuple[bytes, bytes]:
    c = _count(data, len(data))
    assert c.index_id is not None
    return c.index_id, bytes(c.free)


def test_the_counts_equal_count_star_however_the_pages_are_fed(tablespaces):
    assert ibd_rows.leaves is _ibdpages.leaves  # the build under test uses the C walk
    for name, (data, want) in tablespaces.items():
        for feed in (PAGE, 3 * PAGE + 5, 1 << 20, len(data)):
            assert _count(data, feed).rows == want, (name, feed)


def test_c_and_python_read_the_same_leaves(tablespaces):
    for name, (data, _want) in tablespaces.items():
        index_id, free = _index_and_free(data)
        c, p = _both(data, index_id, free)
        assert c == p, name
        assert c[0][1:] == (0, 0)  # nothing stopped the walk


def test_damaged_pages_give_the_same_verdict_in_c_and_python(tablespaces):
    """Bytes flipped at random offsets of leaf pages (record headers, next-record
    offsets, page links, counts): C and Python agree on every damaged copy, and a damage
    that changes the verdict is never read as a different row count."""
    rng = random.Random(18)
    data, want = tablespaces["big"]
    index_id, free = _index_and_free(data)
    pages = len(data) // PAGE
    changed = 0
    for _ in range(300):
        damaged = bytearray(data)
        page = rng.randrange(4, pages)
        # header fields (links, n_recs, level, index id) or the record area
        offset = rng.choice([rng.randrange(8, 16), rng.randrange(38, 74),
                             rng.randrange(94, PAGE - 8)])
        damaged[page * PAGE + offset] ^= 1 << rng.randrange(8)
        c, p = _both(bytes(damaged), index_id, free)
        assert c == p, (page, offset)
        (packed, _bad_no, bad), rows = c
        if bad or rows is None:
            changed += 1
        else:  # still a well-formed list: a flip in a record's data, or a delete flag
            assert abs(rows - want) <= 1, (page, offset, rows)
    assert changed >= 10  # the damage was seen, not only tolerated (19 of 300 here)


def test_a_broken_chain_is_no_count(tablespaces):
    data, _want = tablespaces["big"]
    index_id, free = _index_and_free(data)
    packed, _, _ = _ibdpages.leaves(data, 0, PAGE, index_id, free)
    assert _ibdpages.chain(packed) is not None
    recs = bytearray(packed)
    del recs[16 * 5:16 * 6]  # a leaf missing from the middle of the list
    assert _ibdpages.chain(bytes(recs)) is None and py_chain(bytes(recs)) is None
    loop = bytearray(packed)
    loop[-8:-4] = loop[8:12]  # the tail points back into the list
    assert _ibdpages.chain(bytes(loop)) is None and py_chain(bytes(loop)) is None
    assert _ibdpages.chain(b"") is None
