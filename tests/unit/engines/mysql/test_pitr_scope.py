"""A ``--table`` point-in-time restore builds the whole database in the shadow: a restored
table whose foreign key names a table left out is refused (engines/mysql/pitr.py)."""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql.pitr import check_scope_references
from snapkeep.errors import UsageError

DESCRIPTION = {"tables": [
    {"name": "customers", "create": "CREATE TABLE `customers` (`id` int NOT NULL)"},
    {"name": "orders", "create": "CREATE TABLE `orders` (`id` int, `c` int, CONSTRAINT `fk` "
                                 "FOREIGN KEY (`c`) REFERENCES `customers` (`id`))"},
    {"name": "remote", "create": "CREATE TABLE `remote` (`c` int, CONSTRAINT `fk2` FOREIGN "
                                 "KEY (`c`) REFERENCES `elsewhere`.`customers` (`id`))"},
]}


def test_a_foreign_key_out_of_the_tables_is_refused_naming_the_table_to_add():
    with pytest.raises(UsageError, match=r"`orders` has a foreign key to `customers`.*"
                                         r"add --table customers"):
        check_scope_references(DESCRIPTION, ["orders"])


def test_keys_inside_the_tables_or_to_another_database_are_fine():
    check_scope_references(DESCRIPTION, ["orders", "customers"])
    check_scope_references(DESCRIPTION, ["customers"])
    check_scope_references(DESCRIPTION, ["remote"])
