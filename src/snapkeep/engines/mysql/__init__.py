"""The MySQL/MariaDB engine: logical dump into the repository, shadow-database restore.

Public API (used by ``snapkeep.services``): ``MySQLTarget``, ``check_connection``,
``check_restore_target``, ``check_restore_privileges``,
``estimate_size``, ``hold_writes``, ``dump_database``, ``prepare_restore`` →
``PreparedRestore`` (``swap``/``rollback``/``finish``/``abort``), ``cleanup_leftovers``,
``export_sql`` (a portable SQL script of a snapshot's database), ``renamed_description``
(a description whose self-references name another database), ``table_digests`` and
``compare_digests`` (a restored copy's row digests against the recorded ones, ``verify.py``;
``check_paged``/``compare_paged`` for the tables stored as pages, ``verify_pages.py``),
``option_file`` (a 0600 login file for the stock client and hooks). Importing a plain SQL
file (``sqlfile``, ``import_server``): ``find_client``, ``scratch_target``,
``database_defaults``, ``create_database``, ``drop_database``, ``load_sql``, and the private
server it loads into: ``check_import_server``, ``private_server`` → ``PrivateServer``,
``stop_leftover_server``. ``table_names`` (a snapshot's tables, ``scope``) and ``drill_name``
(a restore drill's scratch database, ``names``). Point in time (docs/pitr.md):
``Follower`` (binlog archiving, ``binlog_follow``), ``binlog_problems``/``require_binlog``
(its preconditions, ``binlog_checks``), ``BINLOG_INTERVAL``, ``prepare_restore_at`` with
``ReplayStop``/``ReplayPiece``/``ReplayResult`` (a restore to a point in time, ``pitr``),
``binary_logs`` (the server's binlog files and sizes, ``binlog_stream``). The physical
mover (docs/physical.md): ``choose_engine`` → ``Locality`` (``physical_env``),
``dump_physical`` (``physical_dump``); ``prepare_restore`` places tables stored as pages
itself (``physical_restore``). Services import only this
package, never a submodule (an import-linter contract in pyproject.toml holds them to it).

The names are resolved on first use (PEP 562 ``__getattr__``), each importing only its own
submodule: a project without a database never loads PyMySQL or mysqlclient (start-up,
docs/performance.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snapkeep.engines.mysql.binlog_checks import binlog_problems, require_binlog
    from snapkeep.engines.mysql.binlog_follow import DEFAULT_INTERVAL as BINLOG_INTERVAL
    from snapkeep.engines.mysql.binlog_follow import Follower
    from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayResult, ReplayStop
    from snapkeep.engines.mysql.binlog_stream import binary_logs
    from snapkeep.engines.mysql.connect import check_connection, check_restore_target
    from snapkeep.engines.mysql.consistency import hold_writes
    from snapkeep.engines.mysql.cutover import cleanup_leftovers
    from snapkeep.engines.mysql.descriptions import renamed_description
    from snapkeep.engines.mysql.dump import dump_database
    from snapkeep.engines.mysql.export import export_sql
    from snapkeep.engines.mysql.import_server import PrivateServer, private_server
    from snapkeep.engines.mysql.import_server import check_available as check_import_server
    from snapkeep.engines.mysql.import_server import stop_leftover as stop_leftover_server
    from snapkeep.engines.mysql.names import drill_name
    from snapkeep.engines.mysql.physical_dump import dump_physical
    from snapkeep.engines.mysql.physical_env import Locality
    from snapkeep.engines.mysql.physical_env import choose as choose_engine
    from snapkeep.engines.mysql.pitr import prepare_restore_at
    from snapkeep.engines.mysql.privileges import check_restore_privileges
    from snapkeep.engines.mysql.restore import PreparedRestore, prepare_restore
    from snapkeep.engines.mysql.schema import estimate_size
    from snapkeep.engines.mysql.scope import table_names
    from snapkeep.engines.mysql.sqlfile import (
        create_database,
        database_defaults,
        drop_database,
        find_client,
        load_sql,
        option_file,
        scratch_target,
    )
    from snapkeep.engines.mysql.target import MySQLTarget
    from snapkeep.engines.mysql.verify import compare_digests, table_digests
    from snapkeep.engines.mysql.verify_pages import check_paged, compare_paged

# public name -> (submodule, its name there)
_FACE: dict[str, tuple[str, str]] = {
    "BINLOG_INTERVAL": ("binlog_follow", "DEFAULT_INTERVAL"),
    "Follower": ("binlog_follow", "Follower"),
    "binlog_problems": ("binlog_checks", "binlog_problems"),
    "require_binlog": ("binlog_checks", "require_binlog"),
    "binary_logs": ("binlog_stream", "binary_logs"),
    "MySQLTarget": ("target", "MySQLTarget"),
    "ReplayPiece": ("binlog_replay_types", "ReplayPiece"),
    "ReplayResult": ("binlog_replay_types", "ReplayResult"),
    "ReplayStop": ("binlog_replay_types", "ReplayStop"),
    "prepare_restore_at": ("pitr", "prepare_restore_at"),
    "Locality": ("physical_env", "Locality"),
    "choose_engine": ("physical_env", "choose"),
    "dump_physical": ("physical_dump", "dump_physical"),
    "PreparedRestore": ("restore", "PreparedRestore"),
    "PrivateServer": ("import_server", "PrivateServer"),
    "check_connection": ("connect", "check_connection"),
    "check_paged": ("verify_pages", "check_paged"),
    "check_import_server": ("import_server", "check_available"),
    "check_restore_privileges": ("privileges", "check_restore_privileges"),
    "check_restore_target": ("connect", "check_restore_target"),
    "cleanup_leftovers": ("cutover", "cleanup_leftovers"),
    "compare_digests": ("verify", "compare_digests"),
    "compare_paged": ("verify_pages", "compare_paged"),
    "create_database": ("sqlfile", "create_database"),
    "database_defaults": ("sqlfile", "database_defaults"),
    "drill_name": ("names", "drill_name"),
    "drop_database": ("sqlfile", "drop_database"),
    "dump_database": ("dump", "dump_database"),
    "estimate_size": ("schema", "estimate_size"),
    "export_sql": ("export", "export_sql"),
    "find_client": ("sqlfile", "find_client"),
    "hold_writes": ("consistency", "hold_writes"),
    "load_sql": ("sqlfile", "load_sql"),
    "option_file": ("sqlfile", "option_file"),
    "prepare_restore": ("restore", "prepare_restore"),
    "private_server": ("import_server", "private_server"),
    "renamed_description": ("descriptions", "renamed_description"),
    "scratch_target": ("sqlfile", "scratch_target"),
    "stop_leftover_server": ("import_server", "stop_leftover"),
    "table_digests": ("verify", "table_digests"),
    "table_names": ("scope", "table_names"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _FACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value  # later lookups no longer reach this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BINLOG_INTERVAL",
    "Follower",
    "Locality",
    "MySQLTarget",
    "PreparedRestore",
    "PrivateServer",
    "ReplayPiece",
    "ReplayResult",
    "ReplayStop",
    "binary_logs",
    "binlog_problems",
    "check_connection",
    "check_paged",
    "choose_engine",
    "check_import_server",
    "check_restore_privileges",
    "check_restore_target",
    "cleanup_leftovers",
    "compare_digests",
    "compare_paged",
    "create_database",
    "database_defaults",
    "drill_name",
    "drop_database",
    "dump_database",
    "dump_physical",
    "estimate_size",
    "export_sql",
    "prepare_restore_at",
    "find_client",
    "hold_writes",
    "load_sql",
    "option_file",
    "prepare_restore",
    "private_server",
    "renamed_description",
    "require_binlog",
    "scratch_target",
    "stop_leftover_server",
    "table_digests",
    "table_names",
]
