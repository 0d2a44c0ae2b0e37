"""Parsing a column's printed ENUM/SET list and DEFAULT literal, and writing members back
as the server writes them (``members.py``; the server side is tested in
tests/integration/engines/mysql/test_enum_members.py)."""

from __future__ import annotations

from snapkeep.engines.mysql.members import (
    _column_span,
    _count_members,
    _default_literal,
    _literal,
    _member_list,
)

DDL = ("CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n"
       "  `c` enum('a,''b','\\\\''?',')') DEFAULT '?' COMMENT 'DEFAULT ''x''',\n"
       "  `c d` set('?') DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB")


def test_the_member_list_and_default_of_a_column_are_found_exactly():
    start, end = _column_span(DDL, "c")
    item = DDL[start:end]
    assert item.startswith("`c` enum(") and item.endswith("'DEFAULT ''x'''")
    span = _member_list(item, len("`c`"))
    assert item[span[0]:span[1]] == "('a,''b','\\\\''?',')')"
    assert _count_members(item, span) == 3
    a, b = _default_literal(item)
    assert item[a:b] == "'?'"  # not the DEFAULT inside the comment


def test_a_quoted_name_with_a_space_and_a_null_default():
    start, end = _column_span(DDL, "c d")
    item = DDL[start:end]
    assert _member_list(item, len("`c d`")) is not None
    assert _default_literal(item) is None
    assert _column_span(DDL, "missing") is None


def test_members_are_written_as_the_server_writes_them():
    assert _literal("it's a\\b\n\0\r\t😀".encode(), binary=False) == \
        "'it''s a\\\\b\\n\\0\\r\t😀'"
    assert _literal(b"\xf0\x9f\x98\x80\xff", binary=True) == "X'F09F9880FF'"
    assert _literal(b"q'", binary=True) == "'q'''"
