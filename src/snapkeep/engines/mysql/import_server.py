"""The private, throwaway MariaDB server an import loads a SQL dump into.

A dump is the user's SQL, run by the stock client. Whatever it says — ``UPDATE
other.t``, ``CREATE TABLE x AS SELECT * FROM other.customer``, ``\\u other``,
``connect other``, ``GRANT``, ``CREATE USER`` — it runs on a server that holds nothing
but the scratch database: a ``mariadbd`` of this machine (``sandbox.PrivateMariaDB``)
started for the one import in its work directory, with

- no TCP port (``--skip-networking``): its unix socket lies in a mode-0700 directory of
  the OS user running snapkeep, so no one else can connect to it;
- ``--secure-file-priv`` on an empty directory of its own and ``--skip-symbolic-links``,
  so ``SELECT … INTO OUTFILE``, ``LOAD_FILE()``, ``LOAD DATA INFILE`` and ``DATA
  DIRECTORY`` reach no file of the host, and ``--local-infile=0``.

The server runs as snapkeep's OS user, so its root could still write where that user can
(``SET GLOBAL general_log_file``). The dump is therefore loaded by the *loader*, a user
whose only grants are ALL on the scratch database and ``SET USER`` (so views, triggers and
routines keep the ``DEFINER`` they were dumped with). Before it loads, the server's other
accounts are dropped and root is renamed to a random name: a ``DEFINER`` in the dump names
no account that could do more than the loader (running such an object fails with "the
user specified as a definer does not exist"). snapkeep reads the scratch database as that
renamed admin (``dump_database``) into the snapshot, then stops the server and removes
its files. The environment's server is never given the dump.

A process killed during an import leaves its server running in the import's work
directory; ``stop_leftover`` (called by the next import before it removes that
directory) stops it, recognised by its pid file and the ``--datadir`` on its command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql

from snapkeep.engines.mysql.connect import quote_ident
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ConfigError, SnapkeepError
from snapkeep.processes import pid_alive
from snapkeep.progress import Reporter
from snapkeep.sandbox import PrivateMariaDB, find_install_db, find_mariadbd

SERVER_DIR = "mariadb"  # in the import's work directory: the server's datadir, log, pid
FILES_DIR = "files"  # the server's secure_file_priv: empty, its own
SOCKET_PREFIX = "snapkeep-import-"  # the short directory (in $TMPDIR) holding its socket
OPTIONS = ("--local-infile=0", "--innodb-buffer-pool-size=128M", "--skip-symbolic-links")
KILL_WAIT = 10.0  # seconds a leftover server gets to exit after SIGKILL
LOADER = "sk_loader"  # the account that runs the dump
NO_SUCH_PRIVILEGE = 1064  # SET USER before MariaDB 10.5.2: a syntax error


@dataclass(frozen=True)
class PrivateServer:
    """The scratch database on the private server, as its admin and as the loader."""

    admin: MySQLTarget  # root under a random name: creates and reads the scratch database
    loader: MySQLTarget  # may do anything in the scratch database and nothing elsewhere


def check_available() -> None:
    """ConfigError, saying what to install, when this host cannot run a private server."""
    missing = [name for name, found in (("mariadbd", find_mariadbd()),
                                        ("mariadb-install-db", find_install_db())) if not found]
    if missing:
        raise ConfigError(
            f"importing a SQL dump needs the MariaDB server programs on this host "
            f"({' and '.join(missing)} not found): snapkeep loads the dump into a private "
            "throwaway server so that nothing in it can reach the environment's server or "
            "other databases. Install them (Debian: `apt-get install mariadb-server`; the "
            "service need not run) and import again, or import an environment without a "
            "SQL dump")


@contextlib.contextmanager
def private_server(work: Path, database: str, reporter: Reporter) -> Iterator[PrivateServer]:
    """A private server in ``work/SERVER_DIR`` for the block, locked down for loading a
    dump into ``database`` (not created yet); stopped and its files removed afterwards,
    whatever happens."""
    check_available()
    base = work / SERVER_DIR
    (base / FILES_DIR).mkdir(parents=True, mode=0o700)
    sockets = Path(tempfile.mkdtemp(prefix=SOCKET_PREFIX))  # mode 0700
    server = PrivateMariaDB(base, (*OPTIONS, f"--secure-file-priv={base / FILES_DIR}"),
                            socket=str(sockets / "sock"), networking=False)
    try:
        started = time.monotonic()
        server.start()
        admin = _lock_down(server, database, reporter)
        reporter.log(f"started a private MariaDB server for the import in "
                     f"{time.monotonic() - started:.1f} s (nothing else is reachable from it)")
        yield PrivateServer(
            MySQLTarget("localhost", 0, admin, "", database, unix_socket=server.socket),
            MySQLTarget("localhost", 0, LOADER, "", database, unix_socket=server.socket))
    finally:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - it must not outlive the import
            server.kill()
        shutil.rmtree(sockets, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def _lock_down(server: PrivateMariaDB, database: str, reporter: Reporter) -> str:
    """Make the loader, drop every other account and rename root; the admin's new name."""
    admin = f"sk_admin_{secrets.token_hex(8)}"
    loader = f"'{LOADER}'@'localhost'"
    # In a grant, _ and % of a database name are wildcards: escaped, it names one database.
    pattern = quote_ident(database.replace("\\", "\\\\").replace("_", "\\_")
                          .replace("%", "\\%"))
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER {loader}")
            cur.execute(f"GRANT ALL PRIVILEGES ON {pattern}.* TO {loader}")
            try:
                cur.execute(f"GRANT SET USER ON *.* TO {loader}")
            except pymysql.MySQLError:
                reporter.log("warning: this MariaDB server has no SET USER privilege (10.5.2 "
                             "and later): views, triggers and routines whose DEFINER is not "
                             "the importing user cannot be loaded")
            cur.execute("SELECT User, Host FROM mysql.global_priv")
            for user, host in cur.fetchall():
                if (user, host) not in ((LOADER, "localhost"), ("root", "localhost")):
                    cur.execute("DROP USER %s@%s", (user, host))
            cur.execute(f"RENAME USER 'root'@'localhost' TO '{admin}'@'localhost'")
    finally:
        conn.close()
    server.user = admin  # its SHUTDOWN at the end
    return admin


def stop_leftover(work: Path) -> bool:
    """Stop the private server a killed import left running in ``work``; whether one was."""
    datadir = (work / SERVER_DIR / "data").as_posix()
    try:
        pid = int((work / SERVER_DIR / "mysqld.pid").read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    if f"--datadir={datadir}".encode() not in argv:
        return False  # the pid was reused by another process
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for arg in argv:  # the directory of its socket, in $TMPDIR
        sockets = Path(os.fsdecode(arg.removeprefix(b"--socket="))).parent
        if arg.startswith(b"--socket=") and sockets.name.startswith(SOCKET_PREFIX):
            shutil.rmtree(sockets, ignore_errors=True)
    deadline = time.monotonic() + KILL_WAIT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        raise SnapkeepError(f"the private MariaDB server (pid {pid}) that an interrupted "
                            f"import left in {work} did not stop; stop it and import again")
    return True

