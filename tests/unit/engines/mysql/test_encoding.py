"""Pure logic of the MySQL engine: row encoding, quoting, names, view order."""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql import MySQLTarget
from snapkeep.engines.mysql.connect import quote_ident
from snapkeep.engines.mysql.encoding import (
    BIT,
    FLOAT,
    INDEX,
    PLAIN,
    TEXT,
    Column,
    codec_for,
    decode_line,
    decode_quoted_line,
    encode_row,
    escape_field,
    join_lines,
    load_clause,
    quoted_line_expr,
    split_quoted_lines,
)
from snapkeep.engines.mysql.names import MAX_IDENT, old_name, shadow_name
from snapkeep.engines.mysql.schema import order_views, referenced_names

AWKWARD = [None, b"", b"NULL", b"\\N", b"N", b"\\", b"\t", b"\n", b"\r\n", b"\0", b"a\\tb",
           b"\x00\xff\x1a", "😀 café".encode(), b"\\\\N", b" trailing ", b"x" * 1000]


def test_sql_null_and_the_text_null_look_different():
    assert escape_field(None) == b"\\N"
    assert escape_field(b"\\N") == b"\\\\N"
    assert escape_field(b"NULL") == b"NULL"
    assert escape_field(b"") == b""


def test_separators_and_escapes_never_appear_raw_inside_a_field():
    for value in AWKWARD:
        field = escape_field(value)
        assert b"\t" not in field and b"\n" not in field and b"\0" not in field


@pytest.mark.parametrize("value", AWKWARD)
def test_every_awkward_value_decodes_back_to_itself(value):
    row = (b"1", value, value, b"end")
    line = encode_row(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1]) == row


def test_a_single_empty_field_row_is_an_empty_line():
    assert encode_row((b"",)) == b"\n"


def test_codecs_follow_the_column_type():
    assert codec_for("float") == FLOAT
    assert codec_for("double") == PLAIN
    assert codec_for("bit") == BIT
    assert codec_for("enum") == codec_for("SET") == INDEX
    assert codec_for("uuid") == codec_for("inet6") == TEXT
    assert codec_for("geometry") == codec_for("longblob") == codec_for("decimal") == PLAIN


def test_special_columns_get_an_expression_out_and_a_set_clause_in():
    cols = [Column("id"), Column("f", FLOAT), Column("b", BIT), Column("e`x", INDEX),
            Column("u", TEXT)]
    assert [c.select_expr() for c in cols] == [
        "`id`", "CAST(`f` AS DOUBLE)", "`b` + 0", "`e``x` + 0", "`u`"]
    assert load_clause(cols) == (
        "(`id`, @v1, @v2, @v3, @v4) SET `f` = CAST(@v1 AS DOUBLE), `b` = CAST(@v2 AS UNSIGNED),"
        " `e``x` = CAST(@v3 AS UNSIGNED), `u` = CONVERT(@v4 USING utf8mb4)")
    assert load_clause([Column("a")]) == "(`a`)"
    assert Column.from_json(Column("f", FLOAT).to_json()) == Column("f", FLOAT)
    with pytest.raises(ValueError):
        Column.from_json(["x", "rot13"])


@pytest.mark.parametrize("name, quoted", [
    ("plain", "`plain`"), ("we`ird", "`we``ird`"), ("a.b", "`a.b`"), ("sp ace%", "`sp ace%`"),
    ("select", "`select`"), ("ünï", "`ünï`"), ("``", "``````"),
])
def test_identifiers_are_quoted_with_doubled_backticks(name, quoted):
    assert quote_ident(name) == quoted


def test_helper_database_names_are_recognisable_unique_and_short_enough():
    assert shadow_name("shop").startswith("shop__skshadow_")
    assert old_name("shop").startswith("shop__skold_")
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    for name in (long_a, long_b, "db.dot", "ünïcødé" * 9):
        assert len(shadow_name(name)) <= MAX_IDENT and len(old_name(name)) <= MAX_IDENT
    assert shadow_name(long_a) != shadow_name(long_b)
    assert shadow_name("shop") == shadow_name("shop") != old_name("shop")


def test_views_come_after_the_views_they_read():
    views = [
        {"name": "a_top", "create": "CREATE VIEW `a_top` AS select `m`.`x` from `middle` `m`"},
        {"name": "middle", "create": "CREATE VIEW `middle` AS select `x` from `z_base`"},
        {"name": "z_base", "create": "CREATE VIEW `z_base` AS select 1 AS `x` from `t`"},
        {"name": "alone", "create": "CREATE VIEW `alone` AS select 1 AS `alone`"},
    ]
    assert [v["name"] for v in order_views(views)] == ["alone", "z_base", "middle", "a_top"]


def test_a_cycle_of_name_matches_still_orders_every_view_once():
    views = [{"name": "a", "create": "CREATE VIEW `a` AS select 1 AS `b`"},
             {"name": "b", "create": "CREATE VIEW `b` AS select 1 AS `a`"}]
    assert sorted(v["name"] for v in order_views(views)) == ["a", "b"]


def test_referenced_names_unquote_doubled_backticks():
    assert referenced_names("select `we``ird`.`a b` from `we``ird`") == {"we`ird", "a b"}


def test_a_target_describes_itself_without_the_password():
    t = MySQLTarget("db.example", 3307, "shop", "s3cret!", "magento")
    assert t.describe() == "mysql://shop@db.example:3307/magento"
    assert "s3cret" not in repr(t)
    sock = MySQLTarget("localhost", 3306, "u", None, "d", unix_socket="/run/m.sock")
    assert sock.describe() == "mysql://u@localhost:3306/d?socket=/run/m.sock"


def test_a_quoted_line_is_composed_by_the_server_and_never_null_by_accident():
    cols = [Column("id"), Column("s", "string"), Column("f", "float"), Column("u", "text"),
            Column("e", "index")]
    assert quoted_line_expr(cols) == (
        "CONCAT(IFNULL(`id`, '\\\\N'), '\\t', "
        "IF(`s` IS NULL, 'NULL', NULLIF(QUOTE(CAST(`s` AS BINARY)), 'NULL')), '\\t', "
        "IFNULL(CAST(`f` AS DOUBLE), '\\\\N'), '\\t', "
        "IF(`u` IS NULL, 'NULL', NULLIF(QUOTE(CAST(`u` AS CHAR)), 'NULL')), '\\t', "
        "IFNULL(`e` + 0, '\\\\N'))")
    # strings load straight into their column, like plain ones
    assert load_clause(cols).startswith("(`id`, `s`, @v2, @v3, @v4)")


def test_quoted_lines_split_only_outside_quotes_and_decode_as_load_data_reads_them():
    block = (b"1\t'a\\'b\tc\nd'\t\\N\tNULL\n"
             b"2\t''\t3.5\t'NULL'\n"
             b"3\t'\\\\\\0\\Z'\t-0\tNULL\n")
    lines = split_quoted_lines(block)
    assert [decode_quoted_line(line) for line in lines] == [
        (b"1", b"a'b\tc\nd", None, None),
        (b"2", b"", b"3.5", b"NULL"),
        (b"3", b"\\\0\x1a", b"-0", None),
    ]
    assert join_lines([(b"x",), (b"y",)]) == b"x\ny\n"
    assert join_lines([(b"x",), (None,)]) is None  # a line too long for one packet
