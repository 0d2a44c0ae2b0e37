"""Which grants point-in-time archiving lacks, from ``SHOW GRANTS`` lines."""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.binlog_checks import missing_grants

MARIADB_11 = Server(True, (10, 11, 6))
MARIADB_10_4 = Server(True, (10, 4, 30))
MYSQL_8 = Server(False, (8, 0, 36))


@pytest.mark.parametrize("grants,server,missing", [
    (["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"], MARIADB_11, []),
    (["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `s`@`%`"], MARIADB_11, []),
    (["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `s`@`%`"], MARIADB_11, []),
    (["GRANT USAGE ON *.* TO `s`@`%`", "GRANT ALL PRIVILEGES ON `shop`.* TO `s`@`%`"],
     MARIADB_11, ["REPLICATION SLAVE", "BINLOG MONITOR"]),
    (["GRANT SELECT, RELOAD, REPLICATION SLAVE ON *.* TO `s`@`%`"], MARIADB_11,
     ["BINLOG MONITOR"]),
    (["GRANT REPLICATION SLAVE ON *.* TO `s`@`%`"], MARIADB_10_4, ["REPLICATION CLIENT"]),
    (["GRANT REPLICATION CLIENT ON *.* TO `s`@`%`"], MYSQL_8, ["REPLICATION SLAVE"]),
    (["GRANT SUPER ON *.* TO `s`@`%`"], MYSQL_8, ["REPLICATION SLAVE"]),
    (["GRANT SUPER ON *.* TO `s`@`%`"], MARIADB_11, ["REPLICATION SLAVE", "BINLOG MONITOR"]),
])
def test_missing_grants(grants, server, missing):
    assert missing_grants(grants, server) == missing
