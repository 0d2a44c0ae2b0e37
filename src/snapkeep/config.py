"""snapkeep.toml: found, parsed and validated into typed objects. No raw dicts past here.

The file is found by ``--config PATH``, then ``SNAPKEEP_CONFIG``, then by walking up
from the working directory. Project state lives in ``.snapkeep/`` beside it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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
WEBHOOK_KEYS = ("webhook_url", "webhook_secret", "webhook_secret_file", "webhook_timeout",
                "webhook_attempts")


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
    # cron (UTC) of scheduled restore drills of the newest snapshot (services/drill.py)
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
    return str(p)


def parse_config(data: dict[str, Any], path: Path) -> ProjectConfig:
    project = data.get("project")
    if not isinstance(project, dict):
        raise ConfigError(f"{path}: missing [project] table with `id` and `plan`")
    where = f"{path} [project]"
    pid = _str(project, "id", where)
    plan = _choice(_str(project, "plan", where, "starter"), PLANS, where, "plan")
    base = path.parent
    repo = _str(project, "repository", where, f"{STATE_DIR}/repository")
    if "://" not in repo:
        repo = str((base / Path(repo).expanduser()).resolve())
    window = project.get("restore_window_days", DEFAULT_RESTORE_WINDOW_DAYS)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ConfigError(f"{where}: `restore_window_days` must be a whole number of days ≥ 1")

    options, key_file, level = _repository_table(data.get("repository", {}), path)
    catalog = _catalog_url(os.environ.get("SNAPKEEP_CATALOG") or project.get("catalog"), where)

    envs: dict[str, EnvironmentConfig] = {}
    raw_envs = data.get("environments", {})
    if not isinstance(raw_envs, dict):
        raise ConfigError(f"{path}: [environments] must be a table of environments")
    for name, env in raw_envs.items():
        ew = f"{path} [environments.{name}]"
        if not isinstance(env, dict):
            raise ConfigError(f"{ew}: must be a table")
        etype = _choice(_str(env, "type", ew, "development"), ENV_TYPES, ew, "type")
        root = (base / Path(_str(env, "root", ew)).expanduser()).resolve()
        mounts = env.get("mounts", [])
        if not isinstance(mounts, list):
            raise ConfigError(f"{ew}: `mounts` must be a list of paths")
        db = env.get("database")
        envs[name] = EnvironmentConfig(
            name=name,
            type=etype,
            root=root,
            mounts=tuple(dict.fromkeys(_mount(m, ew) for m in mounts)),
            database=DatabaseURL.parse(db, where=ew) if db else None,
            pause_command=env.get("pause_command"),
            resume_command=env.get("resume_command"),
            retention=_retention(env.get("retention", {}), f"{ew}.retention"),
            hooks=_hooks(env.get("hooks", {}), f"{ew}.hooks"),
            post_restore=_commands(env.get("post_restore", []), ew, "post_restore"),
            verify=_str(env, "verify", ew) if "verify" in env else None,
        )
    return ProjectConfig(path=path, id=pid, plan=plan, repository=repo,
                         restore_window_days=window, environments=envs,
                         repository_options=options, key_file=key_file, catalog_url=catalog,
                         compression_level=level,
                         webhook=_webhook(data.get("notifications", {}), path))


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


def _repository_table(table: Any, path: Path) -> tuple[dict[str, str], Path | None, int]:
    where = f"{path} [repository]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    options: dict[str, str] = {}
    key_file: Path | None = None
    level = DEFAULT_COMPRESSION_LEVEL
    for key in table:
        if key == "key_file":
            key_file = (path.parent / Path(_str(table, key, where)).expanduser()).resolve()
        elif key == "compression_level":
            level = table[key]
            if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 19:
                raise ConfigError(f"{where}: `compression_level` must be a zstd level from 1 "
                                  "(fastest) to 19 (smallest); 5 is the default")
        elif key in STORAGE_OPTIONS:
            options[key] = _str(table, key, where)
        else:
            raise ConfigError(f"{where}: unknown key `{key}`; use key_file, compression_level "
                              f"or one of {', '.join(STORAGE_OPTIONS)}")
    return options, key_file, level


def _retention(table: Any, where: str) -> dict[str, int]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of keep_* counts")
    out: dict[str, int] = {}
    for key, value in table.items():
        if key not in RETENTION_KEYS:
            raise ConfigError(f"{where}: unknown key `{key}`; use {', '.join(RETENTION_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}: `{key}` must be a whole number ≥ 0")
        out[key] = value
    return out


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


def _hooks(table: Any, where: str) -> Hooks:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of {', '.join(HOOK_EVENTS)}, timeout "
                          "and on_failure")
    known = (*HOOK_EVENTS, "timeout", "on_failure")
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key `{key}`; use {', '.join(known)}")
    return Hooks(
        **{e: _commands(table.get(e, []), where, e) for e in HOOK_EVENTS},
        timeout=_seconds(table.get("timeout", DEFAULT_HOOK_TIMEOUT), where, "timeout"),
        on_failure=_choice(table.get("on_failure", "fail"), HOOK_POLICIES, where, "on_failure"))


def _webhook(table: Any, path: Path) -> WebhookConfig | None:
    where = f"{path} [notifications]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    for key in table:
        if key not in WEBHOOK_KEYS:
            raise ConfigError(f"{where}: unknown key `{key}`; use {', '.join(WEBHOOK_KEYS)}")
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
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        raise ConfigError(f"{where}: `webhook_attempts` must be a whole number from 1 to 20")
    return WebhookConfig(url=url, secret=secret, attempts=attempts,
                         timeout=_seconds(table.get("webhook_timeout", 10), where,
                                          "webhook_timeout"))
