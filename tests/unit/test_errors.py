"""The exception hierarchy is a contract: front ends exit with ``exit_code``, the API
answers ``http_status``. These pins keep a refactoring of errors.py from moving either."""

from __future__ import annotations

import inspect

import pytest

from snapkeep import errors

# name: (direct base, exit code, HTTP status)
HIERARCHY = {
    "SnapkeepError": ("Exception", 1, 500),
    "ConfigError": ("SnapkeepError", 2, 422),
    "UsageError": ("SnapkeepError", 2, 422),
    "BadUpload": ("UsageError", 2, 400),
    "SizeRequired": ("BadUpload", 2, 411),
    "NotFoundError": ("SnapkeepError", 3, 404),
    "PolicyError": ("SnapkeepError", 4, 409),
    "AuthenticationError": ("SnapkeepError", 4, 401),
    "PermissionDenied": ("SnapkeepError", 4, 403),
    "TryLater": ("SnapkeepError", 5, 503),
    "TooManyAttempts": ("TryLater", 5, 429),
    "ServerBusy": ("TryLater", 5, 503),
    "BusyError": ("SnapkeepError", 5, 409),
    "ServiceUnavailable": ("SnapkeepError", 6, 502),
    "InsufficientSpace": ("ServiceUnavailable", 6, 507),
    "ServerSetupError": ("ServiceUnavailable", 6, 409),
    "RepositoryError": ("SnapkeepError", 7, 500),
    "IntegrityError": ("RepositoryError", 7, 500),
    "Cancelled": ("SnapkeepError", 130, 409),
    "Interrupted": ("SnapkeepError", 130, 500),
    "HookError": ("SnapkeepError", 1, 500),
}


def _defined_here() -> dict[str, type]:
    return {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and cls.__module__ == errors.__name__}


def test_the_module_defines_exactly_these_classes():
    assert sorted(_defined_here()) == sorted(HIERARCHY)


@pytest.mark.parametrize("name", sorted(HIERARCHY))
def test_base_exit_code_and_http_status(name):
    base, exit_code, http_status = HIERARCHY[name]
    cls = _defined_here()[name]
    assert cls.__bases__[0].__name__ == base
    assert len(cls.__bases__) == 1
    assert (cls.exit_code, cls.http_status) == (exit_code, http_status)


@pytest.mark.parametrize("name", sorted(set(HIERARCHY) - {"TryLater", "TooManyAttempts",
                                                          "ServerBusy"}))
def test_an_instance_says_its_message_and_keeps_the_class_codes(name):
    cls = _defined_here()[name]
    e = cls("what was wrong; what to do")
    assert str(e) == e.message == "what was wrong; what to do"
    assert (e.exit_code, e.http_status) == HIERARCHY[name][1:]


@pytest.mark.parametrize("name", ["TryLater", "TooManyAttempts", "ServerBusy"])
def test_try_later_carries_a_retry_after_of_at_least_one_second(name):
    cls = _defined_here()[name]
    assert cls("busy", retry_after=30).retry_after == 30
    assert cls("busy", retry_after=0).retry_after == 1
    assert str(cls("busy", retry_after=5)) == "busy"
