"""PostgreSQL for the catalog's tests: a fresh database per test (``postgres_url``), dropped
afterwards, on the server at ``SNAPKEEP_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432``, user postgres, trust) — or, when nothing answers
there, on a private server this session starts in a temp dir on a free port, as the
MariaDB fixture does (so a fresh machine runs the SKIP LOCKED queue tests too). Loaded for
every test by tests/conftest.py (``pytest_plugins``)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.helpers.clock import ManualClock

SERVER = os.environ.get("SNAPKEEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
INSTALL = ("no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin "
           "or on PATH: install Debian's postgresql package (scripts/setup does, with "
           "SNAPKEEP_SETUP_TESTS=1)")


def reachable(server: str) -> bool:
    try:
        psycopg.connect(f"{server}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def bindir() -> Path | None:
    """Where initdb and postgres are: Debian's newest version, else PATH."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                    key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


class PrivatePostgres:
    """A throwaway PostgreSQL server (user postgres, trust) in its own temp dir on a free
    port. PostgreSQL refuses to run as root, so under root it runs as the ``postgres``
    user that Debian's package creates."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="snapkeep-pg-"))  # not under 0700 pytest dirs
        self.data = self.base / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 60) -> PrivatePostgres:
        subprocess.run([self.bin_dir / "initdb", "-D", self.data, "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], user=self._user,
                       check=True, capture_output=True, timeout=timeout)
        return self._run(timeout)

    def _run(self, timeout: float) -> PrivatePostgres:
        log = self.base / "postgres.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.bin_dir / "postgres", "-D", self.data, "-p", str(self.port),
                 "-k", self.base, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                user=self._user, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not reachable(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the private PostgreSQL did not start:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """Kill the server (its data stays: ``restart`` brings it back), as a crash or an
        outage would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = 60) -> PrivatePostgres:
        return self._run(timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL (no database) of a PostgreSQL server: SERVER, or a private one."""
    if reachable(SERVER):
        yield SERVER
        return
    found = bindir()
    if found is None:
        pytest.fail(f"no PostgreSQL server at {SERVER}, and {INSTALL}", pytrace=False)
    server = PrivatePostgres(found).start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def postgres_database(server: str, prefix: str = "snapkeep_t") -> Iterator[str]:
    """``<server>/<new database>``, dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new database on ``postgres_server``, dropped afterwards."""
    with postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> Iterator[str]:
    """A catalog URL for each supported database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def cat(catalog_url: str, clock: ManualClock):
    """A Catalog on ``catalog_url`` (migrated on open) reading the time from ``clock``
    (tests/helpers/clock.py), disposed afterwards."""
    from snapkeep.catalog import Catalog

    c = Catalog.from_url(catalog_url, clock=clock)
    yield c
    c.engine.dispose()
