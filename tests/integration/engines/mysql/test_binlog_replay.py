"""The fast replayer (engines/mysql/binlog_replay.py) against a real server's binlog.

A private ``mariadbd`` writes a row-format binlog while a workload runs on database
``src``: every column type, inserts/updates/deletes, triggers writing another table (of
this database and of another one), a cascading foreign key, DDL (qualified from another
default database too), another database's writes and DDL, a FLUSH LOGS in the middle.
Copies of the start state (made before the start position) are replayed into from pieces
cut out of the server's binlog files at event boundaries — transactions split across
pieces — and must equal ``src`` (``db_state`` fingerprint) at the stop point.
Run twice: with CRC32 checksums, and with no checksum and compressed events.
"""

from __future__ import annotations

import random
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from snapkeep.engines.mysql import binlog_events as be
from snapkeep.engines.mysql.binlog_replay import ReplayError, replay
from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayStop
from snapkeep.errors import ServerSetupError
from snapkeep.progress import NullReporter
from snapkeep.sandbox import PrivateMariaDB
from tests.helpers.binlog import binlog_files, binlog_server, file_bytes, master_status
from tests.helpers.dbstate import db_state, target_for

COPIES = ("all_to_end", "to_time", "to_gtid", "one_table", "denied", "refused")

SETUP = [
    "SET TIMESTAMP = 1700000000.123456",  # the copies' trigger rows must be equal
    """CREATE TABLE types (
        id INT UNSIGNED PRIMARY KEY AUTO_INCREMENT,
        ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, i INT,
        bi BIGINT, bu BIGINT UNSIGNED,
        de DECIMAL(30,10), du DECIMAL(5,2) UNSIGNED, fl FLOAT, db DOUBLE,
        dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(6) NULL, yr YEAR,
        bt BIT(13), en ENUM('a','b','c'), st SET('x','y','z'),
        js JSON, bl BLOB, lb LONGBLOB, tx TEXT, vc VARCHAR(300),
        ch CHAR(10) CHARACTER SET latin1, bn BINARY(8), vb VARBINARY(100),
        g GEOMETRY, p POINT
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, type_id INT UNSIGNED,
        action VARCHAR(10), at DATETIME(6))""",
    """CREATE TRIGGER types_ai AFTER INSERT ON types FOR EACH ROW
        INSERT INTO audit (type_id, action, at) VALUES (NEW.id, 'insert', NOW(6))""",
    """CREATE TRIGGER types_ad AFTER DELETE ON types FOR EACH ROW
        INSERT INTO audit (type_id, action, at) VALUES (OLD.id, 'delete', NOW(6))""",
    "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))",
    """CREATE TABLE child (id INT PRIMARY KEY, pid INT,
        FOREIGN KEY (pid) REFERENCES parent (id) ON DELETE CASCADE)""",
    # a trigger writing into another database: those rows are not this database's
    """CREATE TRIGGER parent_ai AFTER INSERT ON parent FOR EACH ROW
        INSERT INTO other.log (v) VALUES (NEW.id)""",
    "CREATE TABLE dropme (a INT)",
    "CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(200))",
    "CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5",
    """CREATE TABLE versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING""",
    """CREATE TABLE generated (id INT PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL,
        c VARCHAR(20) AS (CONCAT('c', a)) PERSISTENT, KEY (c))""",
    "CREATE TABLE nokey (a INT, b VARCHAR(10))",
    "INSERT INTO parent VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    "INSERT INTO child VALUES (10, 1), (11, 1), (20, 2), (30, 3)",
    "INSERT INTO types (i, vc) VALUES (1, 'start'), (2, NULL)",
]


def _value_row(rnd: random.Random, n: int) -> tuple[str, list[Any]]:
    """An INSERT of one ``types`` row: extremes, NULLs, binary and 4-byte UTF-8."""
    def maybe(v: Any) -> Any:
        return None if rnd.random() < 0.15 else v

    blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
    text = "".join(rnd.choice(["a", "é", "漢", "😀", "'", "\\", "\0", " "])
                   for _ in range(rnd.randrange(0, 60)))
    values = [
        maybe(rnd.choice([-128, 127, 0, rnd.randrange(-128, 128)])),
        maybe(rnd.choice([0, 255, rnd.randrange(256)])),
        maybe(rnd.randrange(-32768, 32768)), maybe(rnd.randrange(0, 1 << 24)),
        maybe(rnd.randrange(-(1 << 31), 1 << 31)),
        maybe(rnd.choice([-(1 << 63), (1 << 63) - 1, rnd.randrange(-(1 << 63), 1 << 63)])),
        maybe(rnd.choice([0, (1 << 64) - 1, rnd.randrange(1 << 64)])),
        maybe(f"{rnd.randrange(-10**19, 10**19)}.{rnd.randrange(10**10):010d}"),
        maybe(f"{rnd.randrange(1000)}.{rnd.randrange(100):02d}"),
        maybe(rnd.uniform(-1e30, 1e30)), maybe(rnd.uniform(-1e300, 1e300)),
        maybe(f"{rnd.randrange(1000, 9999)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"),
        maybe(f"{rnd.randrange(-837, 838)}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}."
              f"{rnd.randrange(1000):03d}"),
        maybe(f"{rnd.randrange(1000, 9999)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
              f" 12:34:56.{rnd.randrange(10**6):06d}"),
        maybe(f"20{rnd.randrange(10, 37)}-06-15 01:02:03.{rnd.randrange(10**6):06d}"),
        maybe(rnd.randrange(1901, 2156)),
        maybe(rnd.randrange(1 << 13)), maybe(rnd.choice("abc")),
        maybe(",".join(sorted(rnd.sample("xyz", rnd.randrange(4))))),
        maybe(f'{{"n": {n}, "s": "{rnd.choice(["ü", "x", "😀"])}", "l": [1, 2.5, null]}}'),
        maybe(blob), maybe(blob * rnd.randrange(1, 4)), maybe(text), maybe(text[:300]),
        maybe(rnd.choice(["abc", "ÿé", ""])), maybe(bytes(rnd.randrange(256) for _ in range(8))),
        maybe(blob[:100]),
        maybe(f"POLYGON(({n} 0, {n + 1} 0, {n + 1} 1, {n} 0))"),
        maybe(f"POINT({rnd.uniform(-180, 180)} {rnd.uniform(-90, 90)})"),
    ]
    cols = ("ti, tu, si, mi, i, bi, bu, de, du, fl, db, dt, tm, dtm, ts, yr, bt, en, st, js, "
            "bl, lb, tx, vc, ch, bn, vb, g, p")
    marks = ", ".join(["%s"] * 27 + ["ST_GeomFromText(%s)"] * 2)
    return f"INSERT INTO types ({cols}) VALUES ({marks})", values


def _run(conn: Any, *statements: str | tuple[str, Any]) -> None:
    with conn.cursor() as cur:
        for s in statements:
            if isinstance(s, tuple):
                cur.execute(s[0], s[1])
            else:
                cur.execute(s)


def _workload(conn: Any, rnd: random.Random, phase: int) -> None:
    n0 = phase * 1000
    for n in range(n0, n0 + 40):  # one transaction each, some several statements
        if n % 5 == 0:
            _run(conn, "BEGIN", _value_row(rnd, n), _value_row(rnd, n + 500),
                 ("UPDATE types SET vc = %s, js = JSON_SET(COALESCE(js, '{}'), '$.u', %s) "
                  "WHERE id %% 7 = %s", (f"u{n}😀", n, n % 7)), "COMMIT")
        else:
            _run(conn, _value_row(rnd, n))
    _run(conn,
         "UPDATE types SET bl = UNHEX('00FF27225C0A'), tu = 255 WHERE id % 3 = 0",
         "DELETE FROM types WHERE id % 4 = 1",  # the delete trigger writes audit rows
         "INSERT INTO other.log (v) VALUES (-1)",  # another database from this one
         f"INSERT INTO parent VALUES ({n0 + 100}, 'p')",  # its trigger writes other.log
         ("INSERT INTO types (lb) VALUES (%s)", (bytes(range(256)) * 400,)),  # a big row
         # one transaction across databases: only src's rows replayed
         "BEGIN", f"INSERT INTO other.log (v) VALUES ({n0})",
         f"INSERT INTO child VALUES ({n0 + 1}, {n0 + 100})", "COMMIT")
    # one statement's rows larger than the server's packet: sent in parts
    _run(conn, f"INSERT INTO bulk SELECT seq + {n0 * 100}, REPEAT(CHAR(65 + seq % 26), 60) "
               "FROM seq_1_to_20000",
         f"UPDATE bulk SET v = CONCAT(v, '{phase}')")
    _run(conn, "SELECT NEXTVAL(seq)", "SELECT NEXTVAL(seq)",
         f"INSERT INTO versioned VALUES ({phase}, 1), ({phase + 10}, 1)",
         "UPDATE versioned SET v = v + 1", f"DELETE FROM versioned WHERE id = {phase + 10}",
         f"INSERT INTO generated (id, a) VALUES ({phase}, 3), ({phase + 10}, 4)",
         "UPDATE generated SET a = a + 1",
         f"INSERT INTO nokey VALUES ({phase}, 'x'), ({phase}, 'x'), (NULL, NULL)",
         f"DELETE FROM nokey WHERE a = {phase} LIMIT 1", "UPDATE nokey SET b = 'y'")
    if phase == 1:
        _run(conn,
             "DELETE FROM parent WHERE id = 1",  # cascades to child: not in the binlog
             "ALTER TABLE types ADD COLUMN extra INT NOT NULL DEFAULT 7",
             "ALTER TABLE audit ADD COLUMN added TIMESTAMP(6) NOT NULL "
             "DEFAULT CURRENT_TIMESTAMP(6)",  # existing rows get the ALTER's time
             "USE other",
             "CREATE TABLE src.made_elsewhere (id INT PRIMARY KEY, v VARCHAR(10))",
             "INSERT INTO src.made_elsewhere VALUES (1, 'a'), (2, 'b')",
             "CREATE TABLE other.more (a INT)", "ALTER TABLE log ADD COLUMN w INT",
             "USE src",
             "CREATE TABLE other.from_src (a INT)",  # another database's DDL from here
             "DROP TABLE dropme",
             "FLUSH LOGS")
        for n in range(50):
            _run(conn, ("UPDATE types SET extra = %s WHERE id = %s", (n, n)))
    else:
        _run(conn, "DROP TABLE made_elsewhere", "ALTER TABLE types DROP COLUMN ch",
             "TRUNCATE TABLE child", "FLUSH LOGS", "INSERT INTO child VALUES (1, 2)")


def _state(server: PrivateMariaDB, db: str) -> dict[str, Any]:
    conn = server.connect()
    try:
        state = db_state(conn, db)
    finally:
        conn.close()
    state.pop("database")  # SHOW CREATE DATABASE names it
    return state


# max_allowed_packet 1 MiB: a statement's rows (bulk, 2.4 MiB of events) are split
SERVERS = {"crc32": ("--binlog-checksum=CRC32", "--max-allowed-packet=1M"),
           "compressed": ("--binlog-checksum=NONE", "--log-bin-compress=ON",
                          "--log-bin-compress-min-len=10", "--max-allowed-packet=1M")}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def scenario(request, tmp_path_factory) -> Any:
    server = binlog_server(tmp_path_factory.mktemp(f"replay-{request.param}"),
                           *SERVERS[request.param])
    conn = server.connect()
    _run(conn, "CREATE DATABASE other", "CREATE TABLE other.log (id INT AUTO_INCREMENT "
               "PRIMARY KEY, v INT)")
    for db in ("src", *COPIES):
        _run(conn, f"CREATE DATABASE {db} DEFAULT CHARSET utf8mb4", f"USE {db}", *SETUP,
             "SET TIMESTAMP = DEFAULT")
    start = master_status(server)
    rnd = random.Random(16)
    _run(conn, "USE src")
    _workload(conn, rnd, 1)
    # the stop point: the next whole second; phase 2 begins after it
    stop_at = datetime.fromtimestamp(int(time.time()) + 1, UTC)
    middle = _state(server, "src")
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid = cur.fetchone()[0]
    while time.time() < stop_at.timestamp() + 0.05:
        time.sleep(0.05)
    _run(conn, "USE src")
    _workload(conn, rnd, 2)
    end = _state(server, "src")
    conn.close()
    yield {"name": request.param, "server": server, "start": start, "stop_at": stop_at,
           "gtid": gtid, "middle": middle, "end": end}
    server.stop()


def _pieces(server: PrivateMariaDB, start_file: str) -> list[ReplayPiece]:
    """The binlog files from ``start_file`` on, cut at event boundaries into pieces of
    1 to 9 events (so transactions span pieces), read back in odd-sized chunks."""
    rnd = random.Random(7)
    files = binlog_files(server)
    out: list[ReplayPiece] = []
    for name in files[files.index(start_file):]:
        data = file_bytes(server, name)
        bounds = [end for _, end in be.events(data, 4)]
        at = 4
        while bounds:
            k = min(len(bounds), rnd.randrange(1, 10))
            end, bounds = bounds[k - 1], bounds[k:]
            out.append(ReplayPiece(name, at, end, lambda d=data[at:end]: (
                d[i:i + 777] for i in range(0, len(d), 777))))
            at = end
    return out


def _replay(s: dict[str, Any], into: str, stop: ReplayStop, *,
            tables: set[str] | None = None) -> Any:
    target = target_for(s["server"], into)
    file, position = s["start"]
    return replay(target, _pieces(s["server"], file), start_file=file,
                  start_position=position, source_db="src", into_db=into, tables=tables,
                  stop=stop, reporter=NullReporter())


def test_the_pieces_split_transactions(scenario):
    pieces = _pieces(scenario["server"], scenario["start"][0])
    files = {p.file for p in pieces}
    firsts = [b"".join(p.read())[4] for p in pieces]
    assert len(files) >= 3  # two FLUSH LOGS
    assert sum(1 for k in firsts if k in be.ROWS) > 10  # pieces starting mid-transaction
    assert any(k == be.XID for k in firsts)
    kinds = {b"".join(p.read())[s + 4] for p in pieces
             for s, _ in be.events(b"".join(p.read()))}
    compressed = kinds & (set(be.UNCOMPRESSED) | {be.QUERY_COMPRESSED})
    assert compressed if scenario["name"] == "compressed" else not compressed


def test_replays_everything_into_a_copy_of_the_start(scenario):
    res = _replay(scenario, "all_to_end", ReplayStop())
    assert not res.reached_stop
    assert res.transactions > 100 and res.events > 200
    assert _state(scenario["server"], "all_to_end") == scenario["end"]
    # what was skipped stayed out: another database's table was not created here
    conn = scenario["server"].connect()
    _run(conn, "USE all_to_end")
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert "from_src" not in {r[0] for r in cur.fetchall()}
    conn.close()


def test_stops_before_the_first_transaction_at_a_time(scenario):
    res = _replay(scenario, "to_time", ReplayStop(before_time=scenario["stop_at"]))
    assert res.reached_stop
    assert res.last_time is not None and res.last_time < scenario["stop_at"]
    assert _state(scenario["server"], "to_time") == scenario["middle"]


def test_stops_right_after_a_gtid(scenario):
    res = _replay(scenario, "to_gtid", ReplayStop(after_gtid=scenario["gtid"]))
    assert res.reached_stop and res.last_gtid == scenario["gtid"]
    assert _state(scenario["server"], "to_gtid") == scenario["middle"]


def test_replays_only_the_chosen_tables(scenario):
    before = _state(scenario["server"], "one_table")
    _replay(scenario, "one_table", ReplayStop(before_time=scenario["stop_at"]),
            tables={"types", "made_elsewhere"})
    after = _state(scenario["server"], "one_table")
    middle = scenario["middle"]
    for name in ("types", "made_elsewhere"):
        assert after["tables"][name] == middle["tables"][name]
    for name in ("audit", "parent", "child", "dropme", "bulk"):
        assert after["tables"][name] == before["tables"][name]


def test_a_user_without_binlog_replay_is_refused_naming_the_grant(scenario):
    """Refused before anything is applied, even when the first event is a DDL statement
    (which needs no BINLOG statement)."""
    server = scenario["server"]
    conn = server.connect()
    _run(conn, "CREATE USER 'nobinlog'@'%' IDENTIFIED BY 'pw'",
         "GRANT ALL ON denied.* TO 'nobinlog'@'%'")
    file, position = master_status(server)
    _run(conn, "CREATE TABLE src.ddl_first (a INT)", "INSERT INTO src.ddl_first VALUES (1)")
    conn.close()
    before = _state(server, "denied")
    target = target_for(server, "denied")
    target = type(target)(target.host, target.port, "nobinlog", "pw", "denied")
    with pytest.raises(ServerSetupError, match="GRANT BINLOG REPLAY ON"):
        replay(target, _pieces(server, file), start_file=file, start_position=position,
               source_db="src", into_db="denied", tables=None, stop=ReplayStop(),
               reporter=NullReporter())
    assert _state(server, "denied") == before
    # with the grant (and without BINLOG ADMIN: the annotations stay on) it replays
    conn = server.connect()
    _run(conn, "GRANT BINLOG REPLAY ON *.* TO 'nobinlog'@'%'")
    replay(target, _pieces(server, file), start_file=file, start_position=position,
           source_db="src", into_db="denied", tables=None, stop=ReplayStop(),
           reporter=NullReporter())
    with conn.cursor() as cur:
        cur.execute("SELECT a FROM denied.ddl_first")
        assert cur.fetchall() == ((1,),)
    conn.close()


def test_a_statement_naming_the_database_and_another_is_refused(scenario):
    server = scenario["server"]
    conn = server.connect()
    _run(conn, "CREATE TABLE src.mixed1 (a INT)", "CREATE TABLE other.mixed2 (a INT)")
    file, position = master_status(server)
    _run(conn, "DROP TABLE src.mixed1, other.mixed2")
    _run(conn, "CREATE TABLE refused.mixed1 (a INT)")
    conn.close()
    target = target_for(server, "refused")
    with pytest.raises(ReplayError, match="names 'src' and other databases"):
        replay(target, _pieces(server, file), start_file=file, start_position=position,
               source_db="src", into_db="refused", tables=None, stop=ReplayStop(),
               reporter=NullReporter())


def test_an_event_larger_than_a_packet_is_refused_naming_max_allowed_packet(scenario):
    server = scenario["server"]
    conn = server.connect()
    _run(conn, "CREATE DATABASE too_big", "CREATE TABLE too_big.t (b LONGBLOB)",
         "CREATE TABLE src.big_rows (b LONGBLOB)")
    file, position = master_status(server)
    _run(conn, "INSERT INTO src.big_rows VALUES (REPEAT('a', 790000))")
    conn.close()
    with pytest.raises(ReplayError, match=r"max_allowed_packet \(1048576\).*SET GLOBAL "
                                          r"max_allowed_packet = 2097152"):
        replay(target_for(server, "too_big"), _pieces(server, file), start_file=file,
               start_position=position, source_db="src", into_db="too_big", tables=None,
               stop=ReplayStop(), reporter=NullReporter())


def test_rewritten_events_are_well_formed(scenario):
    """What the replayer changes in events (the server does not check a BINLOG
    statement's checksums): sizes, end positions and CRC32s follow the new bytes."""
    def check(ev: bytes, fmt: be.Format, original: bytes) -> None:
        size, log_pos = int.from_bytes(ev[9:13], "little"), int.from_bytes(ev[13:17], "little")
        assert size == len(ev)
        old_pos = int.from_bytes(original[13:17], "little")
        assert log_pos == old_pos + len(ev) - len(original)
        if fmt.checksum:
            assert int.from_bytes(ev[-4:], "little") == zlib.crc32(ev[:-4])

    fmt = None
    seen = {"map": 0, "end": 0, "uncompressed": 0}
    for piece in _pieces(scenario["server"], scenario["start"][0]):
        data = b"".join(piece.read())
        for start, end in be.events(data):
            ev, kind = data[start:end], data[start + 4]
            if kind == be.FORMAT_DESCRIPTION:
                fmt = be.parse_format(ev)
                assert fmt.checksum == (scenario["name"] == "crc32")
            elif kind == be.TABLE_MAP:
                tm = be.table_map(fmt, ev)
                renamed = be.rename_database(fmt, ev, tm, "a_longer_name_é")
                check(renamed, fmt, ev)
                again = be.table_map(fmt, renamed)
                assert (again.table_id, again.database, again.table) == (
                    tm.table_id, "a_longer_name_é", tm.table)
                tail = len(ev) - (4 if fmt.checksum else 0)
                assert renamed[:tm.db_at][17:] == ev[:tm.db_at][17:]
                assert renamed[renamed.index(tm.table.encode()) - 1:len(renamed) - (
                    len(ev) - tail)] == ev[ev.index(tm.table.encode(), tm.db_at) - 1:tail]
                seen["map"] += 1
            elif kind in be.ROWS:
                if kind in be.UNCOMPRESSED:
                    plain = be.uncompressed_rows(fmt, ev, kind)
                    check(plain, fmt, ev)
                    assert plain[4] == be.UNCOMPRESSED[kind]
                    seen["uncompressed"] += 1
                    ev, kind = plain, plain[4]
                table_id, flags = be.rows_table_id(fmt, ev, kind)
                ended = be.with_statement_end(fmt, ev, kind)
                check(ended, fmt, ev)
                assert be.rows_table_id(fmt, ended, kind) == (table_id, flags | be.STMT_END_F)
                seen["end"] += 1
    assert seen["map"] > 100 and seen["end"] > 100
    assert (seen["uncompressed"] > 0) == (scenario["name"] == "compressed")


def test_a_row_near_the_packet_size_after_smaller_ones_is_sent_alone(scenario):
    """50 KB of rows queued, then one 750 KB row: together their BINLOG statement would
    pass the 1 MiB packet, so the queued ones go first."""
    server = scenario["server"]
    conn = server.connect()
    for db in ("src", "fits"):
        _run(conn, f"CREATE DATABASE IF NOT EXISTS {db}",
             f"CREATE TABLE {db}.fit (id INT PRIMARY KEY, b LONGBLOB)")
    file, position = master_status(server)
    _run(conn, "USE src", "BEGIN",
         "INSERT INTO src.fit SELECT seq, REPEAT('s', 40) FROM seq_1_to_1000",
         "INSERT INTO src.fit VALUES (0, REPEAT('b', 750000))", "COMMIT")
    replay(target_for(server, "fits"), _pieces(server, file), start_file=file,
           start_position=position, source_db="src", into_db="fits", tables={"fit"},
           stop=ReplayStop(), reporter=NullReporter())
    (_, expected), = _checksum(conn, "src.fit")
    (_, got), = _checksum(conn, "fits.fit")
    conn.close()
    assert got == expected


def _checksum(conn: Any, table: str) -> list[Any]:
    with conn.cursor() as cur:
        cur.execute(f"CHECKSUM TABLE {table} EXTENDED")
        return list(cur.fetchall())
