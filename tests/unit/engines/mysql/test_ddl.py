"""Splitting SHOW CREATE TABLE into the load-time table and the keys added after."""

from __future__ import annotations

from snapkeep.engines.mysql.ddl import (
    parse_create_table,
    requalify,
    self_referencing_columns,
    split_create_table,
)

ORDERS = """CREATE TABLE `orders` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `cust` int(11) NOT NULL COMMENT 'a, (tricky) ''comment''',
  `note` varchar(20) DEFAULT 'x,y)`' CHECK (`note` <> 'KEY `z` (`a`)'),
  `doc` text DEFAULT NULL,
  `total` decimal(12,2) GENERATED ALWAYS AS (`id` * 2) VIRTUAL,
  `hidden` int(11) DEFAULT NULL INVISIBLE,
  PRIMARY KEY (`id`),
  UNIQUE KEY `u_cust_note` (`cust`,`note`),
  KEY `k_note` (`note`(5)) COMMENT 'prefix',
  KEY `k two` (`cust`,`hidden`) USING BTREE,
  FULLTEXT KEY `ft_doc` (`doc`),
  CONSTRAINT `fk_cust` FOREIGN KEY (`cust`) REFERENCES `customers` (`id`) ON DELETE CASCADE,
  CONSTRAINT `chk_total` CHECK (`cust` >= 0)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci\
 COMMENT='t'"""


def innodb_table(*items: str) -> str:
    """SHOW CREATE TABLE's text of the InnoDB table `t` with these columns and keys."""
    return "CREATE TABLE `t` (\n  " + ",\n  ".join(items) + "\n) ENGINE=InnoDB"


def test_secondary_keys_and_foreign_keys_are_deferred_in_printed_order():
    split = split_create_table("orders", ORDERS)
    assert [i.name for i in split.keys] == ["u_cust_note", "k_note", "k two"]
    assert [i.name for i in split.foreign] == ["fk_cust"]
    assert split.post_ddl == (
        "ALTER TABLE `orders` ADD UNIQUE KEY `u_cust_note` (`cust`,`note`), "
        "ADD KEY `k_note` (`note`(5)) COMMENT 'prefix', "
        "ADD KEY `k two` (`cust`,`hidden`) USING BTREE, "
        "ADD CONSTRAINT `fk_cust` FOREIGN KEY (`cust`) REFERENCES `customers` (`id`) "
        "ON DELETE CASCADE")
    load = split.load_ddl
    for kept in ("PRIMARY KEY (`id`)", "FULLTEXT KEY `ft_doc`", "CONSTRAINT `chk_total`",
                 "GENERATED ALWAYS AS (`id` * 2) VIRTUAL", "INVISIBLE",
                 "COMMENT 'a, (tricky) ''comment'''", "CHECK (`note` <> 'KEY `z` (`a`)')",
                 "AUTO_INCREMENT=7", "COMMENT='t'"):
        assert kept in load
    assert "u_cust_note" not in load and "fk_cust" not in load and "k_note" not in load
    assert split.foreign[0].ref_table == "customers" and split.foreign[0].ref_columns == ["id"]
    assert split.kept_indexes == [["id"]]


def test_quoted_commas_and_parentheses_do_not_split_items():
    _, items, tail = parse_create_table(ORDERS)
    assert [i.kind for i in items] == [
        "column", "column", "column", "column", "column", "column", "primary", "unique",
        "key", "key", "fulltext", "foreign", "check"]
    assert items[1].not_null and not items[2].not_null and items[0].auto_increment
    assert tail.startswith(") ENGINE=InnoDB")


def test_a_key_an_auto_increment_column_needs_is_kept_with_the_keys_before_it():
    ddl = innodb_table("`a` int(11) NOT NULL", "`id` int(11) NOT NULL AUTO_INCREMENT",
                       "`b` int(11) DEFAULT NULL", "PRIMARY KEY (`a`,`id`)", "KEY `kb` (`b`)",
                       "KEY `kid` (`id`)", "KEY `kb2` (`b`,`a`)")
    split = split_create_table("t", ddl)
    assert [i.name for i in split.keys] == ["kb2"]
    assert "KEY `kb` (`b`)" in split.load_ddl and "KEY `kid` (`id`)" in split.load_ddl


def test_without_a_primary_key_a_leading_not_null_unique_key_stays_as_the_clustered_key():
    ddl = innodb_table("`a` int(11) NOT NULL", "`b` int(11) DEFAULT NULL",
                       "UNIQUE KEY `ua` (`a`)", "UNIQUE KEY `ub` (`b`)", "KEY `kb` (`b`)")
    split = split_create_table("t", ddl)
    assert [i.name for i in split.keys] == ["ub", "kb"]
    nullable = ddl.replace("`a` int(11) NOT NULL", "`a` int(11) DEFAULT NULL")
    assert [i.name for i in split_create_table("t", nullable).keys] == ["ua", "ub", "kb"]


def test_long_unique_hash_keys_stay_and_non_innodb_tables_are_not_split():
    ddl = innodb_table("`id` int(11) NOT NULL", "`b` blob DEFAULT NULL", "PRIMARY KEY (`id`)",
                       "UNIQUE KEY `ub` (`b`) USING HASH", "KEY `kb` (`b`(4))")
    split = split_create_table("t", ddl)
    assert [i.name for i in split.keys] == ["kb"]
    assert "USING HASH" in split.load_ddl
    myisam = ddl.replace("ENGINE=InnoDB", "ENGINE=MyISAM")
    assert split_create_table("t", myisam).load_ddl == myisam
    assert split_create_table("t", myisam).post_ddl is None


def test_partitioned_and_odd_names_keep_their_tail_and_quoting():
    ddl = ("CREATE TABLE `we``ird,(n)` (\n  `k``1` int(11) NOT NULL,\n  `d` date NOT NULL,\n"
           "  PRIMARY KEY (`k``1`,`d`),\n  KEY `i``x` (`d`)\n) ENGINE=InnoDB DEFAULT "
           "CHARSET=latin1\n PARTITION BY RANGE (year(`d`))\n(PARTITION `p0` VALUES LESS THAN"
           " (2000) ENGINE = InnoDB,\n PARTITION `p1` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)")
    split = split_create_table("we`ird,(n)", ddl)
    assert split.post_ddl == "ALTER TABLE `we``ird,(n)` ADD KEY `i``x` (`d`)"
    assert split.load_ddl.endswith("ENGINE = InnoDB)") and "PARTITION BY RANGE" in split.load_ddl
    assert split.kept_indexes == [["k`1", "d"]]


def test_a_foreign_key_to_another_database_keeps_its_qualified_name():
    ddl = ("CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n"
           "  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) "
           "REFERENCES `other db`.`par``ent` (`id`) ON UPDATE SET NULL\n) ENGINE=InnoDB")
    fk = split_create_table("c", ddl).foreign[0]
    assert (fk.ref_db, fk.ref_table, fk.ref_columns) == ("other db", "par`ent", ["id"])


def test_a_table_without_deferrable_keys_is_left_as_is():
    ddl = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
    split = split_create_table("t", ddl)
    assert split.load_ddl == ddl and split.post_ddl is None


SELF_REFERENCING = (
    "CREATE TABLE `t` (\n"
    "  `a` int(11) DEFAULT nextval(`shop`.`seq`) COMMENT 'see `shop`.`seq`',\n"
    "  `b` bigint(20) NOT NULL DEFAULT nextval(`shop`.`other`),\n"
    "  `shop` int(11) DEFAULT NULL /* `shop`.`x` */,\n"
    "  `c` int(11) DEFAULT nextval(`elsewhere`.`seq`)\n"
    ") ENGINE=InnoDB")


def test_requalify_renames_only_qualifying_identifiers_outside_strings_and_comments():
    out = requalify(SELF_REFERENCING, "shop", "shop__skshadow_1")
    assert "nextval(`shop__skshadow_1`.`seq`) COMMENT 'see `shop`.`seq`'" in out
    assert "DEFAULT nextval(`shop__skshadow_1`.`other`)" in out
    assert "`shop` int(11) DEFAULT NULL /* `shop`.`x` */" in out
    assert "nextval(`elsewhere`.`seq`)" in out
    assert requalify(SELF_REFERENCING, "shop", "shop") == SELF_REFERENCING


def test_requalify_with_only_renames_references_to_those_names():
    out = requalify(SELF_REFERENCING, "shop", "x", only={"other"})
    assert "nextval(`shop`.`seq`)" in out and "nextval(`x`.`other`)" in out


def test_self_referencing_columns_are_the_column_definitions_naming_the_database():
    assert self_referencing_columns(SELF_REFERENCING, "shop") == [
        "`a` int(11) DEFAULT nextval(`shop`.`seq`) COMMENT 'see `shop`.`seq`'",
        "`b` bigint(20) NOT NULL DEFAULT nextval(`shop`.`other`)"]
    assert self_referencing_columns(SELF_REFERENCING, "elsewhere") == [
        "`c` int(11) DEFAULT nextval(`elsewhere`.`seq`)"]
