"""The fast binlog replayer: archived events applied to another database with ``BINLOG``
statements (docs/pitr.md, Replay; the contract in ``binlog_replay_types``).

Row events are not decoded here: they are sent back to the server as they were written,
base64-encoded in ``BINLOG '…'`` statements, so the server decodes every column type
exactly as a replica would. What this module does around them:

- the database: Table_map events of ``source_db`` are renamed to ``into_db`` (size,
  position and CRC32 recomputed); those of other databases (and of tables outside
  ``tables``) are left out with their row events; when the event that ended a statement is
  left out, the last kept one gets its STMT_END_F so the server closes the statement;
- batching: the events of many source statements go into one ``BINLOG`` statement
  (``STATEMENTS``, ``STATEMENT_BYTES``, within the server's packet), those of many source
  transactions into one target transaction (committed every ``COMMIT_BYTES``),
  where ``mariadb-binlog | mariadb`` sends several statements and one commit (one
  fsync) per source transaction;
- Query events: BEGIN/COMMIT/ROLLBACK mark transactions; other statements (DDL in row
  format) are run when the objects they name are in ``source_db`` (qualified names
  rewritten to ``into_db``, the default database ``into_db``) under the session the event
  records (sql_mode, character sets, foreign_key_checks, timestamp…), skipped when they
  are in other databases, and refused when they name both;
- the stop: before the first transaction (its GTID event) stamped at or after
  ``stop.before_time``, or right after the transaction of ``stop.after_gtid``.

Foreign-key checks stay as the source had them (each row event carries its session's
flag and the server applies it): InnoDB does not log the rows a cascading foreign key
changes, so a replay without checks would not cascade them either.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from snapkeep.engines.mysql import binlog_events as be
from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayResult, ReplayStop
from snapkeep.engines.mysql.binlog_statements import (
    TABLE_KINDS,
    requalify_names,
    statement_objects,
)
from snapkeep.engines.mysql.connect import (
    DRIVER_ERRORS,
    connect,
    error_code,
    errors_as,
    lacks_privilege,
    query,
    translate,
)
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ServerSetupError, ServiceUnavailable
from snapkeep.progress import Reporter

# Events per BINLOG statement. Where the target writes a binlog, the session turns off
# binlog_annotate_row_events: otherwise every replayed statement is annotated with the
# whole BINLOG statement's text, which made the cost grow with the square of its size
# (5 000 transactions: 4 KiB statements 0.7 s, 1 MiB 76 s). Without it, 20 000
# transactions (bench/replay.py): 16 statements / 64 KiB 1.8 s, 256 1.2 s, 4096 / 256 KiB
# to 4 MiB 1.1 s.
STATEMENT_BYTES = 1 << 20  # event bytes per BINLOG statement (base64: a third more)
STATEMENTS = 4096  # source statements per BINLOG statement
# When annotations cannot be turned off (the user lacks BINLOG ADMIN): 16 statements /
# 64 KiB was the best (20 000 transactions: 4 → 2.2 s, 16 → 1.5 s, 64 → 2.1 s)
ANNOTATED_BYTES, ANNOTATED_STATEMENTS = 64 << 10, 16
SPLIT_BYTES = 4 << 20  # one source statement's events per BINLOG statement, at most
COMMIT_BYTES = 32 << 20  # event bytes per target transaction


class ReplayError(ServiceUnavailable):
    """An event the replay cannot apply as asked."""


def replay(target: MySQLTarget, pieces: Iterable[ReplayPiece], *, start_file: str,
           start_position: int, source_db: str, into_db: str,
           tables: set[str] | None, stop: ReplayStop, reporter: Reporter,
           threads: int = 1) -> ReplayResult:
    """Apply the events of ``source_db`` from ``start_file``:``start_position`` on to
    ``into_db`` until ``stop`` (``threads`` is accepted for the contract; one connection
    applies everything, in order)."""
    del threads
    conn = connect(target.with_database(into_db), database=into_db,
                   doing="replaying the binary log")
    try:
        r = _Replayer(conn, target, start_file=start_file, start_position=start_position,
                      source_db=source_db, into_db=into_db, tables=tables, stop=stop)
        for piece in pieces:
            size = piece.end - piece.start
            reporter.add_total(size)
            done = r.piece(piece)
            reporter.advance(size)
            if done:
                break
        r.finish()
        reporter.log(f"replayed {r.transactions} transactions ({r.applied} events) of "
                     f"{source_db} into {into_db}" + (
                         "" if r.reached else ": the archive ended before the stop point"))
        return ReplayResult(r.transactions, r.applied,
                            datetime.fromtimestamp(r.last_time, UTC) if r.last_time else None,
                            r.last_gtid, r.reached)
    finally:
        conn.close()


class _Replayer:
    def __init__(self, conn: Any, target: MySQLTarget, *, start_file: str, start_position: int,
                 source_db: str, into_db: str, tables: set[str] | None,
                 stop: ReplayStop) -> None:
        self.conn, self.target = conn, target
        self.start_file, self.start_position = start_file, start_position
        self.source_db, self.into_db, self.tables = source_db, into_db, tables
        before = stop.before_time
        if before is not None and before.tzinfo is None:
            before = before.replace(tzinfo=UTC)  # naive: UTC, like the events' stamps
        self.before = before.timestamp() if before is not None else None
        self.after_gtid = stop.after_gtid
        self.after_domain, self.after_seq = _domain_seq(stop.after_gtid)
        self.fmt: be.Format | None = None
        self.sent_format: bytes | None = None
        self.active = False  # at or past the start position
        self.where = ""
        # the source transaction being read
        self.in_trx = False
        self.standalone = False
        self.trx_gtid: str | None = None
        self.trx_time = 0
        self.keep: dict[int, bool] = {}  # table id -> its rows are replayed
        self.stmt_maps: list[bytes] = []  # kept Table_maps of the open statement
        self.sent_maps: list[bytes] = []  # those already queued
        # (index in out, type) of the open statement's last kept row event
        self.last_rows: tuple[int, int] | None = None
        self.intvars: list[tuple[int, int]] = []
        # what goes to the server
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.statements = 0  # source statements in ``out``
        # a BINLOG statement (base64: 4/3 of its events) must fit the server's packet
        with errors_as(target, "replaying the binary log"):
            self.max_packet = int(query(conn, "SELECT @@max_allowed_packet")[0][0])
            annotated = _annotations_on(conn)
        self.split_bytes = min(SPLIT_BYTES, self.max_packet // 2)
        self.statement_bytes = min(STATEMENT_BYTES, self.split_bytes)
        self.statements_max = STATEMENTS
        if annotated:  # small statements keep the annotations' cost down
            self.statement_bytes, self.statements_max = ANNOTATED_BYTES, ANNOTATED_STATEMENTS
        self.uncommitted = 0
        self.target_trx = False
        # the result
        self.transactions = 0
        self.applied = 0
        self.last_time = 0
        self.last_gtid: str | None = None
        self.reached = False

    # -- reading ----------------------------------------------------------------------------

    def piece(self, piece: ReplayPiece) -> bool:
        """Apply one piece; True once the stop point is reached."""
        data = b"".join(piece.read())
        if len(data) != piece.end - piece.start:
            raise ReplayError(f"binlog segment {piece.file}:{piece.start}-{piece.end} has "
                              f"{len(data)} bytes, not {piece.end - piece.start}")
        offset = 0
        if piece.start == 0:  # a whole file: its magic first
            if data[:4] != b"\xfebin":
                raise ReplayError(f"{piece.file} does not start as a binlog file")
            offset = 4
        file_active = self.active or piece.file == self.start_file
        try:
            for start, end in be.events(data, offset):
                ev = data[start:end]
                kind = ev[4]
                position = piece.start + start
                self.where = f"{piece.file}:{position}"
                if kind == be.FORMAT_DESCRIPTION:
                    self.fmt = be.parse_format(ev)
                    continue
                if not file_active:
                    continue
                if not self.active:
                    if position < self.start_position:
                        continue
                    self.active = True
                    if self.fmt is not None:  # the grant checked before anything is applied
                        self._send_format()
                if self.event(ev, kind):
                    return True
        except be.BinlogFormatError as e:
            raise ReplayError(f"binlog event at {self.where} cannot be read: {e}") from e
        return False

    def event(self, ev: bytes, kind: int) -> bool:
        """Handle one event; True at the stop point (nothing of this event applied)."""
        fmt = self.fmt
        if fmt is None:
            raise ReplayError(f"binlog event at {self.where} comes before any "
                              "Format_description event: the pieces must start at offset 4 "
                              "of the start file")
        if kind in be.ROWS:
            table_id, flags = be.rows_table_id(fmt, ev, kind)
            if self.keep.get(table_id, False):
                if kind in be.UNCOMPRESSED:
                    ev, kind = be.uncompressed_rows(fmt, ev, kind), be.UNCOMPRESSED[kind]
                if self.out and self.out_bytes + len(ev) > self.split_bytes:
                    # a source statement larger than a packet: sent in parts, each with the
                    # statement's Table_maps again (the server forgets them at the end of
                    # every BINLOG statement and skips rows of unknown table ids)
                    open_statement = self.last_rows is not None
                    self._send_events()
                    if open_statement:
                        self.stmt_maps, self.last_rows = self.sent_maps, None
                if self.stmt_maps:
                    self._queue_many(self.stmt_maps)
                    self.sent_maps = self.stmt_maps
                    self.stmt_maps = []
                self.last_rows = (len(self.out), kind)
                self._queue(ev)
            elif flags & be.STMT_END_F and self.last_rows is not None:
                i, k = self.last_rows
                self.out[i] = be.with_statement_end(fmt, self.out[i], k)
            if flags & be.STMT_END_F:
                self.stmt_maps = []
                if self.last_rows is not None:
                    self.statements += 1
                self.last_rows = None
                if (self.out_bytes >= self.statement_bytes
                        or self.statements >= self.statements_max):
                    self._send_events()
        elif kind == be.TABLE_MAP:
            tm = be.table_map(fmt, ev)
            keep = tm.database == self.source_db and (
                self.tables is None or tm.table in self.tables)
            self.keep[tm.table_id] = keep
            if keep:
                self.stmt_maps.append(be.rename_database(fmt, ev, tm, self.into_db))
        elif kind in be.GTID:
            gtid, flags = be.gtid(ev, kind)
            ts = int.from_bytes(ev[0:4], "little")
            if self.before is not None and ts >= self.before:
                self.reached = True
                return True
            if self._passed(gtid):
                self.reached = True
                return True
            self.in_trx, self.standalone = True, bool(flags & be.GTID_STANDALONE)
            self.trx_gtid, self.trx_time = gtid, ts
        elif kind == be.XID:
            return self._end_transaction()
        elif kind in (be.QUERY, be.QUERY_COMPRESSED):
            return self._query(be.query(fmt, ev, kind))
        elif kind == be.INTVAR:
            self.intvars.append(be.intvar(ev))
        elif kind == be.START_ENCRYPTION:
            raise ReplayError(f"binlog at {self.where} is encrypted by the server: "
                              "encrypted binlogs cannot be replayed")
        # everything else (Annotate_rows, Rotate, Gtid_list, Binlog_checkpoint, Rand,
        # User_var of statement-format events) applies nothing in row format
        return False

    def _passed(self, gtid: str | None) -> bool:
        """Whether ``gtid`` comes after the stop GTID in its domain (the stop transaction
        is not in the archive's range: stop before the first one past it)."""
        if self.after_domain is None or gtid is None:
            return False
        domain, seq = _domain_seq(gtid)
        return domain == self.after_domain and seq is not None and seq > (self.after_seq or 0)

    def _end_transaction(self) -> bool:
        self.transactions += 1
        self.last_time, self.last_gtid = self.trx_time, self.trx_gtid
        self.in_trx = self.standalone = False
        self.intvars = []
        if self.after_gtid is not None and self.trx_gtid == self.after_gtid:
            self.reached = True
            return True
        if self.uncommitted + self.out_bytes >= COMMIT_BYTES:
            self._commit()
        return False

    # -- statements -------------------------------------------------------------------------

    def _query(self, q: be.Query) -> bool:
        head = q.text[:40].lstrip().upper()
        word = head.split(None, 1)[0] if head.split() else b""
        if head in (b"BEGIN", b"START TRANSACTION"):
            return False
        if head == b"COMMIT" or (word == b"ROLLBACK" and b" TO " not in head + b" "):
            # ROLLBACK: the transaction's transactional rows were never logged; what was
            # logged (non-transactional rows) happened
            return self._end_transaction()
        if word in (b"SAVEPOINT", b"XA", b"RELEASE") or (word == b"ROLLBACK"):
            return False
        self._statement(q)
        self.intvars = []
        if self.standalone or not self.in_trx:
            return self._end_transaction()
        return False

    def _statement(self, q: be.Query) -> None:
        text = q.text.decode("utf-8", "surrogateescape")
        got = statement_objects(text, q.database)
        if got is None:
            return  # a statement on the server itself (accounts, FLUSH…)
        kind, objects = got
        dbs = {db for db, _ in objects}
        if self.source_db not in dbs:
            return
        if len(dbs) > 1:
            raise ReplayError(
                f"binlog statement at {self.where} names {self.source_db!r} and other "
                f"databases ({', '.join(sorted(dbs - {self.source_db}))}): it cannot be "
                f"replayed into {self.into_db!r} alone: {_short(text)}")
        if self.tables is not None:  # only DDL of the chosen tables themselves
            names = {name for _, name in objects}
            if kind not in TABLE_KINDS or not names & self.tables:
                return
            if not names <= self.tables:
                raise ReplayError(
                    f"binlog statement at {self.where} changes the chosen tables and others "
                    f"({', '.join(sorted(names - self.tables))}): restore those too: "
                    f"{_short(text)}")
        sql = requalify_names(text, self.source_db, self.into_db)
        self._send_events()
        self._commit()  # DDL commits implicitly anyway
        self._execute(self._session_sql(q))
        for var, value in self.intvars:
            self._execute(f"SET {'LAST_INSERT_ID' if var == 1 else 'INSERT_ID'}={value}")
        self._execute(sql.encode("utf-8", "surrogateescape"))
        self.applied += 1

    def _session_sql(self, q: be.Query) -> str:
        sets = [f"@@session.timestamp={q.timestamp}.{q.microseconds or 0:06d}"]
        if q.flags2 is not None:
            sets += [f"@@session.foreign_key_checks={0 if q.flags2 & (1 << 26) else 1}",
                     f"@@session.unique_checks={0 if q.flags2 & (1 << 27) else 1}",
                     f"@@session.sql_auto_is_null={1 if q.flags2 & (1 << 14) else 0}"]
        if q.sql_mode is not None:
            sets.append(f"@@session.sql_mode={q.sql_mode}")
        if q.charset is not None:
            sets += [f"@@session.character_set_client={q.charset[0]}",
                     f"@@session.collation_connection={q.charset[1]}",
                     f"@@session.collation_server={q.charset[2]}"]
        if q.time_zone is not None:
            sets.append("@@session.time_zone='" + q.time_zone.replace("'", "''") + "'")
        if q.lc_time_names is not None:
            sets.append(f"@@session.lc_time_names={q.lc_time_names}")
        if q.auto_increment is not None:
            sets += [f"@@session.auto_increment_increment={q.auto_increment[0]}",
                     f"@@session.auto_increment_offset={q.auto_increment[1]}"]
        sets.append(f"@@session.collation_database={q.collation_database}"
                    if q.collation_database is not None else "@@session.collation_database=DEFAULT")
        return "SET " + ", ".join(sets)

    # -- the server ------------------------------------------------------------------------

    def _queue(self, ev: bytes) -> None:
        self.out.append(ev)
        self.out_bytes += len(ev)

    def _queue_many(self, evs: list[bytes]) -> None:
        self.out.extend(evs)
        self.out_bytes += sum(len(e) for e in evs)

    def _send_format(self) -> None:
        assert self.fmt is not None
        if self.sent_format == self.fmt.event:
            return
        try:
            self.conn.query(b"BINLOG '" + base64.b64encode(self.fmt.event) + b"'")
        except DRIVER_ERRORS as e:
            if lacks_privilege(e):
                raise ServerSetupError(
                    f"user {self.target.user!r} may not replay binlog events on "
                    f"{self.target.describe()}: GRANT BINLOG REPLAY ON *.* TO it (MariaDB "
                    "10.5.2+; SUPER on older servers)") from e
            raise translate(e, self.target, f"replaying the binlog at {self.where}") from e
        self.sent_format = self.fmt.event

    def _send_events(self) -> None:
        if not self.out:
            return
        self._send_format()
        if not self.target_trx:
            self._execute("START TRANSACTION")
            self.target_trx = True
        sql = b"BINLOG '" + base64.b64encode(b"".join(self.out)) + b"'"
        if len(sql) > self.max_packet - 1024:
            raise ReplayError(
                f"the binlog event at {self.where} needs a statement of {len(sql)} bytes, "
                f"more than the max_allowed_packet ({self.max_packet}) of "
                f"{self.target.describe()}: raise it there (SET GLOBAL max_allowed_packet = "
                f"{_next_mib(len(sql) + 1024)}) and restore again")
        self._execute(sql)
        self.applied += len(self.out)
        self.uncommitted += self.out_bytes
        self.out, self.out_bytes, self.statements = [], 0, 0

    def _commit(self) -> None:
        if self.target_trx:
            self._execute("COMMIT")
        self.target_trx = False
        self.uncommitted = 0

    def _execute(self, sql: str | bytes) -> None:
        try:
            self.conn.query(sql)
        except DRIVER_ERRORS as e:
            if error_code(e) is not None and lacks_privilege(e):
                raise ServerSetupError(
                    f"user {self.target.user!r} may not replay binlog events on "
                    f"{self.target.describe()}: GRANT BINLOG REPLAY ON *.* TO it (MariaDB "
                    "10.5.2+; SUPER on older servers)") from e
            raise translate(e, self.target,
                            f"replaying the binlog (events up to {self.where})") from e

    def finish(self) -> None:
        """Apply and commit what is queued (a transaction the pieces end inside is
        applied up to its last statement: the caller decides what a short archive means)."""
        self._send_events()
        self._commit()


def _annotations_on(conn: Any) -> bool:
    """Turn off the session's binlog_annotate_row_events where the server writes a binlog
    (needs SUPER or BINLOG ADMIN); whether replayed statements stay annotated."""
    if str(query(conn, "SELECT @@log_bin AND @@sql_log_bin AND "
                       "@@binlog_annotate_row_events")[0][0]) in ("0", "None"):
        return False
    try:
        query(conn, "SET SESSION binlog_annotate_row_events = OFF")
    except DRIVER_ERRORS as e:
        if lacks_privilege(e):
            return True
        raise
    return False


def _next_mib(n: int) -> int:
    return -(-n // (1 << 20)) << 20


def _domain_seq(gtid: str | None) -> tuple[int | None, int | None]:
    if gtid is None:
        return None, None
    parts = gtid.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[2])
    return None, None


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= 120 else one[:117] + "..."
