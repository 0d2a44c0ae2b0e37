"""Byte backends. Knows nothing about snapshots: keys in, bytes out.

``open_backend(location, options)`` turns the ``repository`` setting of snapkeep.toml
into a backend:

- a path (``/srv/snapkeep``, ``./repo``) → ``LocalBackend``;
- ``s3://bucket`` or ``s3://bucket/prefix`` → ``S3Backend`` wrapped in ``RetryingBackend``.

``options`` (the ``[repository]`` table) apply to S3 only: ``endpoint`` (e.g.
``http://127.0.0.1:8333``), ``region``, ``access_key_id``, ``secret_access_key``,
``session_token``. What is not given comes from boto3's usual sources:
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` / ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ~/.aws files.
Opening a backend does not touch the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from snapkeep.errors import ConfigError, RepositoryError
from snapkeep.storage.base import (
    Backend,
    TransientStorageError,
    check_key,
    ensure,
    get_range,
    get_range_into,
)
from snapkeep.storage.local import LocalBackend
from snapkeep.storage.retry import RetryingBackend

__all__ = [
    "S3_OPTIONS",
    "Backend",
    "LocalBackend",
    "RetryingBackend",
    "TransientStorageError",
    "ensure",
    "get_range",
    "get_range_into",
    "open_backend",
]

S3_OPTIONS = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")


def _check_options(options: Mapping[str, str] | None) -> dict[str, str]:
    given = dict(options or {})
    unknown = sorted(set(given) - set(S3_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown repository option {', '.join(unknown)} in snapkeep.toml: "
            f"the known options are {', '.join(S3_OPTIONS)}")
    for name, value in given.items():
        if value is not None and not isinstance(value, str):
            # Never echo the value: it may be a secret.
            raise ConfigError(f"repository option {name} must be a string")
    return {k: v for k, v in given.items() if v}


def _parse_s3(location: str) -> tuple[str, str]:
    rest = location[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ConfigError(
            f"repository {location!r}: {bucket!r} is not a valid bucket name "
            "(3 to 63 letters, digits, '.', '-' or '_'); write s3://bucket/prefix")
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except RepositoryError as e:
            raise ConfigError(f"repository {location!r}: invalid prefix: {e}") from None
    return bucket, prefix


def open_backend(location: str, options: Mapping[str, str] | None = None) -> Backend:
    """A backend for a repository location (see the module docstring)."""
    opts = _check_options(options)
    match = _SCHEME.match(location)
    if match:
        scheme = match.group(1).lower()
        if scheme != "s3":
            raise ConfigError(
                f"repository {location!r}: unsupported scheme {scheme}://; use a local "
                "directory path or s3://bucket/prefix")
        bucket, prefix = _parse_s3(location)
        endpoint = opts.get("endpoint")
        if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
            raise ConfigError(
                f"repository option endpoint {endpoint!r} is not an http:// or https:// URL")
        if bool(opts.get("access_key_id")) != bool(opts.get("secret_access_key")):
            raise ConfigError(
                "repository options access_key_id and secret_access_key go together: "
                "give both, or neither (to use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
        from snapkeep.storage.s3 import S3Backend  # boto3 is imported only when needed

        return RetryingBackend(S3Backend(
            bucket, prefix, endpoint=endpoint, region=opts.get("region"),
            access_key_id=opts.get("access_key_id"),
            secret_access_key=opts.get("secret_access_key"),
            session_token=opts.get("session_token")))
    if opts:
        raise ConfigError(
            f"repository option {', '.join(sorted(opts))} applies only to s3:// repositories, "
            f"not to the directory {location}")
    return LocalBackend(location)
