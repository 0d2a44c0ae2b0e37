"""Connections to the target server, with failures turned into actionable SnapkeepErrors.

Every connection of this engine goes through ``connect()``: a bounded connect timeout,
utf8mb4 for statements, and (for ``raw=True``) no Python conversion of result values,
so rows come back as the exact bytes the server sent.

The dump's row readers use ``connect_stream()`` instead: mysqlclient (``MySQLdb``, the C
client library) with no converters, so every value is the server's bytes, read with
``use_result`` (unbuffered). Measured on this machine reading a 300 k-row, 80 MB table in
one process (MariaDB 10.11, loopback): fetch only, PyMySQL SSCursor 1.17-1.33 s vs
MySQLdb SSCursor 0.49-0.54 s (2.3x); fetch + encode, 2.9-3.3 s vs 1.9-2.1 s. Everything
else (schema, objects, locks, restore) stays on PyMySQL. When MySQLdb cannot be imported
the stream falls back to PyMySQL (same bytes, slower).

On a MySQLdb connection, ``StreamReader.pump`` goes one step further: the C row pump
(``_rowpump.c``) runs the SELECT on the connection's own client handle and returns blocks
of encoded lines, so no Python object is made per value (on a 305 MiB Magento-like
database read serially: 2.6 s wall and 0.6 s of client CPU, against 3.2 s and 3.1 s for
fetching rows into Python and encoding them there).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors
from pymysql import converters
from pymysql.connections import Connection
from pymysql.constants import CLIENT

from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import NotFoundError, PermissionDenied, ServiceUnavailable, SnapkeepError

CONNECT_TIMEOUT = 5
# Encoders only: values we send are escaped as usual; nothing we receive is converted.
_ENCODERS_ONLY = {k: v for k, v in converters.conversions.items() if not isinstance(k, int)}

ER_ACCESS_DENIED = 1045
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142
ER_NO_SUCH_TABLE = 1146
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_CONNECTION_ERROR = 2002
# How PyMySQL's 2003 says the name lookup failed (mysqlclient reports 2005 instead).
_UNRESOLVED = ("Name or service not known", "nodename nor servname", "No address associated",
               "Temporary failure in name resolution")

try:  # the fast row reader of the dump; optional at import time (PyMySQL is the fallback)
    import MySQLdb as _mysqldb
except ImportError:  # pragma: no cover - mysqlclient is a pinned dependency
    _mysqldb = None

try:  # the C row pump (_rowpump.c), built by setup.py when a compiler and libmariadb-dev are
    from snapkeep.engines.mysql import _rowpump
except ImportError:  # pragma: no cover - built by scripts/setup; tests require it
    _rowpump = None  # type: ignore[assignment]

# Every driver error this engine may see, for ``except`` clauses and ``errors_as``.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (pymysql.MySQLError,) + (
    (_mysqldb.MySQLError,) if _mysqldb is not None else ()) + (
    (_rowpump.Error,) if _rowpump is not None else ())


def quote_ident(name: str) -> str:
    """A backtick-quoted identifier, safe for any name (backticks are doubled)."""
    return "`" + name.replace("`", "``") + "`"


def error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def lacks_privilege(exc: BaseException) -> bool:
    """Whether a server error says the user lacks a global privilege (RELOAD, BACKUP_ADMIN…)."""
    return error_code(exc) == ER_SPECIFIC_ACCESS_DENIED


def translate(exc: BaseException, target: MySQLTarget, doing: str) -> SnapkeepError:
    """The SnapkeepError for a driver error; the message names the target, never secrets."""
    code = error_code(exc)
    where = target.describe()
    if code == CR_UNKNOWN_HOST or (code == CR_CONN_HOST_ERROR and any(
            m in _message(exc) for m in _UNRESOLVED)):
        return ServiceUnavailable(
            f"cannot connect to the database server for {where} while {doing}: the host name "
            f"{target.host!r} cannot be resolved; check the host in the database URL")
    if code in (CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST, CR_CONNECTION_ERROR) or (
            code is not None and 2000 <= code < 2100):
        return ServiceUnavailable(
            f"cannot reach the database server for {where} while {doing}: is it running and "
            f"is {target.unix_socket or f'{target.host}:{target.port}'} the right address?")
    if code == ER_ACCESS_DENIED:
        return ServiceUnavailable(
            f"access denied for user {target.user!r} to {where}: check the user name and "
            f"password in the database URL")
    if code == ER_BAD_DB:
        return ServiceUnavailable(
            f"database {target.database!r} does not exist on the server of {where}: "
            f"create it or fix the database name in the URL")
    if code in (ER_DBACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED):
        return PermissionDenied(
            f"user {target.user!r} lacks a privilege needed for {doing} on {where}: "
            f"{_message(exc)}")
    return ServiceUnavailable(f"database error while {doing} on {where}: {_message(exc)}")


def _message(exc: BaseException) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    text = str(args[1]) if len(args) > 1 else str(exc)
    return " ".join(text.split())


@contextmanager
def errors_as(target: MySQLTarget, doing: str) -> Iterator[None]:
    """Re-raise driver errors inside the block as the matching SnapkeepError."""
    try:
        yield
    except DRIVER_ERRORS as e:
        raise translate(e, target, doing) from e


class _Connection(Connection):
    """PyMySQL's connection, with one TLS context per process. Without TLS options PyMySQL
    tries TLS on every connection (preferred mode) and builds a new default context for
    each, loading the system's CA store: 50-170 ms of CPU per connection here, a quarter
    of a 200 MiB physical snapshot's client time. The same context, made once, does the
    same (it verifies nothing, as PyMySQL's own preferred one)."""

    _preferred: ssl.SSLContext | None = None
    _lock = threading.Lock()

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)
        with _Connection._lock:
            if _Connection._preferred is None:
                _Connection._preferred = super()._create_ssl_ctx({})
            return _Connection._preferred


def pymysql_connect(**kw: Any) -> Connection:
    """``pymysql.connect`` with the process's one TLS context (``_Connection``)."""
    return _Connection(**kw)


def connect(target: MySQLTarget, *, database: str | None = "", raw: bool = False,
            local_infile: bool = False, read_timeout: int | None = None,
            doing: str = "connecting") -> Connection:
    """Open a connection; ``database=""`` means the target's database, ``None`` means none.

    Raises ServiceUnavailable (unreachable, access denied, unknown database).
    """
    kw: dict[str, Any] = {
        "host": target.host, "port": target.port, "user": target.user,
        "password": target.password or "", "charset": "utf8mb4", "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT, "read_timeout": read_timeout,
        "local_infile": local_infile, "client_flag": CLIENT.MULTI_RESULTS,
    }
    if target.unix_socket:
        kw["unix_socket"] = target.unix_socket
    db = target.database if database == "" else database
    if db is not None:
        kw["database"] = db
    if raw:
        kw["conv"] = dict(_ENCODERS_ONLY)
        kw["use_unicode"] = False
    with errors_as(target, doing):
        return _Connection(**kw)


def stream_driver() -> str:
    """What the dump's rows are read with: ``"mysqlclient+rowpump"`` (lines encoded in C),
    ``"mysqlclient"`` or ``"pymysql"``."""
    if _mysqldb is None:
        return "pymysql"
    return "mysqlclient+rowpump" if _rowpump is not None else "mysqlclient"


def row_pump_built() -> bool:
    """Whether the C row pump was built (setup.py; needs gcc and libmariadb-dev)."""
    return _rowpump is not None


def connect_stream(target: MySQLTarget, *, doing: str = "connecting") -> Any:
    """A connection for reading rows as raw bytes, unbuffered (see the module docstring).

    The result is a ``MySQLdb`` connection (or a raw PyMySQL one without mysqlclient);
    use it through ``StreamReader``. Raises ServiceUnavailable like ``connect``.
    """
    if _mysqldb is None:
        return connect(target, raw=True, doing=doing)
    kw: dict[str, Any] = {
        "host": target.host, "port": target.port, "user": target.user,
        "password": target.password or "", "charset": "utf8mb4", "use_unicode": False,
        "conv": {}, "connect_timeout": CONNECT_TIMEOUT, "autocommit": True,
        "database": target.database,
    }
    if target.unix_socket:
        kw["unix_socket"] = target.unix_socket
    with errors_as(target, doing):
        return _mysqldb.connect(**kw)


class StreamReader:
    """Statements and unbuffered raw-bytes result streams on a ``connect_stream`` connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.is_mysqldb = _mysqldb is not None and isinstance(conn, _mysqldb.connections.Connection)

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (raw bytes), fully read."""
        if not self.is_mysqldb:
            return query(self.conn, sql)
        self.conn.query(sql.encode("utf-8"))
        res = self.conn.store_result()
        return list(res.fetch_row(0)) if res is not None else []

    def stream(self, sql: str, batch: int) -> Iterator[tuple[tuple[bytes | None, ...], ...]]:
        """Batches of rows of one SELECT, read unbuffered (nothing else may run meanwhile)."""
        if not self.is_mysqldb:
            with self.conn.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute(sql)
                while rows := cur.fetchmany(batch):
                    yield tuple(rows)
            return
        self.conn.query(sql.encode("utf-8"))
        res = self.conn.use_result()
        while rows := res.fetch_row(batch):
            yield rows

    @property
    def pumps(self) -> bool:
        """Whether ``pump`` can run here: a mysqlclient connection and the built row pump."""
        return self.is_mysqldb and _rowpump is not None

    def pump(self, sql: str, block: int, digest: Any = None
             ) -> Iterator[tuple[memoryview, int]]:
        """The rows of one SELECT as ``escaped``-encoding lines (encoding.py), fetched and
        encoded in C with the GIL released: blocks of whole lines of about ``block`` bytes,
        each with its row count; every line is also added to ``digest`` (a
        ``_rowpump.LineDigest``, see digest.py) if given. Only where ``pumps``.

        Each block is a view of a buffer the stream fills again once the view (and every
        view of it) is gone: keep ``bytes(view)`` to keep its lines. No bytes object is
        made per block (with the heap bounded, each was a fresh megabyte mapping faulted
        in page by page, then copied into the chunker)."""
        stream = _rowpump.RowStream(self.conn, sql.encode("utf-8"), digest)
        try:
            while True:
                data, rows = stream.read_block(block)
                if not data:
                    return
                yield memoryview(data), rows
        finally:
            stream.close()

    def thread_id(self) -> int:
        return int(self.conn.thread_id())

    def close(self) -> None:
        try:
            self.conn.close()
        except DRIVER_ERRORS:
            pass
        except Exception:  # noqa: BLE001 - closing a connection whose server is gone
            pass


def query(conn: Connection, sql: str | bytes, args: Any = None) -> list[tuple[Any, ...]]:
    if isinstance(sql, str) and args is None and not sql.isascii():
        sql = sql_bytes(sql)  # metadata read by ``text`` goes back byte for byte
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def text(value: Any) -> Any:
    """Decode bytes from a raw connection (results in utf8mb4); other values unchanged.

    The server prints some metadata with bytes that are not UTF-8 whatever the result
    charset: a binary column's DEFAULT (``VARBINARY(4) DEFAULT '\xff'``), binary literals
    in a routine body. Those bytes become lone surrogates (``surrogateescape``), survive
    JSON as ``\udcff`` escapes, and ``sql_bytes`` turns them back into the same bytes."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "surrogateescape")
    return value


def sql_bytes(sql: str) -> bytes:
    """A statement as bytes, with the raw bytes ``text`` kept as surrogates put back."""
    return sql.encode("utf-8", "surrogateescape")


def query_text(conn: Connection, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    return [tuple(text(v) for v in row) for row in query(conn, sql, args)]


def check_connection(target: MySQLTarget) -> str:
    """Connect to the target database and return the server version.

    Raises ServiceUnavailable with a one-line message when the server is unreachable,
    the credentials are refused, or the database does not exist.
    """
    conn = connect(target, doing="checking the connection")
    try:
        with errors_as(target, "checking the connection"):
            return str(text(query(conn, "SELECT VERSION()")[0][0]))
    finally:
        conn.close()


def check_restore_target(target: MySQLTarget) -> str:
    """Like ``check_connection``, for a restore: the database may be missing (a restore
    creates it, e.g. after a ``DROP DATABASE``) when the user may create it.

    Raises ServiceUnavailable when the server is unreachable or the login refused, and
    PermissionDenied naming the missing grant when the database is missing and the user
    lacks CREATE on it.
    """
    conn = connect(target, database=None, doing="checking the connection")
    try:
        with errors_as(target, "checking the connection"):
            version = str(text(query(conn, "SELECT VERSION()")[0][0]))
            if not database_exists(conn, target.database) and not _may_create(
                    conn, target.database):
                account = str(text(query(conn, "SELECT CURRENT_USER()")[0][0]))
                user, _, host = account.rpartition("@")
                raise PermissionDenied(
                    f"database {target.database!r} does not exist on the server of "
                    f"{target.describe()} and user {target.user!r} may not create it: the "
                    f"restore recreates it, which needs the CREATE privilege — run "
                    f"GRANT CREATE ON {quote_ident(target.database)}.* TO '{user}'@'{host}' "
                    f"(and on its restore helpers `{target.database}__sk%`), or create "
                    f"the database")
            return version
    finally:
        conn.close()


def _may_create(conn: Connection, database: str) -> bool:
    """Whether the current user (or its current role) holds CREATE globally or on a
    database pattern matching ``database``."""
    account = str(text(query(conn, "SELECT CURRENT_USER()")[0][0]))
    user, _, host = account.rpartition("@")
    grantees = [f"'{user}'@'{host}'"]
    role = text(query(conn, "SELECT CURRENT_ROLE()")[0][0])
    if role:
        grantees.append(f"'{role}'")
    marks = ", ".join(["%s"] * len(grantees))
    rows = query(conn, f"SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE GRANTEE IN "
                       f"({marks}) AND PRIVILEGE_TYPE = 'CREATE' UNION ALL SELECT 1 FROM "
                       f"information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ({marks}) AND "
                       f"PRIVILEGE_TYPE = 'CREATE' AND %s LIKE TABLE_SCHEMA",
                 (*grantees, *grantees, database))
    return bool(rows)


def database_exists(conn: Connection, name: str) -> bool:
    rows = query(conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                 (name,))
    return bool(rows)


def require_database(conn: Connection, target: MySQLTarget) -> None:
    if not database_exists(conn, target.database):
        raise NotFoundError(f"database {target.database!r} does not exist on the server of "
                            f"{target.describe()}")
