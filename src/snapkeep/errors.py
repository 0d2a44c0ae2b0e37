"""The one exception hierarchy.

Every predictable failure is a ``SnapkeepError`` whose message says what was wrong
and what to do; front ends print the message (never a traceback) and exit with
``exit_code``. The API maps ``http_status`` in one place.

A subclass states its codes in its class line (``class X(Base, exit_code=2,
http_status=422)``); what it does not state it inherits from its base.
"""

from __future__ import annotations

from typing import ClassVar


class SnapkeepError(Exception):
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init_subclass__(cls, *, exit_code: int | None = None,
                          http_status: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code
        if http_status is not None:
            cls.http_status = http_status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(SnapkeepError, exit_code=2, http_status=422):
    """snapkeep.toml is missing, unreadable or invalid."""


class UsageError(SnapkeepError, exit_code=2, http_status=422):
    """The command was called wrongly (bad option value, missing confirmation)."""


class BadUpload(UsageError, http_status=400):
    """An uploaded body (an import directory sent as a tar) that cannot be read as one, or
    holds a member that could write outside it: refused before anything is imported."""


class SizeRequired(BadUpload, http_status=411):
    """An upload that does not say how big it is (``?size=`` or ``Content-Length``)."""


class NotFoundError(SnapkeepError, exit_code=3, http_status=404):
    """What was named (environment, snapshot, user, key) does not exist."""


class PolicyError(SnapkeepError, exit_code=4, http_status=409):
    """A rule forbids the operation (inactive environment, expired snapshot, plan)."""


class AuthenticationError(SnapkeepError, exit_code=4, http_status=401):
    """No credentials, or credentials that are wrong, revoked or expired."""


class TryLater(SnapkeepError, exit_code=5, http_status=503):
    """Refused for now, not for good: ``retry_after`` seconds from now it may be taken
    (the API and console send it as a ``Retry-After`` header)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TooManyAttempts(TryLater, http_status=429):
    """Too many failed sign-ins for one account or from one address (throttled)."""


class ServerBusy(TryLater):
    """The server is doing as much of this at once as it allows (e.g. password hashing)."""


class PermissionDenied(SnapkeepError, exit_code=4, http_status=403):
    """The caller may not do this: its role does not allow it, or the request is not trusted
    (e.g. a console form that did not come from the console)."""


class BusyError(SnapkeepError, exit_code=5, http_status=409):
    """Another activity is running on the same environment."""


class ServiceUnavailable(SnapkeepError, exit_code=6, http_status=502):
    """A service the environment uses (database, mount) cannot be reached or read."""


class InsufficientSpace(ServiceUnavailable, http_status=507):
    """The server's disk has no room for what it was asked to take (an upload)."""


class ServerSetupError(ServiceUnavailable, http_status=409):
    """The database server is not set up for what was asked (point-in-time recovery: its
    binary log settings or the user's grants); each line names what is wrong and its fix."""


class RepositoryError(SnapkeepError, exit_code=7, http_status=500):
    """The snapshot repository is missing, unreadable or damaged."""


class IntegrityError(RepositoryError):
    """Stored data does not match its hash: the repository is damaged."""


class Cancelled(SnapkeepError, exit_code=130, http_status=409):
    """Someone cancelled the activity before it reached a point of no return."""


class Interrupted(SnapkeepError, exit_code=130):
    """The activity was stopped from outside (a signal, or its worker stopping) before it
    ended."""


class HookError(SnapkeepError):
    """A hook or post-restore command of the environment failed (exit code, timeout, or it
    could not start) under the ``fail`` policy."""
