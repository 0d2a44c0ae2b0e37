"""A private, throwaway MariaDB server for tests, demos and imports.

``PrivateMariaDB(basedir)`` initialises a data directory under ``basedir`` with the
machine's ``mariadb-install-db``, then runs ``mariadbd`` on a free TCP port of
127.0.0.1 and its own unix socket (``networking=False``: the socket only, which the
mode of its directory keeps to this OS user — what an import loads a dump into,
``engines/mysql/import_server.py``). Server defaults are kept on purpose (latin1 server
charset, the stock sql_mode) because they are hazards a restore must survive.

Contract: ``start()`` returns once the server accepts connections or raises
``ServiceUnavailable`` with the tail of the error log; ``stop()`` shuts down cleanly
and is idempotent; ``kill()`` sends SIGKILL (for crash tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pymysql

from snapkeep.engines.mysql.connect import pymysql_connect
from snapkeep.errors import ServiceUnavailable

MARIADBD_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/bin/mariadbd")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


INSTALL_DB_CANDIDATES = ("mariadb-install-db", "mysql_install_db")


def find_mariadbd() -> str | None:
    """The path of this machine's ``mariadbd`` (or ``mysqld``), None without one."""
    return next((p for p in MARIADBD_CANDIDATES if os.access(p, os.X_OK)), None)


def find_install_db() -> str | None:
    """The path of ``mariadb-install-db`` (or ``mysql_install_db``), None without one."""
    return next(filter(None, map(shutil.which, INSTALL_DB_CANDIDATES)), None)


def _find(names: tuple[str, ...], what: str) -> str:
    for name in names:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.access(path, os.X_OK):
            return path
    raise ServiceUnavailable(f"{what} not found (looked for {', '.join(names)}); "
                             f"install the MariaDB server package")


class PrivateMariaDB:
    """One private mariadbd process with its datadir, socket and log under ``basedir``."""

    user = "root"
    host = "127.0.0.1"

    def __init__(self, basedir: Path | str, options: tuple[str, ...] = (), *,
                 socket: str | None = None, networking: bool = True) -> None:
        self.basedir = Path(basedir)
        self.options = options  # more mariadbd options (``--name=value``)
        self.datadir = self.basedir / "data"
        # a unix socket's path is limited to 107 bytes: a deep basedir needs one elsewhere
        self.socket = socket or str(self.basedir / "mysqld.sock")
        self.networking = networking
        self.pid_file = self.basedir / "mysqld.pid"
        self.error_log = self.basedir / "error.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _install(self) -> None:
        install = _find(INSTALL_DB_CANDIDATES, "mariadb-install-db")
        self.datadir.mkdir(parents=True, exist_ok=True)
        if (self.datadir / "mysql").is_dir():
            return
        # A private tmpdir: a starting mariadbd deletes every "#sql*" file in its tmpdir, so
        # bootstraps sharing /tmp delete each other's temporary tables (about one install
        # in six failed with "Unknown table 'mysql.tmp_user_sys'" when four ran at once).
        cmd = [install, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
               "--auth-root-authentication-method=normal", "--skip-test-db",
               "--skip-name-resolve", f"--tmpdir={self.basedir}"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
            raise ServiceUnavailable(f"mariadb-install-db failed in {self.datadir}:\n{tail}")

    def start(self, timeout: float = 60) -> PrivateMariaDB:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.basedir.mkdir(parents=True, exist_ok=True)
        self._install()
        mariadbd = _find(MARIADBD_CANDIDATES, "mariadbd")
        listen = ["--skip-networking"]
        if self.networking:
            self.port = self.port or _free_port()  # a restart keeps its port
            listen = [f"--port={self.port}", "--bind-address=127.0.0.1"]
        cmd = [
            mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
            *listen, "--user=root",
            f"--log-error={self.error_log}", f"--pid-file={self.pid_file}",
            "--local-infile=1", "--skip-log-bin", "--event-scheduler=OFF",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
            "--skip-name-resolve", f"--tmpdir={self.basedir}", *self.options,
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceUnavailable(
                    f"mariadbd exited with code {self._proc.returncode} during startup:\n"
                    f"{self._log_tail()}")
            try:
                self.connect(connect_timeout=2).close()
                return self
            except pymysql.MySQLError as e:
                last = e
                time.sleep(0.1)
        self.kill()
        raise ServiceUnavailable(f"mariadbd did not accept connections within {timeout:.0f} s "
                                 f"({last}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error log)"

    def stop(self, timeout: float = 60) -> None:
        """Clean shutdown (SHUTDOWN statement, then SIGTERM, then SIGKILL as last resort)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        try:
            conn = self.connect(connect_timeout=2)
            try:
                with conn.cursor() as cur:
                    cur.execute("SHUTDOWN")
            finally:
                conn.close()
        except pymysql.MySQLError:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._proc = None

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def __enter__(self) -> PrivateMariaDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------

    def url(self, database: str = "") -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str | None = None, **kw: Any) -> pymysql.connections.Connection:
        opts: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                "password": "", "charset": "utf8mb4", "autocommit": True,
                                "connect_timeout": 10}
        if not self.networking:
            opts["unix_socket"] = self.socket
        opts.update(kw)
        if database is not None:
            opts["database"] = database
        return pymysql_connect(**opts)

    def client_args(self) -> list[str]:
        """argv prefix for the ``mariadb`` command-line client (over the unix socket)."""
        client = _find(("mariadb", "mysql"), "mariadb client")
        return [client, "--no-defaults", f"--socket={self.socket}", f"--user={self.user}"]
