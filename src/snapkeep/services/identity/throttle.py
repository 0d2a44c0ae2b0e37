"""Sign-in throttling and bounded password hashing (docs/server.md, "Sign-in limits").

``SignInThrottle`` counts failed sign-ins in a sliding window per account (the email as
typed, whether or not an account has it: every name takes the same path, so the throttle
tells nothing about which exist) and per client address (an IPv6 address by its /64, as
one host usually holds a whole /64). An attempt counts as a failure *before* its password
is checked, and is forgiven when it succeeds, so parallel attempts cannot slip past the
limit; a success also clears the account's failures. A key with ``limit`` failures in the
window is refused (``TooManyAttempts``: 429, ``Retry-After`` until its oldest failure
leaves the window) without hashing anything.

``HashGate`` bounds how many argon2 hashes run at once (each takes 64 MiB of memory): the
others wait a little, then get ``ServerBusy`` (503 with ``Retry-After``).
"""

from __future__ import annotations

import ipaddress
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from snapkeep.errors import ConfigError, ServerBusy, TooManyAttempts

ACCOUNT_LIMIT_ENV = "SNAPKEEP_SIGNIN_ACCOUNT_LIMIT"  # failures per account in the window
ADDRESS_LIMIT_ENV = "SNAPKEEP_SIGNIN_ADDRESS_LIMIT"  # failures per client address
WINDOW_ENV = "SNAPKEEP_SIGNIN_WINDOW"  # seconds
HASH_SLOTS_ENV = "SNAPKEEP_HASH_CONCURRENCY"  # argon2 hashes at once
HASH_WAIT_ENV = "SNAPKEEP_HASH_WAIT"  # seconds a hash waits for a slot before 503

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW = 900.0
HASH_SLOTS = 2
HASH_WAIT = 5.0
MAX_KEYS = 10_000  # keys a window remembers: the least recently failed are forgotten first

Clock = Callable[[], float]


def _env_number(name: str, default: float, *, integer: bool) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if value <= 0:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"{name}={raw!r} is not {kind} above 0; fix it or unset it "
                          f"(default {default:g})")
    return value


def _minutes(seconds: float) -> str:
    m = max(1, math.ceil(seconds / 60))
    return f"{m} minute{'s' if m != 1 else ''}"


def address_key(host: str | None) -> str:
    """The key of a client address: an IPv6 address by its /64, anything else as is."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureWindow:
    """The last ``limit`` failure times of each key within ``window`` seconds. Not locked:
    ``SignInThrottle`` holds one lock over both of its windows."""

    def __init__(self, limit: int, window: float, clock: Clock,
                 max_keys: int = MAX_KEYS) -> None:
        self.limit, self.window, self._clock, self._max_keys = limit, window, clock, max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        times = self._failures.get(key)
        if times is None:
            return 0.0
        now = self._clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def record(self, key: str) -> float:
        """Count a failure of ``key`` now; its time (to ``forgive`` it)."""
        at = self._clock()
        times = self._failures.setdefault(key, deque(maxlen=self.limit))
        times.append(at)
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
        return at

    def forgive(self, key: str, at: float) -> None:
        times = self._failures.get(key)
        if times is not None and at in times:
            times.remove(at)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True)
class Attempt:
    """A sign-in being checked: counted as a failure of both keys until it succeeds."""

    account: str
    address: str
    at: tuple[float, float]  # its time in the account's window and in the address's


class SignInThrottle:
    """Failed sign-ins per account and per client address (module docstring)."""

    def __init__(self, account_limit: int = ACCOUNT_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window: float = WINDOW, clock: Clock = time.monotonic) -> None:
        self.accounts = FailureWindow(account_limit, window, clock)
        self.addresses = FailureWindow(address_limit, window, clock)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> SignInThrottle:
        """Limits from SNAPKEEP_SIGNIN_ACCOUNT_LIMIT, _ADDRESS_LIMIT and _WINDOW."""
        return cls(int(_env_number(ACCOUNT_LIMIT_ENV, ACCOUNT_LIMIT, integer=True)),
                   int(_env_number(ADDRESS_LIMIT_ENV, ADDRESS_LIMIT, integer=True)),
                   _env_number(WINDOW_ENV, WINDOW, integer=False))

    def begin(self, email: str, host: str | None) -> Attempt:
        """Count a sign-in as failed until ``succeeded``; TooManyAttempts (nothing
        counted) when the account or the address has had too many failures."""
        account, address = email.strip().lower(), address_key(host)
        with self._lock:
            by_account, by_address = self.accounts.wait(account), self.addresses.wait(address)
            if by_account or by_address:
                raise self._refusal(by_account, by_address)
            return Attempt(account, address, (self.accounts.record(account),
                                              self.addresses.record(address)))

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh, the address is not blamed."""
        with self._lock:
            self.accounts.clear(attempt.account)
            self.addresses.forgive(attempt.address, attempt.at[1])

    def forgive(self, attempt: Attempt) -> None:
        """The attempt was never checked (the server was busy): it counts for nothing."""
        with self._lock:
            self.accounts.forgive(attempt.account, attempt.at[0])
            self.addresses.forgive(attempt.address, attempt.at[1])

    def _refusal(self, by_account: float, by_address: float) -> TooManyAttempts:
        window = _minutes(self.accounts.window)
        if by_account >= by_address:
            what = (f"this account ({self.accounts.limit} failed sign-ins in {window}); "
                    "if the password is lost, ask a project admin to set a new one "
                    "(`snapkeep user:password EMAIL --password-stdin`)")
        else:
            what = (f"this address ({self.addresses.limit} failed sign-ins in {window}, "
                    "whatever the account)")
        wait = max(by_account, by_address)
        return TooManyAttempts(f"too many failed sign-ins for {what}; try again in "
                               f"{_minutes(wait)}", math.ceil(wait))


class HashGate:
    """At most ``slots`` password hashes at once; a hash waits up to ``wait`` seconds for
    a slot, then ServerBusy. ``active`` and ``peak`` say how many run now and at most."""

    def __init__(self, slots: int = HASH_SLOTS, wait: float = HASH_WAIT) -> None:
        self.slots, self.wait = slots, wait
        self._free = threading.BoundedSemaphore(slots)
        self._count = threading.Lock()
        self.active = 0
        self.peak = 0

    @classmethod
    def from_env(cls) -> HashGate:
        """Sized by SNAPKEEP_HASH_CONCURRENCY and SNAPKEEP_HASH_WAIT."""
        return cls(int(_env_number(HASH_SLOTS_ENV, HASH_SLOTS, integer=True)),
                   _env_number(HASH_WAIT_ENV, HASH_WAIT, integer=False))

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait):
            raise ServerBusy(f"the server is checking {self.slots} other passwords right "
                             "now; try again in a few seconds", math.ceil(self.wait))
        with self._count:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            yield
        finally:
            with self._count:
                self.active -= 1
            self._free.release()
