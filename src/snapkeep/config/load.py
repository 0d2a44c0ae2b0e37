"""snapkeep.toml found, read and built into a ``ProjectConfig``.

The file is found by ``--config PATH``, then ``SNAPKEEP_CONFIG``, then by walking up
from the working directory. It is checked against ``SCHEMA`` first; the builders here
then know every key and its type, and check what the schema cannot (ranges, URLs, paths).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from snapkeep.config import settings
from snapkeep.config.schema import check_schema, table_header
from snapkeep.config.settings import (
    CONFIG_NAME,
    DatabaseURL,
    EnvironmentConfig,
    Hooks,
    ProjectConfig,
    ReplicaConfig,
    WebhookConfig,
)
from snapkeep.config.values import (
    catalog_url,
    check_mounts,
    choice,
    commands,
    cron,
    mount,
    nonempty_str,
    safe_name,
    seconds,
)
from snapkeep.errors import ConfigError


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


def parse_config(data: dict[str, Any], path: Path) -> ProjectConfig:
    check_schema(data, path)  # from here on every key is known and of the right type
    project = data.get("project")
    if project is None:
        raise ConfigError(f"{path}: missing [project] table with `id` and `plan`")
    where = f"{path} [project]"
    pid = nonempty_str(project, "id", where)
    plan = choice(nonempty_str(project, "plan", where, "starter"), settings.PLANS, where, "plan")
    base = path.parent
    repo = nonempty_str(project, "repository", where, f"{settings.STATE_DIR}/repository")
    if "://" not in repo:
        repo = str((base / Path(repo).expanduser()).resolve())
    window = project.get("restore_window_days", settings.DEFAULT_RESTORE_WINDOW_DAYS)
    if window < 1:
        raise ConfigError(f"{where}: `restore_window_days` must be a whole number of days ≥ 1")

    options, key_file, level = _repository_table(data.get("repository", {}), path)
    catalog = catalog_url(os.environ.get("SNAPKEEP_CATALOG") or project.get("catalog"), where)
    read_only = bool(project.get("read_only", False))
    envs = {name: _environment(name, env, path, read_only)
            for name, env in data.get("environments", {}).items()}
    return ProjectConfig(path=path, id=pid, plan=plan, repository=repo,
                         restore_window_days=window, environments=envs,
                         repository_options=options, key_file=key_file, catalog_url=catalog,
                         compression_level=level,
                         webhook=_webhook(data.get("notifications", {}), path),
                         replicas={name: _replica(name, r, path, repo)
                                   for name, r in data.get("replicas", {}).items()},
                         read_only=read_only)


def _replica(name: str, table: dict[str, Any], path: Path, primary: str) -> ReplicaConfig:
    where = f"{path} {table_header(('replicas', name))}"
    safe_name(name, f"{path}: the replica name in {table_header(('replicas', name))}")
    location = nonempty_str(table, "location", where)
    if "://" not in location:
        location = str((path.parent / Path(location).expanduser()).resolve())
    if location.rstrip("/") == primary.rstrip("/"):
        raise ConfigError(f"{where}: `location` is the project's own repository; a replica "
                          "must be other storage (another disk, mount or S3 bucket)")
    options = {k: nonempty_str(table, k, where) for k in settings.STORAGE_OPTIONS if k in table}
    if options and not location.startswith("s3://"):
        raise ConfigError(f"{where}: {', '.join(sorted(options))} apply to an s3:// "
                          "`location` only; drop them or give an s3://bucket/prefix location")
    if table.get("passphrase") and "key_file" in table:
        raise ConfigError(f"{where}: give either `key_file` or `passphrase = true`, not both")
    key_file = None if table.get("passphrase") else (path.parent / Path(nonempty_str(
        table, "key_file", where, f"{settings.STATE_DIR}/replicas/{name}.key")).expanduser()
        ).resolve()
    return ReplicaConfig(name=name, location=location, options=options, key_file=key_file,
                         retention=_retention(table.get("retention", {}), f"{where}.retention"),
                         automatic=bool(table.get("automatic", False)),
                         pull=_pull(table["pull"], where) if "pull" in table else None)


def _pull(value: str, where: str) -> str:
    return "new" if value.strip().lower() == "new" else cron(value, where, "pull")


def _environment(name: str, env: dict[str, Any], path: Path,
                 read_only: bool = False) -> EnvironmentConfig:
    ew = f"{path} {table_header(('environments', name))}"
    safe_name(name, f"{path}: the environment name in {table_header(('environments', name))}")
    root = (path.parent / Path(nonempty_str(env, "root", ew, "." if read_only else None))
            .expanduser()).resolve()
    mounts = tuple(dict.fromkeys(mount(m, ew) for m in env.get("mounts", [])))
    check_mounts(mounts, root, path.parent / settings.STATE_DIR, ew)
    database = DatabaseURL.parse(nonempty_str(env, "database", ew), where=ew) \
        if "database" in env else None
    if database is None and not mounts and not read_only:
        raise ConfigError(
            f"{ew}: environment {name} has neither `database` nor `mounts`: a snapshot of it "
            'would be empty; add `database = "mysql://user@host:3306/dbname"` and/or '
            '`mounts = ["var", "pub/media"]` (paths relative to `root`)')
    return EnvironmentConfig(
        name=name,
        type=choice(nonempty_str(env, "type", ew, "development"), settings.ENV_TYPES, ew, "type"),
        root=root,
        mounts=mounts,
        database=database,
        pause_command=nonempty_str(env, "pause_command", ew) if "pause_command" in env else None,
        resume_command=nonempty_str(env, "resume_command", ew) if "resume_command" in env else None,
        retention=_retention(env.get("retention", {}), f"{ew}.retention"),
        hooks=_hooks(env.get("hooks", {}), f"{ew}.hooks"),
        post_restore=commands(env.get("post_restore", []), ew, "post_restore"),
        verify=cron(env["verify"], ew, "verify") if "verify" in env else None,
        point_in_time=bool(env.get("point_in_time", False)),
        binlog_interval=_interval(env.get("binlog_interval", 2.0), ew),
        binlog_lag_warning=_lag_warning(env.get("binlog_lag_warning", 60.0), ew),
        engine=choice(nonempty_str(env, "engine", ew, settings.DEFAULT_ENGINE),
                      settings.ENGINES, ew, "engine"),
    )


def _lag_warning(value: float, where: str) -> float:
    if not 1 <= float(value) <= 7 * 86400:
        raise ConfigError(f"{where}: `binlog_lag_warning` must be between 1 and 604800 "
                          f"seconds (a week), not {value}")
    return float(value)


def _interval(value: float, where: str) -> float:
    if not 0.1 <= float(value) <= 300:
        raise ConfigError(f"{where}: `binlog_interval` must be between 0.1 and 300 seconds, "
                          f"not {value}")
    return float(value)


def _repository_table(table: dict[str, Any],
                      path: Path) -> tuple[dict[str, str], Path | None, int]:
    where = f"{path} [repository]"
    options = {k: nonempty_str(table, k, where) for k in settings.STORAGE_OPTIONS if k in table}
    key_file = (path.parent / Path(nonempty_str(table, "key_file", where)).expanduser()).resolve() \
        if "key_file" in table else None
    level = table.get("compression_level", settings.DEFAULT_COMPRESSION_LEVEL)
    if not 1 <= level <= 19:
        raise ConfigError(f"{where}: `compression_level` must be a zstd level from 1 "
                          "(fastest) to 19 (smallest); 5 is the default")
    return options, key_file, level


def _retention(table: dict[str, Any], where: str) -> dict[str, int]:
    for key, value in table.items():
        if value < 0:
            raise ConfigError(f"{where}: `{key}` must be a whole number ≥ 0")
    return dict(table)


def _hooks(table: dict[str, Any], where: str) -> Hooks:
    return Hooks(
        **{e: commands(table.get(e, []), where, e) for e in settings.HOOK_EVENTS},
        timeout=seconds(table.get("timeout", settings.DEFAULT_HOOK_TIMEOUT), where, "timeout"),
        on_failure=choice(table.get("on_failure", "fail"), settings.HOOK_POLICIES, where,
                          "on_failure"))


def _webhook(table: dict[str, Any], path: Path) -> WebhookConfig | None:
    where = f"{path} [notifications]"
    if "webhook_url" not in table:
        if table:
            raise ConfigError(f"{where}: set `webhook_url` (the other keys configure it)")
        return None
    url = nonempty_str(table, "webhook_url", where)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{where}: `webhook_url` must be an http:// or https:// URL")
    secret = os.environ.get("SNAPKEEP_WEBHOOK_SECRET") or table.get("webhook_secret")
    if not secret and "webhook_secret_file" in table:
        secret_path = (path.parent / Path(nonempty_str(table, "webhook_secret_file", where))
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
                         timeout=seconds(table.get("webhook_timeout", 10), where,
                                          "webhook_timeout"))
