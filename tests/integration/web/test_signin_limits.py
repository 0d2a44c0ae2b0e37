"""Signing in to the console under attack (#13 item 3): failed sign-ins are throttled per
account and per client address (429 with Retry-After, known and unknown emails alike), and
no more argon2 hashes run at once than the server allows (each takes 64 MiB)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from snapkeep.services.identity import auth
from snapkeep.services.identity.throttle import HashGate, SignInThrottle
from snapkeep.web import create_router
from snapkeep.web.signin import SIGNIN_FAILED
from tests.helpers.console import ADMIN, VIEWER, ConsoleProject, console_app, make_project
from tests.helpers.server import wait_for


@pytest.fixture
def project(tmp_path: Path) -> ConsoleProject:
    return make_project(tmp_path)


class Browser:
    """A console client at one client address, with its sign-in form's CSRF token."""

    def __init__(self, app: FastAPI, address: str = "203.0.113.7") -> None:
        self.c = TestClient(app, follow_redirects=False, client=(address, 40000))
        page = self.c.get("/signin").text
        self.token = page.split('name="csrf_token" value="')[1].split('"')[0]

    def sign_in(self, email: str, password: str) -> httpx.Response:
        return self.c.post("/signin", data={"email": email, "password": password,
                                            "csrf_token": self.token})


def throttled(res: httpx.Response) -> str:
    assert res.status_code == 429, res.text
    assert int(res.headers["Retry-After"]) > 0
    assert "snapkeep_session" not in res.headers.get("set-cookie", "")
    return res.text


def test_five_failures_lock_the_account_known_or_unknown_with_retry_after(project):
    b = Browser(console_app(project))
    for email in (ADMIN[0], "nobody@example.com"):
        for _ in range(5):
            assert b.sign_in(email, "not the password").status_code == 401
        page = throttled(b.sign_in(email, "not the password"))
        assert "Too many failed sign-ins for this account" in page
        assert "try again in 15 minutes" in page
    # even the right password waits: the account is locked, not the guess
    throttled(b.sign_in(ADMIN[0], ADMIN[2]))
    # another account from the same address is not locked by these ten failures
    assert b.sign_in(VIEWER[0], VIEWER[2]).status_code == 303


def test_a_success_clears_the_accounts_failures(project):
    app = console_app(project)
    for _ in range(2):  # a new browser each time: a signed-in one has no sign-in form
        b = Browser(app)
        for _ in range(4):
            assert SIGNIN_FAILED in b.sign_in(ADMIN[0], "not the password").text
        assert b.sign_in(ADMIN[0], ADMIN[2]).status_code == 303


def test_twenty_failures_from_one_address_lock_it_for_every_account(project):
    app = console_app(project)
    b = Browser(app)
    for i in range(20):  # four tries at each of five names: no account reaches its limit
        assert b.sign_in(f"guess{i % 5}@example.com", "not the password").status_code == 401
    assert "for this address" in throttled(b.sign_in(ADMIN[0], ADMIN[2]))
    assert Browser(app, "198.51.100.9").sign_in(ADMIN[0], ADMIN[2]).status_code == 303


def test_the_lock_lifts_when_the_failures_leave_the_window(project):
    now = [1000.0]
    base = project.context()
    app = FastAPI()
    app.include_router(create_router(lambda: base,
                                     SignInThrottle(window=900, clock=lambda: now[0])))
    b = Browser(app)
    for _ in range(5):
        b.sign_in(ADMIN[0], "not the password")
        now[0] += 60
    res = b.sign_in(ADMIN[0], ADMIN[2])
    assert res.headers["Retry-After"] == str(900 - 5 * 60)  # until the first failure is 15 min old
    now[0] += 900 - 5 * 60
    assert b.sign_in(ADMIN[0], ADMIN[2]).status_code == 303


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting the checks running at once; each waits for
    ``release`` so that all the parallel attempts are in flight together."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.active = self.peak = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            self.release.wait(60)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.active -= 1


def test_parallel_sign_ins_hash_at_most_two_passwords_at_once(project, monkeypatch):
    auth._dummy_hash()  # made once, before counting
    hasher = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", hasher)
    monkeypatch.setattr(auth, "_gate", HashGate(2, wait=0.5), raising=False)
    b = Browser(console_app(project))
    n = 12
    done: list[httpx.Response] = []

    def attempt(i: int) -> httpx.Response:
        res = b.sign_in(f"parallel{i}@example.com", "not the password")
        done.append(res)
        return res

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(attempt, i) for i in range(n)]
        try:
            # every attempt is either hashing (held) or has been answered
            wait_for(lambda: hasher.active + len(done) >= n, "all attempts to be in flight",
                     timeout=60)
            assert hasher.peak <= 2
        finally:
            hasher.release.set()
        answers = [f.result() for f in futures]
    assert hasher.peak == 2
    busy = [r for r in answers if r.status_code == 503]
    assert len(busy) == n - 2
    assert all(int(r.headers["Retry-After"]) > 0 and "try again in a few seconds" in r.text
               for r in busy)
    assert sorted(r.status_code for r in answers if r not in busy) == [401, 401]
