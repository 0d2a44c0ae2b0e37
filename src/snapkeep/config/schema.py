"""What snapkeep.toml may hold: one declarative ``SCHEMA`` and the checker that reads it.

An unknown key or table, or a value of the wrong type, is refused with its table and the
nearest valid name, so a misspelled ``databse`` can never be taken as "no database".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkeep.config.settings import HOOK_EVENTS, RETENTION_KEYS, STORAGE_OPTIONS
from snapkeep.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """What a value must be; ``describe`` completes "`key` must be …"."""

    describe: str
    accepts: Callable[[Any], bool]
    table: bool = False  # its keys are checked against SCHEMA[<its table>]


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


STRING = Kind("a string", lambda v: isinstance(v, str))
WHOLE = Kind("a whole number", _whole)
NUMBER = Kind("a number", lambda v: _whole(v) or isinstance(v, float))
BOOLEAN = Kind("true or false", lambda v: isinstance(v, bool))
PATHS = Kind('a list of paths (strings), as in ["var", "pub/media"]', _strings)
COMMANDS = Kind("a shell command or a list of them (strings)",
                lambda v: isinstance(v, str) or _strings(v))
TABLE = Kind("a table", lambda v: isinstance(v, dict), table=True)
ENVIRONMENT = Kind("a table of the environment's settings, as in [environments.NAME]",
                   lambda v: isinstance(v, dict), table=True)
REPLICA = Kind("a table of the replica's settings, as in [replicas.NAME]",
               lambda v: isinstance(v, dict), table=True)
ANY_NAME = "*"  # a table whose keys are names the user chooses (the environments)

# dotted table name ("" is the top level, "*" any name) → its keys → what each must be
SCHEMA: dict[str, dict[str, Kind]] = {
    "": {"project": TABLE, "repository": TABLE, "environments": TABLE,
         "notifications": TABLE, "replicas": TABLE},
    "project": {"id": STRING, "plan": STRING, "repository": STRING,
                "restore_window_days": WHOLE, "catalog": STRING, "read_only": BOOLEAN},
    "repository": {"key_file": STRING, "compression_level": WHOLE,
                   **dict.fromkeys(STORAGE_OPTIONS, STRING)},
    "environments": {ANY_NAME: ENVIRONMENT},
    "environments.*": {"type": STRING, "root": STRING, "mounts": PATHS, "database": STRING,
                       "pause_command": STRING, "resume_command": STRING,
                       "post_restore": COMMANDS, "verify": STRING,
                       "point_in_time": BOOLEAN, "binlog_interval": NUMBER,
                       "binlog_lag_warning": NUMBER, "engine": STRING,
                       "retention": TABLE, "hooks": TABLE},
    "environments.*.retention": dict.fromkeys(RETENTION_KEYS, WHOLE),
    "replicas": {ANY_NAME: REPLICA},
    "replicas.*": {"location": STRING, "key_file": STRING, "passphrase": BOOLEAN,
                   "automatic": BOOLEAN, "pull": STRING, "retention": TABLE,
                   **dict.fromkeys(STORAGE_OPTIONS, STRING)},
    "replicas.*.retention": dict.fromkeys(RETENTION_KEYS, WHOLE),
    "environments.*.hooks": {**dict.fromkeys(HOOK_EVENTS, COMMANDS), "timeout": NUMBER,
                             "on_failure": STRING},
    "notifications": {"webhook_url": STRING, "webhook_secret": STRING,
                      "webhook_secret_file": STRING, "webhook_timeout": NUMBER,
                      "webhook_attempts": WHOLE},
}


def check_schema(data: dict[str, Any], path: Path) -> None:
    """Refuse (ConfigError naming the file, the table and the nearest valid name) any key
    or table SCHEMA does not know, and any value of the wrong type."""
    _check_table(data, "", (), path)


def table_header(names: tuple[str, ...]) -> str:
    """``[environments.develop-branch]`` for ("environments", "develop-branch")."""
    if not names:
        return "the top level"
    return "[" + ".".join(n if re.fullmatch(r"[A-Za-z0-9_-]+", n) else f'"{n}"'
                          for n in names) + "]"


def _check_table(table: dict[str, Any], schema_name: str, names: tuple[str, ...],
                 path: Path) -> None:
    allowed = SCHEMA[schema_name]
    for key, value in table.items():
        slot = key if key in allowed else ANY_NAME if ANY_NAME in allowed else None
        if slot is None:
            raise ConfigError(_unknown(key, value, schema_name, names, path))
        kind = allowed[slot]
        if not kind.accepts(value):
            where = f"{path} {table_header(names)}" if names else str(path)
            raise ConfigError(f"{where}: `{key}` must be {kind.describe}, not {_a(value)}")
        if kind.table:
            _check_table(value, f"{schema_name}.{slot}".lstrip("."), (*names, key), path)


def _unknown(key: str, value: Any, schema_name: str, names: tuple[str, ...],
             path: Path) -> str:
    allowed = SCHEMA[schema_name]
    is_table = isinstance(value, dict)
    if is_table:  # a misspelled [table] reads better as one
        what = f"unknown table {table_header((*names, key))}"
    else:
        what = f"unknown key '{key}' " + (f"in {table_header(names)}" if names else
                                          "at the top level, before any [table]")
    near = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6) or \
        [k for k in allowed if len(key) >= 3 and (key in k or k in key)][:1]  # url → webhook_url
    if near:
        hint = f"did you mean {table_header((*names, near[0]))}?" \
            if is_table and allowed[near[0]].table else f"did you mean '{near[0]}'?"
    else:
        hint = f"valid {'tables' if is_table else 'keys'} here: " + ", ".join(
            table_header((*names, k)) if allowed[k].table else k for k in allowed)
        # a right key in the wrong table (keep_daily beside mounts): say where it goes
        env = names[1] if len(names) > 1 and names[0] == "environments" else "NAME"
        homes = [t for t, keys in SCHEMA.items()
                 if t != schema_name and key in keys and not keys[key].table]
        if homes:
            home = tuple(n.replace(ANY_NAME, env) for n in homes[0].split("."))
            hint += f" (`{key}` belongs in {table_header(home)})"
    return f"{path}: {what}; {hint}"


def _a(value: Any) -> str:
    """The TOML type of ``value``, never the value (it may be a password)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if _strings(value) else "an array holding something else"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"
