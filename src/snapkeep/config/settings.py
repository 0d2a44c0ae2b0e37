"""The typed settings snapkeep.toml is turned into, the names and defaults they use, and
what code outside config needs with them (``DatabaseURL.parse``, ``redact_url``).
``config/load.py`` builds these objects from tables that ``config/schema.py`` has
checked; nothing here reads a file.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from snapkeep.errors import ConfigError

CONFIG_NAME = "snapkeep.toml"
STATE_DIR = ".snapkeep"
# beside an environment's mounts: what every worker of it must see (pause, cut-over)
SHARED_STATE_DIR = ".snapkeep-state"
PLANS = ("starter", "pro")
ENV_TYPES = ("production", "staging", "development")
ENGINES = ("auto", "logical", "physical")  # [environments.X] engine (docs/physical.md)
# pages when the server is local, else rows (physical_env.choose says which and why)
DEFAULT_ENGINE = "auto"
DEFAULT_RESTORE_WINDOW_DAYS = 7
DEFAULT_KEY_FILE = f"{STATE_DIR}/repository.key"
DEFAULT_COMPRESSION_LEVEL = 3  # = repository.ROWS_ZSTD_LEVEL (config imports no layer)
STORAGE_OPTIONS = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token")
RETENTION_KEYS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
CATALOG_FILE = "catalog.db"
CATALOG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")
HOOK_EVENTS = ("before_snapshot", "after_snapshot", "before_restore", "after_restore")
HOOK_POLICIES = ("fail", "warn")
DEFAULT_HOOK_TIMEOUT = 300.0

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
    # [environments.X] point_in_time: archive the database's binary log (`binlog:follow`,
    # docs/pitr.md); binlog_interval: seconds between committed segments at most
    point_in_time: bool = False
    binlog_interval: float = 2.0
    # binlog_lag_warning: seconds of archive lag (services/pitr_window.py) past which
    # `serve` raises a warning activity and its webhook (docs/pitr.md, Warnings)
    binlog_lag_warning: float = 60.0
    # [environments.X] engine: how the database is moved (docs/physical.md): "physical"
    # (InnoDB tables as pages; the server must be local, its datadir ours to
    # read and write), "logical" (rows), "auto" (physical when possible, else logical)
    engine: str = DEFAULT_ENGINE

    def mount_path(self, mount: str) -> Path:
        return self.root / mount


@dataclass(frozen=True)
class ReplicaConfig:
    """``[replicas.NAME]``: a second repository (another directory, or S3 storage with its
    own endpoint, bucket and credentials) that snapshots are copied to, with a master key of
    its own (``key_file``, or a passphrase from SNAPKEEP_REPLICA_PASSPHRASE when
    ``passphrase = true``) and its own retention (docs/offsite.md)."""

    name: str
    location: str  # an absolute local directory, or s3://bucket/prefix
    options: dict[str, str] = field(default_factory=dict, repr=False)
    key_file: Path | None = None  # None: a passphrase unlocks it
    retention: dict[str, int] = field(default_factory=dict)
    # copy each new snapshot of the project's environments here right after it is taken
    automatic: bool = False
    # `serve` pulls what the primary holds and this replica lacks: "new" (each scheduler
    # tick), or a cron expression (UTC); None: it does not pull (docs/offsite.md)
    pull: str | None = None


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
    replicas: dict[str, ReplicaConfig] = field(default_factory=dict)
    # [project] read_only: this host only reads the repository (the off-site server that
    # pulls copies with read-only storage credentials): no backups, restores, deletes or
    # retention here, and its environments need no database or mounts
    read_only: bool = False

    def replica(self, name: str) -> ReplicaConfig:
        try:
            return self.replicas[name]
        except KeyError:
            known = ", ".join(sorted(self.replicas)) or "none"
            raise ConfigError(
                f"unknown replica {name!r} (known: {known}); add [replicas.{name}] with "
                f"`location` to {self.path}") from None

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
            near = difflib.get_close_matches(name, list(self.environments), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(
                f"unknown environment {name!r} in project {self.id!r} (known: {known}); "
                f"{hint}add [environments.{name}] to {self.path} or pick one with -e"
            ) from None


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: what may be shown or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()
