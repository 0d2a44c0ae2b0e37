"""The dump side's SQL and encoding, without a server: lock plans per flavour (MySQL 8
included), column lists, range literals and split points, the fast row encoder."""

from __future__ import annotations

import bisect
import random

import pytest

from snapkeep.engines.mysql import backup_lock, ranges
from snapkeep.engines.mysql.backup_lock import Server, plan_for
from snapkeep.engines.mysql.dump_sql import columns_sql, select_rows_sql
from snapkeep.engines.mysql.encoding import (
    PERIOD,
    Column,
    codec_for,
    decode_line,
    encode_row,
    encode_rows,
    load_clause,
)
from snapkeep.engines.mysql.ranges import KeyColumn, range_conditions, select_sql, split_points
from snapkeep.engines.mysql.schema import (
    ROW_TABLE_TYPES,
    holds_rows,
    is_table,
    rows_of,
    untaken_kind,
)


@pytest.mark.parametrize("version, mariadb, numbers", [
    ("10.11.19-MariaDB-0+deb12u1", True, (10, 11, 19)),
    ("5.5.5-10.6.12-MariaDB-log", True, (10, 6, 12)),
    ("8.0.36", False, (8, 0, 36)),
    ("8.4.0-commercial", False, (8, 4, 0)),
    ("5.7.44-log", False, (5, 7, 44)),
])
def test_server_versions_are_parsed(version, mariadb, numbers):
    assert Server.parse(version) == Server(mariadb, numbers)


def test_mariadb_10_4_and_later_block_commits_with_backup_stages():
    plan = plan_for(Server.parse("10.11.19-MariaDB"))
    assert plan.acquire == ("BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT")
    assert plan.release == ("BACKUP STAGE END",)


def test_mysql_8_takes_the_instance_backup_lock_and_a_brief_global_read_lock():
    plan = plan_for(Server.parse("8.0.36"))
    assert plan.acquire == ("LOCK INSTANCE FOR BACKUP", "FLUSH TABLES WITH READ LOCK")
    assert plan.release == ("UNLOCK TABLES", "UNLOCK INSTANCE")


@pytest.mark.parametrize("version", ["10.3.39-MariaDB", "5.7.44", "10.4.0-MariaDB"])
def test_older_servers_use_flush_tables_with_read_lock(version):
    plan = plan_for(Server.parse(version))
    assert plan.acquire == ("FLUSH TABLES WITH READ LOCK",)
    assert plan.release == ("UNLOCK TABLES",)


def test_the_lock_wait_is_bounded():
    expected = f"SET SESSION lock_wait_timeout = {backup_lock.LOCK_WAIT_SECONDS}"
    assert expected == backup_lock.LOCK_SESSION


def test_generated_columns_are_left_out_by_each_flavours_own_column():
    maria = columns_sql(Server.parse("10.11.2-MariaDB"))
    mysql8 = columns_sql(Server.parse("8.0.36"))
    assert "IS_GENERATED = 'NEVER'" in maria
    # MySQL 8 has no IS_GENERATED; EXTRA would also match DEFAULT_GENERATED defaults.
    assert "IS_GENERATED" not in mysql8 and "EXTRA" not in mysql8
    assert "COALESCE(GENERATION_EXPRESSION, '') = ''" in mysql8
    for sql in (maria, mysql8):
        assert sql.endswith("ORDER BY TABLE_NAME, ORDINAL_POSITION")


def test_invisible_columns_are_named_and_spatial_columns_keep_their_srid():
    # MySQL 8 INVISIBLE / MariaDB INVISIBLE columns are not in SELECT *; naming them
    # dumps them. A geometry column leaves in the server's internal form, which starts
    # with its 4-byte SRID (ST_AsWKB would lose it).
    cols = [Column("id", codec_for("int")), Column("secret", codec_for("varchar")),
            Column("g", codec_for("geometry")), Column("p", codec_for("point")),
            Column("f", codec_for("float"))]
    sql = select_rows_sql("t", cols, ["id"])
    assert sql == ("SELECT `id`, `secret`, `g`, `p`, CAST(`f` AS DOUBLE) FROM `t` "
                   "ORDER BY `id`")


@pytest.mark.parametrize("key, value, literal", [
    (KeyColumn("id", "bigint"), b"-42", "-42"),
    (KeyColumn("d", "decimal"), b"12.500", "12.500"),
    (KeyColumn("day", "date"), b"0000-00-00", "'0000-00-00'"),
    (KeyColumn("at", "datetime"), b"2024-01-02 03:04:05.123456", "'2024-01-02 03:04:05.123456'"),
    (KeyColumn("h", "varbinary"), b"\x00'\\", "X'00275c'"),
    (KeyColumn("s", "varchar", "latin1"), b"caf\xe9", "_latin1 X'636166e9'"),
])
def test_split_values_become_exact_literals(key, value, literal):
    assert key.splittable
    assert key.literal(value) == literal


@pytest.mark.parametrize("key", [KeyColumn("f", "double"), KeyColumn("e", "enum"),
                                 KeyColumn("b", "bit"), KeyColumn("t", "text", "utf8mb4"),
                                 KeyColumn("s", "varchar", "bad charset")])
def test_keys_without_an_exact_literal_are_read_whole(key):
    assert not key.splittable


def test_a_value_that_is_not_of_its_type_is_refused():
    with pytest.raises(ValueError):
        KeyColumn("id", "int").literal(b"1; DROP TABLE x")


def test_rows_per_part_is_a_clamped_power_of_two():
    assert ranges.rows_per_part(256) == 1 << 18   # 64 MiB / 256 B
    assert ranges.rows_per_part(300) == 1 << 18   # estimates that wobble keep the size
    assert ranges.rows_per_part(None) == ranges.MAX_PART_ROWS
    assert ranges.rows_per_part(10 << 20) == ranges.MIN_PART_ROWS


def test_range_conditions_cover_the_key_space_once():
    key = KeyColumn("id", "int")
    assert list(range_conditions(key, [])) == [""]
    assert list(range_conditions(key, [b"10", b"20"])) == [
        "`id` < 10", "`id` >= 10 AND `id` < 20", "`id` >= 20"]


class FakeTable:
    """Evaluates the split queries over a sorted list of integer first-column values."""

    def __init__(self, values: list[int]) -> None:
        self.values = sorted(values)
        self.queries = 0

    def fetch_row(self, sql: str):
        self.queries += 1
        vals = self.values
        if sql.startswith("SELECT MIN("):
            return (str(vals[0]).encode(), str(vals[-1]).encode()) if vals else (None, None)
        if " > " in sql.split("WHERE")[-1].split("ORDER")[0] and "OFFSET" not in sql:
            low = int(sql.split(" > ")[1].split()[0])
            i = bisect.bisect_right(vals, low)
            return (str(vals[i]).encode(), 1) if i < len(vals) else None
        offset = int(sql.rsplit("OFFSET ", 1)[1])
        start = 0
        low = None
        if " >= " in sql:
            low = int(sql.split(" >= ")[1].split()[0])
            start = bisect.bisect_left(vals, low)
        i = start + offset
        if i >= len(vals):
            return None
        return (str(vals[i]).encode(), int(low is None or vals[i] > low))


@pytest.mark.parametrize("values", [
    list(range(1000)),
    [v * v for v in range(500)],                       # gaps
    [v // 7 for v in range(2000)],                     # composite key: repeated first column
    [5] * 300 + list(range(10, 20)),                   # one value fills several parts
    [],
])
def test_walked_split_points_give_contiguous_non_empty_parts(values):
    table = FakeTable(values)
    walked = KeyColumn("id", "decimal")  # not an integer type: found by walking the key
    points = [int(p) for p in split_points(table.fetch_row, "t", walked, 100, len(values))]
    assert points == sorted(set(points))
    bounds = [None, *points, None]
    seen = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = [v for v in table.values if (lo is None or v >= lo) and (hi is None or v < hi)]
        seen += part
        assert part or not values
        if hi is not None and len(set(values)) == len(values):
            assert len(part) >= 100
    assert seen == table.values
    # the same data gives the same cut
    assert [int(p) for p in split_points(FakeTable(values).fetch_row, "t",
                                         walked, 100, len(values))] == points


@pytest.mark.parametrize("values", [
    list(range(1, 100_001)),
    [v for v in range(1, 300_001) if v % 4],             # deleted rows leave gaps
    list(range(-5000, 5000)),
])
def test_integer_keys_are_cut_arithmetically_into_parts_of_about_the_asked_size(values):
    table = FakeTable(values)
    points = [int(p) for p in split_points(table.fetch_row, "t", KeyColumn("id", "int"), 1024,
                                           len(values))]
    assert table.queries == 1  # MIN/MAX only: no walk over the table
    assert points == sorted(set(points)) and points[0] > values[0] and points[-1] <= values[-1]
    step = points[1] - points[0]
    assert step & (step - 1) == 0 and all(p % step == 0 for p in points)
    sizes = [sum(1 for v in values if lo <= v < hi)
             for lo, hi in zip(points, points[1:], strict=False)]
    assert all(512 <= n <= 2048 for n in sizes)
    # a row estimate that wobbles (InnoDB's does) and appended rows keep the same cuts
    again = [int(p) for p in split_points(FakeTable(values + [values[-1] + 1]).fetch_row, "t",
                                          KeyColumn("id", "int"), 1024, int(len(values) * 1.05))]
    assert again[:len(points)] == points


def test_a_sparse_integer_key_is_walked_instead_and_a_small_table_is_not_cut():
    sparse = [v * 1000 for v in range(5000)]
    table = FakeTable(sparse)
    points = list(split_points(table.fetch_row, "t", KeyColumn("id", "bigint"), 100, 5000))
    assert table.queries > 40 and len(points) >= 45  # walked: ~50 parts of 100 rows
    assert ranges.integer_split_points(1, 10_000, 10_000, 100_000) == []
    assert ranges.integer_split_points(1, 10**9, 10_000, 100) is None


def test_encode_rows_is_encode_row_for_every_byte():
    rnd = random.Random(7)
    alphabet = [b"a", b"\t", b"\n", b"\r", b"\0", b"\\", b"N", b"\xff", b" "]
    rows = []
    for _ in range(3000):
        width = rnd.randint(1, 5)
        rows.append(tuple(None if rnd.random() < 0.15 else
                          b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6)))
                          for _ in range(width)))
    rows += [(None,), (b"",), (b"\\N",), (b"\t",)]
    encoded = encode_rows(rows)
    assert encoded == b"".join(encode_row(r) for r in rows)
    assert [decode_line(line) for line in encoded.split(b"\n")[:-1]] == rows
    assert encode_rows([]) == b""


def test_a_versioned_part_reads_every_row_version_with_its_period_columns():
    cols = [Column("id", codec_for("int")), Column("ROW_START", PERIOD),
            Column("ROW_END", PERIOD)]
    sql = select_sql("t", [c.select_expr() for c in cols], ["id", "ROW_END"], "`id` >= 5",
                     all_versions=True)
    assert sql == ("SELECT `id`, `ROW_START`, `ROW_END` FROM `t` FOR SYSTEM_TIME ALL "
                   "WHERE `id` >= 5 ORDER BY `id`, `ROW_END`")
    assert load_clause(cols) == "(`id`, `ROW_START`, `ROW_END`)"
    assert Column.from_json(["ROW_END", "period"]) == Column("ROW_END", PERIOD)


def test_every_table_kind_and_engine_is_either_dumped_or_named():
    for kind in ROW_TABLE_TYPES:
        assert holds_rows(kind) and is_table(kind) and untaken_kind("t", kind) is None
    assert is_table("SEQUENCE") and not holds_rows("SEQUENCE")
    assert untaken_kind("v", "VIEW") is None
    assert untaken_kind("x", "SOME NEW KIND").startswith("warning: `x` is a SOME NEW KIND")
    assert rows_of("t", "InnoDB") == (True, None)
    take, note = rows_of("fed", "FEDERATED")
    assert not take and note.startswith("warning: table `fed`") and "another server" in note
    assert rows_of("m", "MRG_MyISAM") == (False, None)
    take, note = rows_of("n", "NEWENGINE")
    assert take and note.startswith("warning: table `n` uses the storage engine NEWENGINE")
