"""snapkeep.toml: found, parsed and validated into typed objects. No raw dicts past here.

The file is found by ``--config PATH``, then ``SNAPKEEP_CONFIG``, then by walking up
from the working directory. Project state lives in ``.snapkeep/`` beside it. Every table
and key is first checked against ``SCHEMA``: nothing unknown or mistyped is ever ignored.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from croniter import CroniterBadDateError, CroniterError, croniter

from snapkeep.errors import ConfigError

CONFIG_NAME = "snapkeep.toml"
STATE_DIR = ".snapkeep"
PLANS = ("starter", "pro")
ENV_TYPES = ("production", "staging", "development")
DEFAULT_RESTORE_WINDOW_DAYS = 7
DEFAULT_KEY_FILE = f"{STATE_DIR}/repository.key"
DEFAULT_COMPRESSION_LEVEL = 5  # = repository.ROWS_ZSTD_LEVEL (config imports no layer)
STORAGE_OPTIONS = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token")
RETENTION_KEYS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
CATALOG_FILE = "catalog.db"
CATALOG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")
HOOK_EVENTS = ("before_snapshot", "after_snapshot", "before_restore", "after_restore")
HOOK_POLICIES = ("fail", "warn")
DEFAULT_HOOK_TIMEOUT = 300.0
# the macros policy/schedules.py accepts too (config imports no layer, so not from there)
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
CRON_EXAMPLE = '"0 4 * * *" (every day at 04:00 UTC)'
# An environment's name names files under .snapkeep/ (locks, paused markers, journals,
# drills): letters, digits, "-", "_" and "." (not first), as in git branch names.
ENV_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
ENV_NAME_RULE = ('letters, digits, "-", "_" and "." (not first), at most 100 characters, '
                 'e.g. "production" or "develop-branch"')


@dataclass(frozen=True)
class DatabaseURL:
    """A ``mysql://user[:password]@host[:port]/database[?socket=/path]`` URL, parsed.

    ``repr`` and ``describe`` never show the password.
    """

    host: str
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False)
    unix_socket: str | None = None

    def describe(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    @classmethod
    def parse(cls, url: str, *, where: str) -> DatabaseURL:
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ConfigError(
                f"{where}: database URL must start with mysql:// (got "
                f"{parts.scheme or 'no'} scheme); write it as mysql://user@host:3306/dbname")
        database = unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise ConfigError(f"{where}: database URL must name one database, "
                              "as in mysql://user@host:3306/dbname")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError(f"{where}: the database URL has an invalid port") from None
        query = parse_qs(parts.query)
        password = unquote(parts.password) if parts.password is not None else None
        if password is None:
            password = os.environ.get("SNAPKEEP_DB_PASSWORD")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            database=database,
            password=password,
            unix_socket=query.get("socket", [None])[0],
        )


@dataclass(frozen=True)
class Hooks:
    """``[environments.X.hooks]``: shell commands run (in the environment's root) around
    its snapshots and restores, each bounded by ``timeout`` seconds. ``on_failure``:
    ``fail`` ends the activity as failed (a failing ``before_*`` command stops it before
    anything is paused or changed), ``warn`` logs the failure and goes on."""

    before_snapshot: tuple[str, ...] = ()
    after_snapshot: tuple[str, ...] = ()
    before_restore: tuple[str, ...] = ()
    after_restore: tuple[str, ...] = ()
    timeout: float = DEFAULT_HOOK_TIMEOUT
    on_failure: str = "fail"

    def commands(self, event: str) -> tuple[str, ...]:
        if event not in HOOK_EVENTS:
            raise ValueError(f"unknown hook event {event!r}")
        return getattr(self, event)


@dataclass(frozen=True)
class WebhookConfig:
    """``[notifications]``: a URL called (POST, JSON, signed with HMAC-SHA256 of the body
    under ``secret``) when an activity of the project ends; retried ``attempts`` times."""

    url: str
    secret: str = field(repr=False)
    timeout: float = 10.0  # seconds per attempt
    attempts: int = 5


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    type: str
    root: Path
    mounts: tuple[str, ...]
    database: DatabaseURL | None
    pause_command: str | None = None
    resume_command: str | None = None
    # keep_last / keep_hourly / keep_daily / keep_weekly / keep_monthly → count
    retention: dict[str, int] = field(default_factory=dict)
    hooks: Hooks = field(default_factory=Hooks)
    # run after a snapshot of *another* environment is restored here (e.g. anonymise
    # customer e-mails, reset base URLs); a failing one fails the activity
    post_restore: tuple[str, ...] = ()
    # [environments.X] verify: a cron expression (UTC) for scheduled restore drills
    # (`snapshot:verify --restore`); None means no drills are scheduled
    verify: str | None = None

    def mount_path(self, mount: str) -> Path:
        return self.root / mount


@dataclass(frozen=True)
class ProjectConfig:
    path: Path  # the snapkeep.toml itself
    id: str
    plan: str
    repository: str  # an absolute local directory, or s3://bucket/prefix
    restore_window_days: int
    environments: dict[str, EnvironmentConfig]
    # [repository]: storage options (endpoint, region, credentials) for s3:// locations
    repository_options: dict[str, str] = field(default_factory=dict, repr=False)
    # the master key file; None means the key is unlocked with a passphrase
    key_file: Path | None = None
    # [repository] compression_level: zstd level of database rows (files use 3)
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    # [project] catalog / SNAPKEEP_CATALOG: a postgresql:// URL shared by a team's servers
    # and workers; None means the SQLite file in .snapkeep/. May hold a password: never
    # print it, print ``catalog_description`` instead.
    catalog_url: str | None = field(default=None, repr=False)
    webhook: WebhookConfig | None = None

    @property
    def catalog_description(self) -> str:
        return redact_url(self.catalog_url) if self.catalog_url else \
            f"sqlite:///{self.state_dir / CATALOG_FILE}"

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return self.base_dir / STATE_DIR

    def environment(self, name: str) -> EnvironmentConfig:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"unknown environment {name!r} in project {self.id!r} (known: {known}); "
                f"add [environments.{name}] to {self.path} or pick one with -e") from None


# -- the schema: what snapkeep.toml may hold --------------------------------------------------
# One declarative place, read by one checker (``check_schema``) before anything is built:
# an unknown key or table, or a value of the wrong type, is refused with its table and the
# nearest valid name, so a misspelled ``databse`` can never be taken as "no database".


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
PATHS = Kind('a list of paths (strings), as in ["var", "pub/media"]', _strings)
COMMANDS = Kind("a shell command or a list of them (strings)",
                lambda v: isinstance(v, str) or _strings(v))
TABLE = Kind("a table", lambda v: isinstance(v, dict), table=True)
ENVIRONMENT = Kind("a table of the environment's settings, as in [environments.NAME]",
                   lambda v: isinstance(v, dict), table=True)
ANY_NAME = "*"  # a table whose keys are names the user chooses (the environments)

# dotted table name ("" is the top level, "*" any name) → its keys → what each must be
SCHEMA: dict[str, dict[str, Kind]] = {
    "": {"project": TABLE, "repository": TABLE, "environments": TABLE,
         "notifications": TABLE},
    "project": {"id": STRING, "plan": STRING, "repository": STRING,
                "restore_window_days": WHOLE, "catalog": STRING},
    "repository": {"key_file": STRING, "compression_level": WHOLE,
                   **dict.fromkeys(STORAGE_OPTIONS, STRING)},
    "environments": {ANY_NAME: ENVIRONMENT},
    "environments.*": {"type": STRING, "root": STRING, "mounts": PATHS, "database": STRING,
                       "pause_command": STRING, "resume_command": STRING,
                       "post_restore": COMMANDS, "verify": STRING,
                       "retention": TABLE, "hooks": TABLE},
    "environments.*.retention": dict.fromkeys(RETENTION_KEYS, WHOLE),
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


def _cron(value: str, where: str, key: str) -> str:
    """A five-field cron expression or a macro (as policy/schedules.py accepts), normalised."""
    expr = " ".join(value.split())
    if expr.lower() in CRON_MACROS:
        return expr.lower()
    fields = expr.split(" ") if expr else []
    if len(fields) != 5 and not expr.startswith("@"):
        raise ConfigError(f"{where}: `{key}` {value!r} has {len(fields)} field(s); a cron "
                          "expression has 5: minute hour day-of-month month day-of-week, for "
                          f"example {CRON_EXAMPLE}")
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


def find_config(explicit: str | None = None, cwd: Path | None = None) -> Path:
    """The snapkeep.toml to use, or ConfigError saying how to create one."""
    chosen = explicit or os.environ.get("SNAPKEEP_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; "
                              "check --config / SNAPKEEP_CONFIG or run `snapkeep init`")
        return path.resolve()
    start = (cwd or Path.cwd()).resolve()
    for d in (start, *start.parents):
        if (d / CONFIG_NAME).is_file():
            return d / CONFIG_NAME
    raise ConfigError(
        f"no {CONFIG_NAME} found in {start} or any parent directory; "
        "run `snapkeep init` in your project directory, or pass --config PATH")


def load_config(explicit: str | None = None, cwd: Path | None = None) -> ProjectConfig:
    path = find_config(explicit, cwd)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    return parse_config(data, path)


def _str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{key}` must be a non-empty string")
    return value


def _choice(value: str, allowed: tuple[str, ...], where: str, key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: `{key}` is {value!r}; use one of {', '.join(allowed)}")
    return value


def _mount(value: Any, where: str) -> str:
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
    return str(p)


def _check_mounts(mounts: tuple[str, ...], root: Path, state_dir: Path, where: str) -> None:
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


def parse_config(data: dict[str, Any], path: Path) -> ProjectConfig:
    check_schema(data, path)  # from here on every key is known and of the right type
    project = data.get("project")
    if project is None:
        raise ConfigError(f"{path}: missing [project] table with `id` and `plan`")
    where = f"{path} [project]"
    pid = _str(project, "id", where)
    plan = _choice(_str(project, "plan", where, "starter"), PLANS, where, "plan")
    base = path.parent
    repo = _str(project, "repository", where, f"{STATE_DIR}/repository")
    if "://" not in repo:
        repo = str((base / Path(repo).expanduser()).resolve())
    window = project.get("restore_window_days", DEFAULT_RESTORE_WINDOW_DAYS)
    if window < 1:
        raise ConfigError(f"{where}: `restore_window_days` must be a whole number of days ≥ 1")

    options, key_file, level = _repository_table(data.get("repository", {}), path)
    catalog = _catalog_url(os.environ.get("SNAPKEEP_CATALOG") or project.get("catalog"), where)
    envs = {name: _environment(name, env, path)
            for name, env in data.get("environments", {}).items()}
    return ProjectConfig(path=path, id=pid, plan=plan, repository=repo,
                         restore_window_days=window, environments=envs,
                         repository_options=options, key_file=key_file, catalog_url=catalog,
                         compression_level=level,
                         webhook=_webhook(data.get("notifications", {}), path))


def safe_name(name: str, what: str = "environment name") -> str:
    """``name`` if it may name a file under .snapkeep/ (no "/", "..", NUL: nothing can
    escape the state directory), else ConfigError saying what is allowed."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not allowed: use {ENV_NAME_RULE}")
    return name


def _environment(name: str, env: dict[str, Any], path: Path) -> EnvironmentConfig:
    ew = f"{path} {table_header(('environments', name))}"
    safe_name(name, f"{path}: the environment name in {table_header(('environments', name))}")
    root = (path.parent / Path(_str(env, "root", ew)).expanduser()).resolve()
    mounts = tuple(dict.fromkeys(_mount(m, ew) for m in env.get("mounts", [])))
    _check_mounts(mounts, root, path.parent / STATE_DIR, ew)
    database = DatabaseURL.parse(_str(env, "database", ew), where=ew) \
        if "database" in env else None
    if database is None and not mounts:
        raise ConfigError(
            f"{ew}: environment {name} has neither `database` nor `mounts`: a snapshot of it "
            'would be empty; add `database = "mysql://user@host:3306/dbname"` and/or '
            '`mounts = ["var", "pub/media"]` (paths relative to `root`)')
    return EnvironmentConfig(
        name=name,
        type=_choice(_str(env, "type", ew, "development"), ENV_TYPES, ew, "type"),
        root=root,
        mounts=mounts,
        database=database,
        pause_command=_str(env, "pause_command", ew) if "pause_command" in env else None,
        resume_command=_str(env, "resume_command", ew) if "resume_command" in env else None,
        retention=_retention(env.get("retention", {}), f"{ew}.retention"),
        hooks=_hooks(env.get("hooks", {}), f"{ew}.hooks"),
        post_restore=_commands(env.get("post_restore", []), ew, "post_restore"),
        verify=_cron(env["verify"], ew, "verify") if "verify" in env else None,
    )


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: what may be shown or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def _catalog_url(value: Any, where: str) -> str | None:
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


def _repository_table(table: dict[str, Any],
                      path: Path) -> tuple[dict[str, str], Path | None, int]:
    where = f"{path} [repository]"
    options = {k: _str(table, k, where) for k in STORAGE_OPTIONS if k in table}
    key_file = (path.parent / Path(_str(table, "key_file", where)).expanduser()).resolve() \
        if "key_file" in table else None
    level = table.get("compression_level", DEFAULT_COMPRESSION_LEVEL)
    if not 1 <= level <= 19:
        raise ConfigError(f"{where}: `compression_level` must be a zstd level from 1 "
                          "(fastest) to 19 (smallest); 5 is the default")
    return options, key_file, level


def _retention(table: dict[str, Any], where: str) -> dict[str, int]:
    for key, value in table.items():
        if value < 0:
            raise ConfigError(f"{where}: `{key}` must be a whole number ≥ 0")
    return dict(table)


def _commands(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise ConfigError(f"{where}: `{key}` must be a list of shell commands (strings)")
    return tuple(value)


def _seconds(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: `{key}` must be a number of seconds > 0")
    return float(value)


def _hooks(table: dict[str, Any], where: str) -> Hooks:
    return Hooks(
        **{e: _commands(table.get(e, []), where, e) for e in HOOK_EVENTS},
        timeout=_seconds(table.get("timeout", DEFAULT_HOOK_TIMEOUT), where, "timeout"),
        on_failure=_choice(table.get("on_failure", "fail"), HOOK_POLICIES, where, "on_failure"))


def _webhook(table: dict[str, Any], path: Path) -> WebhookConfig | None:
    where = f"{path} [notifications]"
    if "webhook_url" not in table:
        if table:
            raise ConfigError(f"{where}: set `webhook_url` (the other keys configure it)")
        return None
    url = _str(table, "webhook_url", where)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{where}: `webhook_url` must be an http:// or https:// URL")
    secret = os.environ.get("SNAPKEEP_WEBHOOK_SECRET") or table.get("webhook_secret")
    if not secret and "webhook_secret_file" in table:
        secret_path = (path.parent / Path(_str(table, "webhook_secret_file", where))
                       .expanduser()).resolve()
        try:
            secret = secret_path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"{where}: cannot read `webhook_secret_file` {secret_path}: "
                              f"{e.strerror}") from None
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f"{where}: the webhook needs a shared secret to sign its calls: set "
                          "`webhook_secret_file` (or SNAPKEEP_WEBHOOK_SECRET)")
    attempts = table.get("webhook_attempts", 5)
    if not 1 <= attempts <= 20:
        raise ConfigError(f"{where}: `webhook_attempts` must be a whole number from 1 to 20")
    return WebhookConfig(url=url, secret=secret, attempts=attempts,
                         timeout=_seconds(table.get("webhook_timeout", 10), where,
                                          "webhook_timeout"))
