"""The MySQL/MariaDB engine: logical dump into the repository, shadow-database restore.

Public API (used by ``snapkeep.services``): ``MySQLTarget``, ``check_connection``,
``check_restore_target``, ``check_restore_privileges``,
``estimate_size``, ``hold_writes``, ``dump_database``, ``prepare_restore`` →
``PreparedRestore`` (``swap``/``rollback``/``finish``/``abort``), ``cleanup_leftovers``,
``export_sql`` (a portable SQL script of a snapshot's database), ``renamed_description``
(a description whose self-references name another database), ``table_digests`` and
``compare_digests`` (a restored copy's row digests against the recorded ones, ``verify.py``),
``option_file`` (a 0600 login file for the stock client and hooks).
"""

from snapkeep.engines.mysql.connect import check_connection, check_restore_target, estimate_size
from snapkeep.engines.mysql.cutover import cleanup_leftovers
from snapkeep.engines.mysql.dump import dump_database, hold_writes
from snapkeep.engines.mysql.export import export_sql
from snapkeep.engines.mysql.restore import (
    PreparedRestore,
    check_restore_privileges,
    prepare_restore,
    renamed_description,
)
from snapkeep.engines.mysql.sqlfile import option_file
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.mysql.verify import compare_digests, table_digests

__all__ = [
    "MySQLTarget",
    "PreparedRestore",
    "check_connection",
    "check_restore_privileges",
    "check_restore_target",
    "cleanup_leftovers",
    "compare_digests",
    "dump_database",
    "estimate_size",
    "export_sql",
    "hold_writes",
    "option_file",
    "prepare_restore",
    "renamed_description",
    "table_digests",
]
