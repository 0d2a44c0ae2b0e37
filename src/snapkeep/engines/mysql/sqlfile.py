"""Loading a SQL script (a ``mysqldump``/``mariadb-dump`` file, or snapkeep's own export)
into a scratch database with the stock ``mariadb`` command-line client.

The client, not snapkeep, parses the script: it knows ``DELIMITER``, versioned comments,
the sandbox-mode line of newer dumps and every quirk of the dump tools, and its error
messages name the line. snapkeep streams the script to the client's stdin through
``sql_statements.DatabaseStatements``, which blanks out the statements that would leave
the scratch database (``USE``, ``CREATE DATABASE``, ``DROP DATABASE`` of a
``--databases`` dump), one line for one line, so the client's line numbers stay those of
the file. That filter is for a correct import of an ordinary dump, not for safety: an
import runs the client against a private server holding nothing else
(``import_server.py``), so a script that names another database (``UPDATE other.t``,
``\\u other``) reaches nothing.

The client runs with ``--sandbox`` (no shell escapes, ``source`` or ``tee`` from the
file) when it has that option, and ``--local-infile=0``. The password goes to it in a
mode-0600 option file, never in its argv.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from snapkeep.engines.mysql.connect import (
    connect,
    database_exists,
    errors_as,
    query,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.names import import_name
from snapkeep.engines.mysql.sql_statements import DatabaseStatements
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ConfigError, ServiceUnavailable, UsageError
from snapkeep.progress import Reporter

CLIENTS = ("mariadb", "mysql")
READ_SIZE = 1 << 20  # bytes of script read at a time
WAIT_STEP = 0.5  # seconds between two looks at a cancel while waiting on the client
FINISH_TIMEOUT = 6 * 3600.0  # bound on the client's work after the last byte was sent
KILL_WAIT = 10.0  # seconds a killed client gets to exit

# "ERROR 1064 (42000) at line 7: …" from the server, "ERROR at line 7: …" from the client
_CLIENT_ERROR = re.compile(r"ERROR(?: (\d+) \((\w+)\))? at line (\d+)(?: in file: '[^']*')?: "
                           r"(.*)")


def find_client() -> str:
    """The path of the stock ``mariadb`` (or ``mysql``) client; ConfigError without one."""
    for name in CLIENTS:
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("importing a SQL file needs the stock `mariadb` command-line client, "
                      "and neither `mariadb` nor `mysql` is on PATH: install it (Debian: "
                      "`apt-get install mariadb-client`) and import again")


@functools.cache
def supports_sandbox(client: str) -> bool:
    """Whether ``client`` takes ``--sandbox`` (MariaDB 10.5.25, 10.6.18, 10.11.8 and later)."""
    try:
        res = subprocess.run([client, "--no-defaults", "--help"], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--sandbox" in res.stdout


def scratch_target(target: MySQLTarget) -> MySQLTarget:
    """The scratch database an import of ``target``'s environment loads into."""
    return target.with_database(import_name(target.database))


# -- the scratch database ----------------------------------------------------------------------

def database_defaults(target: MySQLTarget) -> dict[str, str] | None:
    """Charset, collation and comment of ``target.database``; None when it does not exist."""
    conn = connect(target, database=None, doing="reading the database's defaults")
    try:
        with errors_as(target, "reading the database's defaults"):
            rows = query_text(conn, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, "
                                    "SCHEMA_COMMENT FROM information_schema.SCHEMATA "
                                    "WHERE SCHEMA_NAME = %s", (target.database,))
    finally:
        conn.close()
    if not rows:
        return None
    charset, collation, comment = rows[0]
    return {"charset": charset, "collation": collation, "comment": comment or ""}


def create_database(target: MySQLTarget, defaults: dict[str, str] | None) -> None:
    """Create ``target.database`` (empty) with ``defaults`` (charset, collation, comment)
    or the server's. The caller has dropped any previous one (``drop_database``)."""
    sql = f"CREATE DATABASE {quote_ident(target.database)}"
    args: list[str] = []
    if defaults:
        sql += f" CHARACTER SET {_word(defaults['charset'])} COLLATE {_word(defaults['collation'])}"
        if defaults.get("comment"):
            sql += " COMMENT %s"
            args.append(defaults["comment"])
    conn = connect(target, database=None, doing="creating the scratch database")
    try:
        with errors_as(target, "creating the scratch database"):
            query(conn, sql, args or None)
    finally:
        conn.close()


def drop_database(target: MySQLTarget) -> bool:
    """Drop ``target.database`` if it exists; whether it did."""
    conn = connect(target, database=None, doing="dropping the scratch database")
    try:
        with errors_as(target, "dropping the scratch database"):
            if not database_exists(conn, target.database):
                return False
            query(conn, f"DROP DATABASE {quote_ident(target.database)}")
            return True
    finally:
        conn.close()


def _word(value: str) -> str:
    if not re.fullmatch(r"\w+", value):
        raise UsageError(f"{value!r} is not a character set or collation name")
    return value


# -- running the client ------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadResult:
    database: str | None  # the database the script named (USE / CREATE DATABASE), if any
    left_out: int  # database-level statements left out or rewritten
    seconds: float


def option_file(directory: Path, target: MySQLTarget, *, with_database: bool = False) -> Path:
    """A MySQL option file for ``target`` (``[client]`` user, password, host/port or socket),
    mode 0600, as ``directory/client.cnf``: the stock client's login without the password in
    an argv or the environment. ``with_database`` adds the database under ``[mysql]``, the
    clients' own group (mysqldump and other tools reading ``[client]`` refuse it there)."""
    def value(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[client]", f"user={value(target.user)}"]
    if target.password:
        lines.append(f"password={value(target.password)}")
    if target.unix_socket:
        lines.append(f"socket={value(target.unix_socket)}")
    else:
        lines += [f"host={value(target.host)}", f"port={target.port}", "protocol=TCP"]
    if with_database:
        lines += ["[mysql]", f"database={value(target.database)}"]
    path = directory / "client.cnf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def load_sql(target: MySQLTarget, src: BinaryIO, *, source_name: str,
             reporter: Reporter) -> LoadResult:
    """Run the SQL script ``src`` (uncompressed bytes) with the stock client into
    ``target.database``, which must exist; database-level statements are filtered out
    (see the module doc).

    While waiting on the client it calls ``reporter.advance(0)``, so a reporter that stops
    a cancelled activity stops the load (the client is killed). Raises UsageError naming
    ``source_name`` and the line for an error in the script, ServiceUnavailable when the
    client cannot reach the server, ConfigError without a client.
    """
    client = find_client()
    started = time.monotonic()
    statements = DatabaseStatements(source_name)
    with tempfile.TemporaryDirectory(prefix="snapkeep-sql-") as tmp:
        options = option_file(Path(tmp), target)
        errors = Path(tmp) / "stderr"
        argv = [client, f"--defaults-file={options}", "--batch", "--local-infile=0",
                "--default-character-set=utf8mb4", "--max-allowed-packet=1073741824"]
        if supports_sandbox(client):
            argv.append("--sandbox")  # no shell escapes, source or tee from the file
        else:
            reporter.log(f"warning: {client} has no --sandbox option: client commands in "
                         f"{source_name} (\\! for a shell, source) would run")
        argv.append(target.database)
        with open(errors, "wb") as err:
            try:
                # In our process group: a Ctrl-C at the terminal stops it with us.
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=err)
            except OSError as e:
                raise ConfigError(f"cannot start the `mariadb` client {client}: {e}") from e
        try:
            _feed(proc, src, statements, source_name, reporter)
            _wait(proc, reporter)
        except BaseException:
            _kill(proc)
            raise
        message = errors.read_text(errors="replace")
    if proc.returncode != 0:
        raise _client_error(proc.returncode, message, source_name, target)
    return LoadResult(statements.database, statements.left_out, time.monotonic() - started)


def _feed(proc: subprocess.Popen[bytes], src: BinaryIO, statements: DatabaseStatements,
          source_name: str, reporter: Reporter) -> None:
    assert proc.stdin is not None
    fd = proc.stdin.fileno()
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = src.read(READ_SIZE)
            except (OSError, EOFError, ValueError) as e:  # a damaged .gz/.zst, a read error
                raise UsageError(f"cannot read {source_name}: {e}; check the file and import "
                                 "again") from e
            data = statements.feed(chunk) if chunk else statements.finish()
            if not _write_all(proc, fd, memoryview(data), reporter):
                return  # the client stopped (an error in the script): it says why
            if not chunk:
                return
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _write_all(proc: subprocess.Popen[bytes], fd: int, data: memoryview,
               reporter: Reporter) -> bool:
    """Write ``data`` to the client's stdin, looking at a cancel while the pipe is full;
    False when the client has gone."""
    while data:
        _, ready, _ = select.select([], [fd], [], WAIT_STEP)
        if not ready:
            if proc.poll() is not None:
                return False
            reporter.advance(0)
            continue
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return False
        data = data[n:]
    return True


def _wait(proc: subprocess.Popen[bytes], reporter: Reporter) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT
    while True:
        try:
            proc.wait(timeout=WAIT_STEP)
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"the `mariadb` client was still running {FINISH_TIMEOUT / 3600:.0f} h "
                    "after the whole script was sent; it was stopped") from None
            reporter.advance(0)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_WAIT)


def _client_error(code: int, stderr: str, source_name: str,
                  target: MySQLTarget) -> UsageError | ServiceUnavailable:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if m := _CLIENT_ERROR.search(line):
            number, state, at, text = m.groups()
            who = f"MariaDB error {number}, SQLSTATE {state}" if number else "the mariadb client"
            return UsageError(f"{source_name} line {at}: {text} ({who}); fix the file and "
                              "import again")
    detail = lines[-1] if lines else f"it exited with status {code}"
    return ServiceUnavailable(f"the `mariadb` client could not load {source_name} into "
                              f"{target.describe()}: {detail}")
