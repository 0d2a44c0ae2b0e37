"""Which server the CLI talks to: ``SNAPKEEP_URL``/``SNAPKEEP_TOKEN``, or the login
``snapkeep auth:login`` stored (mode 0600). The token is never printed."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from snapkeep.errors import AuthenticationError, ConfigError, UsageError


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"Credentials(url={self.url!r})"


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash or ``/api``."""
    value = (url or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"server URL {url!r} must start with http:// or https://, as in "
                         "https://snapkeep.example.com")
    if value.endswith("/api"):
        value = value[:-4]
    return value


def credentials_path() -> Path:
    """Where ``auth:login`` keeps the server and token: ``$XDG_CONFIG_HOME/snapkeep/
    credentials.json`` (default ``~/.config``), readable by the user only."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "snapkeep" / "credentials.json"


def stored_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the stored login {path}: {e}; run `snapkeep "
                          "auth:logout` and log in again") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or \
            not isinstance(data.get("token"), str):
        raise ConfigError(f"the stored login {path} is damaged; run `snapkeep auth:logout` "
                          "and log in again")
    return Credentials(data["url"], data["token"])


def store_credentials(creds: Credentials) -> Path:
    """Write the login with mode 0600 (its directory 0700), replacing any other."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": creds.url, "token": creds.token}, f)
    os.replace(tmp, path)
    return path


def forget_credentials() -> Credentials | None:
    """Remove the stored login; the one removed, if any."""
    creds = None
    with contextlib.suppress(ConfigError):  # a damaged file is removed all the same
        creds = stored_credentials()
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return None
    return creds or Credentials("")


def remote_settings() -> Credentials | None:
    """The server to talk to: SNAPKEEP_URL + SNAPKEEP_TOKEN, else the stored login (its
    token also serves SNAPKEEP_URL when that names the same server); None: local."""
    url, token = os.environ.get("SNAPKEEP_URL", "").strip(), \
        os.environ.get("SNAPKEEP_TOKEN", "").strip()
    stored = stored_credentials()
    if not url:
        if stored is None:
            if token:
                raise UsageError("SNAPKEEP_TOKEN is set but SNAPKEEP_URL is not: set it to "
                                 "the server's address, e.g. https://snapkeep.example.com")
            return None
        return Credentials(normalize_url(stored.url), token or stored.token)
    url = normalize_url(url)
    if not token and stored is not None and normalize_url(stored.url) == url:
        token = stored.token
    if not token:
        raise AuthenticationError(f"SNAPKEEP_URL is {url} but no API token is given: set "
                                  "SNAPKEEP_TOKEN, or run `snapkeep auth:login --url "
                                  f"{url} --token-stdin`")
    return Credentials(url, token)
