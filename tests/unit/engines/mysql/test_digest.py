"""The row digest's hash and line splitting (``digest.py``, ``_rowpump.c``): XXH64 against
published values and an independent reference, the C and Python line digests identical
whatever the cut into blocks, and the per-table JSON form."""

from __future__ import annotations

import random
import struct

import pytest

from snapkeep.engines.mysql import _rowpump
from snapkeep.engines.mysql.digest import (
    SEED1,
    LineDigest,
    Sum,
    _PyLineDigest,
    by_encoding,
    mismatch,
    py_xxh64,
    table_digest,
    xxh64,
)

M = 2**64 - 1
PRIMES = (11400714785074694791, 14029467366897019727, 1609587929392839161,
          9650029242287828579, 2870177450012600261)


def reference_xxh64(data: bytes, seed: int) -> int:
    """XXH64 written again from the specification, independently of digest.py."""
    p1, p2, p3, p4, p5 = PRIMES

    def rot(x: int, r: int) -> int:
        return ((x << r) | (x >> (64 - r))) & M

    def rnd(acc: int, x: int) -> int:
        return rot((acc + x * p2) & M, 31) * p1 & M

    n, pos = len(data), 0
    if n >= 32:
        acc = [(seed + p1 + p2) & M, (seed + p2) & M, seed & M, (seed - p1) & M]
        while n - pos >= 32:
            acc = [rnd(a, x) for a, x in zip(acc, struct.unpack_from("<4Q", data, pos),
                                              strict=True)]
            pos += 32
        h = sum(rot(a, r) for a, r in zip(acc, (1, 7, 12, 18), strict=True)) & M
        for a in acc:
            h = ((h ^ rnd(0, a)) * p1 + p4) & M
    else:
        h = (seed + p5) & M
    h = (h + n) & M
    while n - pos >= 8:
        h = (rot(h ^ rnd(0, struct.unpack_from("<Q", data, pos)[0]), 27) * p1 + p4) & M
        pos += 8
    if n - pos >= 4:
        h = (rot(h ^ (struct.unpack_from("<I", data, pos)[0] * p1 & M), 23) * p2 + p3) & M
        pos += 4
    for b in data[pos:]:
        h = rot(h ^ (b * p5 & M), 11) * p1 & M
    h = ((h ^ (h >> 33)) * p2) & M
    h = ((h ^ (h >> 29)) * p3) & M
    return h ^ (h >> 32)


# Published XXH64 values (the first from the xxHash specification; the others computed
# with the reference xxhash library, not with snapkeep).
KNOWN = [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"x" * 40, 0, 0x926F564E1B3E18D5),
    (b"", SEED1, 0xC4349FC93C010000),
    (bytes(range(256)), SEED1, 0xCC297FEF2BB48BBF),
]


@pytest.mark.parametrize(("data", "seed", "expected"), KNOWN)
def test_xxh64_gives_the_published_values(data, seed, expected):
    assert reference_xxh64(data, seed) == expected
    assert _rowpump.xxh64(data, seed) == expected
    assert py_xxh64(data, seed) == expected


def test_the_c_and_python_xxh64_equal_the_reference_at_every_length():
    rng = random.Random(12)
    for n in [*range(0, 100), 127, 128, 129, 1000, 4096 + 3]:
        data = rng.randbytes(n)
        for seed in (0, SEED1, rng.getrandbits(64)):
            expected = reference_xxh64(data, seed)
            assert _rowpump.xxh64(data, seed) == expected, (n, seed)
            assert py_xxh64(data, seed) == expected, (n, seed)
    assert xxh64(b"abc") == 0x44BC2CF5AD770999


def _lines_sum(lines: list[bytes]) -> Sum:
    total = Sum()
    for line in lines:
        total += Sum(1, reference_xxh64(line, 0), reference_xxh64(line, SEED1))
    return total


def _cuts(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 7, 64, 1000, 20000])
        out.append(data[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("impl", ["c", "python"])
def test_escaped_lines_digest_the_same_whatever_the_blocks_and_order(impl):
    rng = random.Random(5)
    lines = [rng.randbytes(rng.randrange(0, 300)).replace(b"\n", b"n") for _ in range(400)]
    lines += [b"", b"", b"\\N", b"dup", b"dup"]
    expected = _lines_sum(lines)
    for attempt in range(3):
        shuffled = lines[:]
        rng.shuffle(shuffled)
        d = _rowpump.LineDigest() if impl == "c" else _PyLineDigest()
        for block in _cuts(b"".join(line + b"\n" for line in shuffled), rng):
            d.update(block)
        assert d.result() == (expected.rows, expected.s0, expected.s1, 0), attempt


@pytest.mark.parametrize("impl", ["c", "python"])
def test_quoted_lines_split_like_load_data_reads_them(impl):
    # newlines inside quotes do not end a line; an escaped quote does not end the quotes
    lines = [b"1\t'a\nb'\t\\N", b"2\t'it\\'s\n'\tNULL", b"3\t''\t'\\\\'", b"4\tx'y\t'\n\n'"]
    d = _rowpump.LineDigest(quoted=True) if impl == "c" else _PyLineDigest(quoted=True)
    for byte in b"".join(line + b"\n" for line in lines):
        d.update(bytes([byte]))
    expected = _lines_sum(lines)
    assert d.result() == (4, expected.s0, expected.s1, 0)


def test_an_unfinished_last_line_is_pending_not_counted():
    for d in (LineDigest(), LineDigest("quoted")):
        d.update(b"a\tb\nc\t'd")
        assert d.sum().rows == 1 and d.pending == 4


def test_the_c_and_python_line_digests_agree_on_random_streams():
    rng = random.Random(9)
    alphabet = b"ab\t\n'\\N"
    for quoted in (False, True):
        data = bytes(rng.choice(alphabet) for _ in range(5000))
        c, py = _rowpump.LineDigest(quoted=quoted), _PyLineDigest(quoted=quoted)
        c.update(data)
        for block in _cuts(data, rng):
            py.update(block)
        assert c.result() == py.result()


def test_a_tables_digest_sums_its_parts_per_encoding():
    a, b, c = Sum(2, 5, M), Sum(1, M, 3), Sum(4, 1, 1)
    one = table_digest([("escaped", a), ("escaped", b)])
    assert one == {"algorithm": "xxh64x2", "encoding": "escaped", "rows": 3,
                   "sum": f"{4:016x}{2:016x}"}  # each half modulo 2^64
    assert mismatch(one, {"escaped": a + b}) is None
    assert "digest of the escaped lines" in mismatch(one, {"escaped": Sum(3, 4, 3)})
    assert mismatch(one, {"escaped": a + c}) == "6 escaped lines, the digest has 3"
    mixed = table_digest([("quoted", a), ("escaped", c)])
    assert mixed["encoding"] == "mixed" and mixed["rows"] == 6
    assert by_encoding(mixed) == {"escaped": c.to_json(), "quoted": a.to_json()}
    assert mismatch(mixed, {"quoted": a, "escaped": c}) is None
    assert "recorded over escaped/quoted" in mismatch(mixed, {"escaped": a + c})
    empty = table_digest([])
    assert empty["rows"] == 0 and mismatch(empty, {}) is None
    assert mismatch(empty, {"quoted": Sum()}) is None
