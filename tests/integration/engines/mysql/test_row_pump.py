"""The C row pump (``_rowpump.c``): the dump's default row reader where mysqlclient and the
built extension are present. Its lines must be byte for byte what ``encode_rows`` makes of
the server's rows, in whole lines per block, and its errors must reach the dump's error
translation."""

from __future__ import annotations

import random
import threading
import time

import pytest

from snapkeep.engines.mysql import _rowpump, dump_database, prepare_restore
from snapkeep.engines.mysql.connect import (
    StreamReader,
    connect_stream,
    errors_as,
    row_pump_built,
)
from snapkeep.engines.mysql.encoding import decode_line, encode_rows
from snapkeep.errors import ServiceUnavailable
from tests.helpers.dbstate import assert_same, db_state, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run

AWKWARD = ("'", "\\", "\t", "\n", "\r", "\0", "\x1a", "NULL", "\\N", "'\t", "a'\n'b", "", "\\\\n")


def test_the_row_pump_is_built():
    # setup.py builds it optionally; scripts/setup installs what it needs, so a missing
    # pump here means the dump silently fell back to its slower path.
    assert row_pump_built()


@pytest.fixture
def awkward_table(mariadb, fresh_db):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1, "
              "b VARBINARY(300), u TEXT CHARACTER SET utf8mb4, n DECIMAL(10,2), f DOUBLE)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", [
            (i, AWKWARD[i % len(AWKWARD)] if i % 5 else None,
             bytes(range(256)) if i % 11 == 0 else bytes([i % 256, 0, 39, 92, 9, 10, 13]),
             "ünïcødé ✓ " + AWKWARD[i % len(AWKWARD)], None if i % 7 == 0 else f"{i}.25",
             -0.0 if i % 13 == 0 else i / 3) for i in range(1, 3001)])
    return conn


@pytest.mark.parametrize("block", [1, 4096, 1 << 20])
def test_pumped_lines_equal_the_python_encoding_of_the_servers_rows(
        mariadb, fresh_db, awkward_table, block):
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        reader.execute("SET SESSION character_set_results = binary")
        assert reader.pumps
        sql = "SELECT * FROM t ORDER BY id"
        blocks = [(bytes(view), rows) for view, rows in reader.pump(sql, block)]
        expected = b"".join(encode_rows(batch) for batch in reader.stream(sql, 500))
    finally:
        reader.close()
    assert b"".join(data for data, _ in blocks) == expected
    assert sum(rows for _, rows in blocks) == 3000
    for data, rows in blocks:  # whole lines only: a block ends a line and counts its rows
        assert data.endswith(b"\n") and data.count(b"\n") == rows
    if block == 1:
        assert len(blocks) == 3000  # one row per block when the limit is below a line
    lines = expected.split(b"\n")[:-1]
    assert decode_line(lines[10])[2] == bytes(range(256))  # row 11: every byte value


def test_every_escape_at_every_offset_of_short_and_long_fields(mariadb, fresh_db):
    # The pump finds the bytes to escape eight at a time, the last few bytes of a field as
    # one overlapping word: each byte that needs an escape (and its neighbours, which do
    # not) at every offset of fields of 0-40 bytes, and two of them in one word.
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE w (id INT PRIMARY KEY, v VARBINARY(100), x VARBINARY(100))")
    specials = b"\\\t\n\r\0"
    others = b"\x1f\x20\x5b\x5d\x7f\x80\xdc\xff\x01"
    values = [bytes(n) for n in range(41)]  # NUL bytes only, every length
    for n in range(1, 41):
        for at in range(n):
            for b in specials + others:
                v = bytearray(b"a" * n)
                v[at] = b
                values.append(bytes(v))
            v = bytearray(b"z" * n)
            v[at] = 92
            v[(at * 7 + 3) % n] = 10
            values.append(bytes(v))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO w VALUES (%s, %s, %s)",
                        [(i, v, v[::-1] + b"\t") for i, v in enumerate(values)])
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        reader.execute("SET SESSION character_set_results = binary")
        sql = "SELECT * FROM w ORDER BY id"
        pumped = b"".join(data for data, _ in reader.pump(sql, 1 << 16))
        expected = b"".join(encode_rows(batch) for batch in reader.stream(sql, 500))
    finally:
        reader.close()
    assert pumped == expected
    assert [decode_line(line)[1] for line in pumped.split(b"\n")[:-1]] == values


def test_a_block_is_filled_again_only_once_nothing_refers_to_it(
        mariadb, fresh_db, awkward_table):
    # The stream reuses a block's buffer once its views are gone: views kept (here every
    # third, and a view of a view) must keep their lines while the others are recycled.
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        reader.execute("SET SESSION character_set_results = binary")
        sql = "SELECT * FROM t ORDER BY id"
        kept: list[tuple[int, memoryview, bytes]] = []
        copies: list[bytes] = []
        for i, (view, _) in enumerate(reader.pump(sql, 2048)):
            copies.append(bytes(view))
            if i % 3 == 0:
                kept.append((i, view[1:], copies[-1][1:]))
            del view
        expected = b"".join(encode_rows(batch) for batch in reader.stream(sql, 500))
    finally:
        reader.close()
    assert len(copies) > 30 and b"".join(copies) == expected
    assert all(bytes(view) == copy for _, view, copy in kept)


def test_a_pump_closed_early_leaves_its_connection_usable(mariadb, fresh_db, awkward_table):
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        stream = reader.pump("SELECT * FROM t ORDER BY id", 1024)
        first, rows = next(stream)
        assert 0 < rows < 3000
        stream.close()  # the rest of the result is read and dropped
        assert reader.execute("SELECT COUNT(*) FROM t") == [(b"3000",)]
    finally:
        reader.close()


def test_a_server_error_from_the_pump_becomes_a_clear_snapkeep_error(mariadb, fresh_db):
    target = target_for(mariadb, fresh_db)
    reader = StreamReader(connect_stream(target))
    try:
        with pytest.raises(ServiceUnavailable, match="no_such_table") as err, \
                errors_as(target, "dumping the database"):
            list(reader.pump("SELECT * FROM no_such_table", 1024))
        assert "dumping the database" in str(err.value)
        assert reader.execute("SELECT 1") == [(b"1",)]
    finally:
        reader.close()


def test_a_row_longer_than_max_allowed_packet_is_pumped_whole(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB, note TEXT)",
        "INSERT INTO big VALUES (1, 'short', 'x'), (3, 'tail', 'y')")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO big VALUES (2, %s, 'it''s\t\n')", (bytes(range(256)) * 6000,))
    before = db_state(conn, fresh_db)
    old = conn.cursor()
    old.execute("SELECT @@GLOBAL.max_allowed_packet")
    (limit,) = old.fetchone()
    run(conn, "SET GLOBAL max_allowed_packet = 1048576")  # new connections only
    try:
        target = target_for(mariadb, fresh_db)
        d = dump_database(target, repo, Recorder(), threads=2)
    finally:
        run(conn, f"SET GLOBAL max_allowed_packet = {int(limit)}")
    assert [p["encoding"] for t in d["tables"] for p in t["parts"]] == ["escaped"]
    run(conn, "DELETE FROM big")
    prepared = prepare_restore(target, d, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert_same(db_state(conn, fresh_db), before)


def test_an_empty_result_pumps_no_block(mariadb, fresh_db, awkward_table):
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        assert list(reader.pump("SELECT * FROM t WHERE id < 0", 1024)) == []
        raw = _rowpump.RowStream(reader.conn, b"SELECT * FROM t WHERE id < 0")
        assert raw.read(1024) == (b"", 0) and raw.read(1024) == (b"", 0)
        raw.close()
    finally:
        reader.close()


def test_random_binary_values_pump_exactly(mariadb, fresh_db):
    rng = random.Random(20261127)
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE r (id INT PRIMARY KEY, a BLOB, b VARBINARY(64), "
              "c TEXT CHARACTER SET utf8mb4)")
    specials = b"\\\t\n\r\0'\x1aN"
    rows = []
    for i in range(2000):
        def value(n: int) -> bytes | None:
            if rng.random() < 0.1:
                return None
            return bytes(rng.choice(specials) if rng.random() < 0.3 else rng.randrange(256)
                         for _ in range(rng.randrange(n)))
        text = None if rng.random() < 0.1 else "".join(
            rng.choice("aé✓\\\t\n\r\0'N") for _ in range(rng.randrange(30)))
        rows.append((i, value(3000), value(64), text))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO r VALUES (%s, %s, %s, %s)", rows)
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        reader.execute("SET SESSION character_set_results = binary")
        lines = b"".join(d for d, _ in reader.pump("SELECT * FROM r ORDER BY id", 7000))
    finally:
        reader.close()
    decoded = [decode_line(line) for line in lines.split(b"\n")[:-1]]
    assert decoded == [(str(i).encode(), a, b, None if c is None else c.encode())
                       for i, a, b, c in rows]


def test_a_read_limit_below_one_is_refused(mariadb, fresh_db, awkward_table):
    # 0 used to read nothing and look like the end of the result (rows silently lost);
    # a negative one became a huge unsigned limit (the whole result in one block).
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        stream = _rowpump.RowStream(reader.conn, b"SELECT id FROM t ORDER BY id")
        for limit in (0, -1):
            with pytest.raises(ValueError, match="limit must be at least 1"):
                stream.read(limit)
        data, rows = stream.read(1 << 20)
        assert rows == 3000 and data.startswith(b"1\n2\n")
        stream.close()
    finally:
        reader.close()


def test_a_second_init_frees_the_first_result(mariadb, fresh_db, awkward_table):
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    try:
        digest = _rowpump.LineDigest()
        stream = _rowpump.RowStream(reader.conn, b"SELECT id FROM t ORDER BY id", digest)
        assert stream.read(1) == (b"1\n", 1)
        # the first result is half read: it is freed before the new query runs on the
        # same connection (which used to fail with "Commands out of sync")
        stream.__init__(reader.conn, b"SELECT id FROM t WHERE id > 2998 ORDER BY id")
        assert stream.read(1 << 20) == (b"2999\n3000\n", 2)
        assert stream.read(1 << 20) == (b"", 0)
        assert digest.result()[0] == 1  # the new stream has no digest: the old one stopped
        stream.close()
        assert reader.execute("SELECT COUNT(*) FROM t") == [(b"3000",)]
    finally:
        reader.close()


def test_a_stream_in_use_by_one_thread_refuses_the_others(mariadb, fresh_db):
    # The reading thread is held inside read(): the server blocks on a user lock after
    # the big first rows (which fill its network buffer and reach the client, so the
    # digest counts them), until this thread releases the lock.
    conn = mariadb.connect(fresh_db)
    run(conn, "CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO big VALUES (%s, %s)",
                        [(i, bytes([65 + i]) * 100_000) for i in range(1, 9)])
        cur.execute("SELECT GET_LOCK(%s, 0)", (fresh_db,))
    reader = StreamReader(connect_stream(target_for(mariadb, fresh_db)))
    digest = _rowpump.LineDigest()
    sql = f"SELECT id, payload, IF(id = 6, GET_LOCK('{fresh_db}', 600), 0) FROM big"
    stream = _rowpump.RowStream(reader.conn, sql.encode(), digest)
    result: list[tuple[bytes, int]] = []
    reading = threading.Thread(target=lambda: result.append(stream.read(1 << 30)))
    reading.start()
    try:
        while digest.result()[0] == 0 and reading.is_alive():  # a row encoded in read()
            time.sleep(0.01)
        assert reading.is_alive()
        for other in (lambda: stream.read(1024), stream.close,
                      lambda: stream.__init__(reader.conn, b"SELECT 1")):
            with pytest.raises(RuntimeError, match="in use by another thread"):
                other()
    finally:
        run(conn, f"DO RELEASE_LOCK('{fresh_db}')")
        reading.join()
    data, rows = result[0]
    assert rows == 8 and data.count(b"\n") == 8
    stream.close()
    assert reader.execute("SELECT COUNT(*) FROM big") == [(b"8",)]
    reader.close()
