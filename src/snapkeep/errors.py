"""The one exception hierarchy.

Every predictable failure is a ``SnapkeepError`` whose message says what was wrong
and what to do; front ends print the message (never a traceback) and exit with
``exit_code``. The API maps ``http_status`` in one place.
"""

from __future__ import annotations


class SnapkeepError(Exception):
    exit_code = 1
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(SnapkeepError):
    """snapkeep.toml is missing, unreadable or invalid."""

    exit_code = 2
    http_status = 422


class UsageError(SnapkeepError):
    """The command was called wrongly (bad option value, missing confirmation)."""

    exit_code = 2
    http_status = 422


class BadUpload(UsageError):
    """An uploaded body (an import directory sent as a tar) that cannot be read as one, or
    holds a member that could write outside it: refused before anything is imported."""

    http_status = 400


class SizeRequired(BadUpload):
    """An upload that does not say how big it is (``?size=`` or ``Content-Length``)."""

    http_status = 411


class NotFoundError(SnapkeepError):
    exit_code = 3
    http_status = 404


class PolicyError(SnapkeepError):
    """A rule forbids the operation (inactive environment, expired snapshot, plan)."""

    exit_code = 4
    http_status = 409


class AuthenticationError(SnapkeepError):
    """No credentials, or credentials that are wrong, revoked or expired."""

    exit_code = 4
    http_status = 401


class TryLater(SnapkeepError):
    """Refused for now, not for good: ``retry_after`` seconds from now it may be taken
    (the API and console send it as a ``Retry-After`` header)."""

    exit_code = 5
    http_status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TooManyAttempts(TryLater):
    """Too many failed sign-ins for one account or from one address (throttled)."""

    http_status = 429


class ServerBusy(TryLater):
    """The server is doing as much of this at once as it allows (e.g. password hashing)."""


class PermissionDenied(SnapkeepError):
    exit_code = 4
    http_status = 403


class BusyError(SnapkeepError):
    """Another activity is running on the same environment."""

    exit_code = 5
    http_status = 409


class ServiceUnavailable(SnapkeepError):
    """A service the environment uses (database, mount) cannot be reached or read."""

    exit_code = 6
    http_status = 502


class InsufficientSpace(ServiceUnavailable):
    """The server's disk has no room for what it was asked to take (an upload)."""

    http_status = 507


class RepositoryError(SnapkeepError):
    """The snapshot repository is missing, unreadable or damaged."""

    exit_code = 7
    http_status = 500


class IntegrityError(RepositoryError):
    """Stored data does not match its hash: the repository is damaged."""


class Cancelled(SnapkeepError):
    """Someone cancelled the activity before it reached a point of no return."""

    exit_code = 130
    http_status = 409


class Interrupted(SnapkeepError):
    exit_code = 130


class HookError(SnapkeepError):
    """A hook or post-restore command of the environment failed (exit code, timeout, or it
    could not start) under the ``fail`` policy."""
