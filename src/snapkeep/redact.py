"""The credentials snapkeep knows, in one place: which environment variables carry them
(kept from hooks) and which values must never reach a log line (masked by the activity
recorder).

A hook that prints its environment, or a restored application that echoes its database
password, would otherwise put the secret in the activity log, which a Viewer can read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from snapkeep.config import ProjectConfig

# Environment variables holding a credential (or a URL that may embed one). Hooks never
# inherit them; their values are masked in logs.
CREDENTIAL_VARIABLES = (
    "SNAPKEEP_PASSPHRASE", "SNAPKEEP_PASSPHRASE_FILE", "SNAPKEEP_NEW_PASSPHRASE",
    "SNAPKEEP_DB_PASSWORD", "SNAPKEEP_WEBHOOK_SECRET", "SNAPKEEP_TOKEN", "SNAPKEEP_CATALOG",
    "MYSQL_PWD", "PGPASSWORD", "PGPASSFILE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
)
# variables naming a file, not holding a secret: withheld but their (path) value not masked
_PATH_VARIABLES = ("SNAPKEEP_PASSPHRASE_FILE", "PGPASSFILE", "AWS_SHARED_CREDENTIALS_FILE",
                   "AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
_SECRET_STORAGE_OPTIONS = ("access_key_id", "secret_access_key", "session_token")
MIN_SECRET = 4  # shorter values are not masked: masking "ab" everywhere garbles the log
MASK = "[redacted]"


def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every ``CREDENTIAL_VARIABLES`` entry."""
    return {k: v for k, v in environ.items() if k not in CREDENTIAL_VARIABLES}


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def known_secrets(config: ProjectConfig | None,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value snapkeep holds: database passwords, the S3 keys, the webhook
    secret, the catalog's password, the passphrase and tokens from the environment."""
    environ = os.environ if environ is None else environ
    found: list[str | None] = []
    for name in CREDENTIAL_VARIABLES:
        if name not in _PATH_VARIABLES:
            found.append(environ.get(name))
    found.append(_url_password(environ.get("SNAPKEEP_CATALOG")))
    passphrase_file = environ.get("SNAPKEEP_PASSPHRASE_FILE")
    if passphrase_file:
        try:
            with open(passphrase_file) as f:
                found.append(f.readline().rstrip("\n"))
        except OSError:
            pass
    if config is not None:
        found += [env.database.password for env in config.environments.values()
                  if env.database is not None]
        found += [config.repository_options.get(k) for k in _SECRET_STORAGE_OPTIONS]
        found.append(_url_password(config.catalog_url))
        if config.webhook is not None:
            found.append(config.webhook.secret)
    return sorted({s for s in found if s and len(s) >= MIN_SECRET}, key=len, reverse=True)


class Redactor:
    """Masks known secret values in text (longest first, so a secret containing
    another is masked whole)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET},
                              key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text
