"""``snapkeep init``: a starting snapkeep.toml, the state directory and the repository."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from snapkeep.config import (
    CONFIG_NAME,
    DEFAULT_KEY_FILE,
    STATE_DIR,
    DatabaseURL,
    load_config,
    redact_url,
)
from snapkeep.engines.mysql import MySQLTarget, check_connection
from snapkeep.errors import ConfigError
from snapkeep.services import gitinfo
from snapkeep.services.context import Context

DEFAULT_MOUNTS = ("var", "pub/media", "app/etc")


def mounts_from_magento_app_yaml(text: str) -> list[str]:
    """The keys of the top-level ``mounts:`` mapping of a .magento.app.yaml.

    Both shapes are read: ``"var": {source: local, ...}`` and ``"/var": "shared:files/var"``.
    A deliberately small reader: only the mapping's keys are needed.
    """
    mounts: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^mounts\s*:\s*(#.*)?$", line):
            child_indent = None
            for child in lines[i + 1:]:
                if not child.strip() or child.lstrip().startswith("#"):
                    continue
                indent = len(child) - len(child.lstrip())
                if indent == 0:
                    break
                if child_indent is None:
                    child_indent = indent
                if indent != child_indent:
                    continue
                m = re.match(r"""\s*(?:"([^"]+)"|'([^']+)'|([^:#]+?))\s*:""", child)
                if m:
                    key = next(g for g in m.groups() if g is not None).strip().strip("/")
                    if key and key not in mounts:
                        mounts.append(key)
            break
    return mounts


def render_config(project_id: str, plan: str, env_name: str, env_type: str, root: str,
                  mounts: list[str], database: str | None, key_file: bool = True) -> str:
    key_line = (f'key_file = "{DEFAULT_KEY_FILE}"   # the master key: keep a copy elsewhere '
                "(`snapkeep key:export`)" if key_file else
                "# the master key is protected by a passphrase (SNAPKEEP_PASSPHRASE)")
    quoted = ", ".join(f'"{m}"' for m in mounts)
    db_line = f'database = "{database}"' if database else \
        '# database = "mysql://root@127.0.0.1:3306/shop"'
    return f"""# snapkeep project configuration. Docs: README.md, "Configuration".
[project]
id = "{project_id}"
plan = "{plan}"  # starter | pro
# repository = "{STATE_DIR}/repository"   (the default; or s3://bucket/prefix)
# restore_window_days = 7

[repository]
{key_line}
# endpoint = "http://127.0.0.1:8333"   (S3-compatible storage; credentials from the usual
# region = "us-east-1"                  AWS_* variables or access_key_id/secret_access_key)
# compression_level = 3                 (zstd level of database rows: 1 fastest … 19 smallest)

[environments.{env_name}]
type = "{env_type}"  # production | staging | development
root = "{root}"  # the app root; mounts are relative to it
mounts = [{quoted}]
{db_line}
# The password may be in the URL or in SNAPKEEP_DB_PASSWORD.
# pause_command = "bin/magento maintenance:enable"   (default: var/.maintenance.flag)
# resume_command = "bin/magento maintenance:disable"
"""


def init_project(directory: Path, *, project_id: str, plan: str, env_name: str, env_type: str,
                 root: str, database: str | None, mounts: list[str] | None,
                 passphrase: bool = False,
                 ask_passphrase: Callable[[], str] | None = None,
                 changes: dict[str, str | list[str]] | None = None) -> tuple[Path, bool]:
    """Write snapkeep.toml (unless one exists) and create the repository.

    ``database`` is parsed and connected to first. With an existing file nothing in it is
    changed: ``changes`` (option name → value given on the command line) that differ from
    it are refused, naming them.

    Returns the config path and whether the file was written now. With ``passphrase``,
    the master key is protected by SNAPKEEP_PASSPHRASE instead of a key file.
    """
    path = directory / CONFIG_NAME
    if database is not None:
        # Validate and connect before anything is written: a bad URL leaves no file behind.
        db = DatabaseURL.parse(database, where="--database")
        check_connection(MySQLTarget(host=db.host, port=db.port, user=db.user,
                                     password=db.password, database=db.database,
                                     unix_socket=db.unix_socket))
    if path.exists():
        refuse_changes(path, env_name, changes or {})
    written = False
    if not path.exists():
        if mounts is None:
            app_yaml = (directory / root if not Path(root).is_absolute() else Path(root)) \
                / ".magento.app.yaml"
            mounts = mounts_from_magento_app_yaml(app_yaml.read_text()) \
                if app_yaml.is_file() else list(DEFAULT_MOUNTS)
        text = render_config(project_id, plan, env_name, env_type, root, mounts, database,
                             key_file=not passphrase)
        # A password in the URL makes the file a secret: owner-only from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600 if url_has_password(database) else 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        written = True
    try:
        ctx = Context(load_config(str(path)), ask_passphrase=ask_passphrase)
    except ConfigError as e:
        raise ConfigError(f"{e} (fix {path} and run `snapkeep init` again)") from None
    ctx.init_repository()
    ctx.catalog  # noqa: B018 - creates the catalog now
    return path, written


ENVIRONMENT_OPTIONS = ("--type", "--root", "--mount", "--database")


def refuse_changes(path: Path, env_name: str, changes: dict[str, str | list[str]]) -> None:
    """Refuse options given for an existing snapkeep.toml whose values differ from it:
    ``init`` never changes the file, and silently ignoring them would mislead."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e} (fix it, or remove it and run `snapkeep init` "
                          "again)") from None
    project = data.get("project", {})
    envs = data.get("environments", {})
    env = envs.get(env_name)
    if env is None and any(opt in changes for opt in ENVIRONMENT_OPTIONS):
        given = ", ".join(opt for opt in ENVIRONMENT_OPTIONS if opt in changes)
        raise ConfigError(
            f"{path} already exists and has no environment {env_name!r} (it has "
            f"{', '.join(envs) or 'none'}), and `snapkeep init` does not add one: {given} "
            f"cannot apply. Name one with -e, or add [environments.{env_name}] to {path}.")
    env = env or {}
    current = {"--project-id": project.get("id"), "--plan": project.get("plan", "starter"),
               "--type": env.get("type", "development"), "--root": env.get("root"),
               "--mount": env.get("mounts", []), "--database": env.get("database")}
    differ = [f"{opt} {_shown(value)} (the file has {_shown(current[opt])})"
              for opt, value in changes.items()
              if _normal(path.parent, opt, value) != _normal(path.parent, opt, current[opt])]
    if differ:
        raise ConfigError(f"{path} already exists and `snapkeep init` does not change it: "
                          f"{'; '.join(differ)}. Edit {path} instead "
                          "(then run `snapkeep init` again).")


def _normal(directory: Path, option: str, value: object) -> object:
    """A value as compared: roots as the directory they name, mounts as a set of paths."""
    if option == "--root" and isinstance(value, str):
        return (directory / Path(value).expanduser()).resolve()
    if option == "--mount" and isinstance(value, list | tuple):
        return sorted({str(PurePosixPath(str(m).strip("/"))) for m in value})
    return value


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return repr(", ".join(map(str, value))) if value else "none"
    return repr(redact_url(value)) if isinstance(value, str) else repr(value)


def url_has_password(url: str | None) -> bool:
    """Whether a database URL carries a password (``scheme://user:password@host``)."""
    return bool(url) and urlsplit(url).password is not None


def ignore_in_git(directory: Path, config_has_password: bool) -> Path | None:
    """Add .snapkeep/ (and snapkeep.toml when it holds a password) to the work tree's
    .gitignore, so `git add -A` never commits the master key or the backups.

    Returns the .gitignore changed, or None outside a git work tree or when nothing was missing.
    """
    top = gitinfo.work_tree_root(directory)
    if top is None:
        return None
    wanted = [f"/{(directory / STATE_DIR).resolve().relative_to(top).as_posix()}/"]
    if config_has_password:
        wanted.append(f"/{(directory / CONFIG_NAME).resolve().relative_to(top).as_posix()}")
    ignore = top / ".gitignore"
    present = ignore.read_text().splitlines() if ignore.exists() else []
    missing = [w for w in wanted if w not in present]
    if not missing:
        return None
    prefix = "" if not present or ignore.read_text().endswith("\n") else "\n"
    with ignore.open("a") as f:
        f.write(prefix + "".join(f"{w}\n" for w in missing))
    return ignore
