"""Checks of single values of snapkeep.toml (a non-empty string, one of a list, a mount,
a cron expression, shell commands, seconds, an environment name, the catalog URL): each
returns the value normalised or raises a ConfigError that says where it is and what
would be right."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from snapkeep.config.settings import CATALOG_SCHEMES, SHARED_STATE_DIR, redact_url
from snapkeep.errors import ConfigError

# the macros policy/schedules.py accepts too (config imports no layer, so not from there)
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
CRON_EXAMPLE = '"0 4 * * *" (every day at 04:00 UTC)'
# An environment's name names files under .snapkeep/ (locks, paused markers, journals,
# drills): letters, digits, "-", "_" and "." (not first), as in git branch names.
ENV_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
ENV_NAME_RULE = ('letters, digits, "-", "_" and "." (not first), at most 100 characters, '
                 'e.g. "production" or "develop-branch"')


def nonempty_str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{key}` must be a non-empty string")
    return value


def choice(value: str, allowed: tuple[str, ...], where: str, key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: `{key}` is {value!r}; use one of {', '.join(allowed)}")
    return value


def mount(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip("/"):
        raise ConfigError(f"{where}: every mount must be a non-empty relative path")
    # A leading "/" means "from the app root", as in .magento.app.yaml's old mount syntax.
    p = PurePosixPath(value.strip("/"))
    if ".." in p.parts:
        raise ConfigError(f"{where}: mount {value!r} must be a path inside the app root "
                          "(relative, without ..)")
    if not p.parts or p.parts == (".",):
        raise ConfigError(f"{where}: mount {value!r} is the whole app root; list the "
                          'directories to keep instead, as in mounts = ["var", "pub/media"]')
    if p.parts[0] == SHARED_STATE_DIR:
        raise ConfigError(f"{where}: mount {value!r} is snapkeep's {SHARED_STATE_DIR} "
                          "directory (its pause marker and cut-over journal); list the "
                          "application's own directories instead")
    return str(p)


def check_mounts(mounts: tuple[str, ...], root: Path, state_dir: Path, where: str) -> None:
    """Refuse a mount holding or inside snapkeep's own state (it would back up its own
    repository and key, or restore over them) and two mounts of which one holds the other
    (their files would be kept, and restored, twice)."""
    state = state_dir.resolve()
    for m in mounts:
        full = (root / m).resolve()
        if full == state or state in full.parents or full in state.parents:
            raise ConfigError(f"{where}: mount {m!r} is or holds snapkeep's state directory "
                              f"{state}; list the application's own directories instead")
    for a in mounts:
        for b in mounts:
            if a != b and PurePosixPath(a) in PurePosixPath(b).parents:
                raise ConfigError(f"{where}: mounts {a!r} and {b!r} overlap ({b!r} is inside "
                                  f"{a!r}); keep only {a!r}")


def cron(value: str, where: str, key: str) -> str:
    """A five-field cron expression or a macro (as policy/schedules.py accepts), normalised."""
    expr = " ".join(value.split())
    if expr.lower() in CRON_MACROS:
        return expr.lower()
    fields = expr.split(" ") if expr else []
    if len(fields) != 5 and not expr.startswith("@"):
        raise ConfigError(f"{where}: `{key}` {value!r} has {len(fields)} field(s); a cron "
                          "expression has 5: minute hour day-of-month month day-of-week, for "
                          f"example {CRON_EXAMPLE}")
    from croniter import CroniterBadDateError, CroniterError, croniter  # schedules only

    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ConfigError(f"{where}: `{key}` {value!r} never matches a real date (such as 30 "
                          f"February); pick days that exist, for example {CRON_EXAMPLE}") from None
    except (CroniterError, ValueError) as e:
        raise ConfigError(f"{where}: `{key}` {value!r} is not a valid cron expression ({e}); "
                          f"write minute hour day-of-month month day-of-week, for example "
                          f"{CRON_EXAMPLE}, or one of {', '.join(CRON_MACROS)}") from None
    return expr


def commands(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise ConfigError(f"{where}: `{key}` must be a list of shell commands (strings)")
    return tuple(value)


def seconds(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: `{key}` must be a number of seconds > 0")
    return float(value)


def safe_name(name: str, what: str = "environment name") -> str:
    """``name`` if it may name a file under .snapkeep/ (no "/", "..", NUL: nothing can
    escape the state directory), else ConfigError saying what is allowed."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not allowed: use {ENV_NAME_RULE}")
    return name


def catalog_url(value: Any, where: str) -> str | None:
    """The catalog URL (``postgresql://user[:password]@host:5432/db``), checked; None for
    the default SQLite file. SNAPKEEP_CATALOG overrides ``catalog`` in the file."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: `catalog` must be a URL string such as "
                          "postgresql://snapkeep@db.example:5432/snapkeep")
    parts = urlsplit(value)
    if parts.scheme not in CATALOG_SCHEMES:
        raise ConfigError(
            f"{where}: catalog URL {redact_url(value)} must start with postgresql:// "
            "(e.g. postgresql://snapkeep@127.0.0.1:5432/snapkeep), or leave `catalog` out "
            "for the SQLite file in .snapkeep/")
    if parts.scheme != "sqlite" and not parts.path.strip("/"):
        raise ConfigError(f"{where}: catalog URL {redact_url(value)} must name a database, "
                          "as in postgresql://snapkeep@127.0.0.1:5432/snapkeep")
    return value
