"""Reading SHOW GRANTS lines and DEFINER clauses for the restore's privilege check; the
server-side behaviour is covered by tests/integration/engines/mysql/test_restore_privileges.py."""

from __future__ import annotations

from snapkeep.engines.mysql.privileges import Grants, definer_of, needs


def test_database_grants_the_most_specific_matching_entry_wins():
    g = Grants([
        "GRANT USAGE ON *.* TO `shop`@`%` IDENTIFIED BY PASSWORD '*AB'",
        "GRANT SELECT ON `shop`.* TO `shop`@`%`",
        "GRANT ALL PRIVILEGES ON `sh%`.* TO `shop`@`%`",
        "GRANT ALL PRIVILEGES ON `shop\\_\\_sk%`.* TO `shop`@`%`",
        "GRANT TRIGGER ON `shop`.`orders` TO `shop`@`%`",  # table-level: not counted
        "GRANT `shop_role` TO `shop`@`%`",
        "GRANT CREATE VIEW ON `shop`.* TO `shop_role`",
    ])
    assert g.holds("SELECT", "shop")
    assert not g.holds("DROP", "shop")  # the exact entry shadows the pattern
    assert g.holds("CREATE VIEW", "shop")  # a role's grants add up
    assert not g.holds("TRIGGER", "shop")
    assert g.holds("DROP", "shop__skshadow_1234abcd")
    assert g.holds("DROP", "shopping")
    assert not g.holds("SET USER", None)


def test_an_escaped_underscore_is_literal_and_global_grants_cover_everything():
    g = Grants(["GRANT ALL PRIVILEGES ON `a\\_b`.* TO `u`@`%`"])
    assert g.holds("DROP", "a_b") and not g.holds("DROP", "aXb")
    g = Grants(["GRANT SELECT ON `a_b`.* TO `u`@`%`"])  # an unescaped _ is a wildcard
    assert g.holds("SELECT", "aXb")
    g = Grants(["GRANT SUPER ON *.* TO `u`@`%`"])
    assert g.holds("SET USER", None) and not g.holds("DROP", "a")
    assert Grants(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"]).holds("EVENT", "x")


def test_definers_are_read_from_create_statements():
    assert definer_of("CREATE ALGORITHM=UNDEFINED DEFINER=`d``ba`@`%` SQL SECURITY DEFINER "
                      "VIEW `v` AS select 1") == ("d`ba", "%")
    assert definer_of("CREATE DEFINER=`app_role` TRIGGER t BEFORE INSERT ON x FOR EACH ROW "
                      "SET @a = 1") == ("app_role", None)
    assert definer_of("CREATE VIEW `v` AS select 'DEFINER=`x`@`y`'") is None


def test_set_user_is_needed_only_for_another_definer():
    mine = {"views": [{"name": "v", "create": "CREATE DEFINER=`shop`@`%` VIEW `v` AS select 1"}],
            "triggers": [], "routines": [], "events": []}
    theirs = {**mine, "triggers": [{"name": "t", "create": "CREATE DEFINER=`dba`@`%` "
                                                           "TRIGGER t BEFORE INSERT ON x "
                                                           "FOR EACH ROW SET @a = 1"}]}
    privileges = {n.privilege for n in needs("shop", mine, None, ("shop", "%"), None)}
    assert "SET USER" not in privileges and "CREATE VIEW" in privileges
    found = [n for n in needs("shop", mine, theirs, ("shop", "%"), None)
             if n.privilege == "SET USER"]
    assert len(found) == 1 and "live trigger `t`" in found[0].why
    assert "TRIGGER" in {n.privilege for n in needs("shop", mine, theirs, ("shop", "%"), None)}
