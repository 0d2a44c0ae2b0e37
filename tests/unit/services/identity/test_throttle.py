"""The sign-in throttle's keys, limits and settings (services/identity/throttle.py)."""

from __future__ import annotations

import pytest

from snapkeep.errors import ConfigError, TooManyAttempts
from snapkeep.services.identity.throttle import SignInThrottle, address_key


@pytest.mark.parametrize(("host", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # same host, another address
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "unknown"),
    ("testclient", "testclient"),
])
def test_an_ipv6_client_is_one_address_per_64(host, key):
    assert address_key(host) == key


def test_an_attempt_counts_until_it_succeeds_and_emails_are_keyed_case_blind():
    now = [0.0]
    t = SignInThrottle(account_limit=2, address_limit=100, window=60, clock=lambda: now[0])
    t.begin("Ann@Example.com ", "198.51.100.1")
    held = t.begin("ann@example.com", "198.51.100.1")  # in flight, not yet checked
    with pytest.raises(TooManyAttempts) as e:
        t.begin("ANN@example.com", "198.51.100.2")
    assert e.value.retry_after == 60 and e.value.http_status == 429
    t.succeeded(held)
    t.begin("ann@example.com", "198.51.100.1")  # the account starts afresh


def test_a_limit_that_is_no_number_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SNAPKEEP_SIGNIN_ACCOUNT_LIMIT", "five")
    with pytest.raises(ConfigError, match="SNAPKEEP_SIGNIN_ACCOUNT_LIMIT='five'"):
        SignInThrottle.from_env()
