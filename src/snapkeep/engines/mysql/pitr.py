"""A restore to a point in time: the base snapshot built in the shadow, the archived
binlog replayed into it, the swap plan made to match (docs/pitr.md).

``prepare_restore_at`` is ``prepare_restore`` plus three steps before the cut-over:

1. the snapshot's routines, views and triggers are created in the shadow, and its events
   created ``DISABLE ON SLAVE`` (an enabled one would fire there), so the DDL of the window
   (``ALTER``/``DROP`` of them, a ``CREATE TRIGGER`` on a new table) applies as it did on
   the server. Triggers do not fire for row events (the replay applies rows as a replica
   does), so a row a trigger changed comes from the binlog exactly once;
2. ``binlog_scan.scan`` refuses what no replay can do exactly (a snapkeep restore of the
   database in the window, a DDL naming its database, an archive ending first), then the
   replayer (any implementation of ``binlog_replay_types``) applies the database's events
   from the snapshot's position up to the stop;
3. the shadow is described again (tables, views, routines, triggers, events) into the
   description the swap uses, then its views, routines, triggers and events are dropped
   (a table with triggers cannot move to another database; the cut-over creates them in
   the live database as for any restore). An event still ``DISABLE ON SLAVE`` after the
   replay had no ``ALTER EVENT … ENABLE|DISABLE`` in the window: it gets its snapshot
   status back (a replayed ``ALTER`` of its body keeps the parked status).

``tables`` (a ``--table`` restore): the whole database is built and replayed (a DDL or
a trigger of another table must apply exactly), then the other tables are dropped from the
shadow and the description narrowed to those asked for. A restored table with a foreign
key to a table outside them is refused (its key would name the shadow).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from snapkeep.engines.mysql import objects as objs
from snapkeep.engines.mysql import schema, scope
from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayResult, ReplayStop
from snapkeep.engines.mysql.binlog_scan import scan
from snapkeep.engines.mysql.connect import errors_as, query, quote_ident
from snapkeep.engines.mysql.cutover import row_tables
from snapkeep.engines.mysql.descriptions import check_readable, snapshot_objects
from snapkeep.engines.mysql.restore import PreparedRestore, prepare_restore
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import NotFoundError, UsageError
from snapkeep.progress import Reporter

Replayer = Callable[..., ReplayResult]
# an event's status in SHOW CREATE EVENT
_STATUS = re.compile(r"(ON COMPLETION (?:NOT )?PRESERVE) (ENABLE|DISABLE ON SLAVE|DISABLE)\b")
_PARKED = "DISABLE ON SLAVE"


def _with_status(create: str, status: str) -> str:
    return _STATUS.sub(lambda m: f"{m.group(1)} {status}", create, count=1)


def _status(create: str) -> str | None:
    m = _STATUS.search(create)
    return m.group(2) if m else None
_REFERENCES = re.compile(r"REFERENCES `((?:[^`]|``)+)`(?!\.)")


def _default_replayer() -> Replayer:
    # The fast replayer (BINLOG statements, batched; docs/performance.md, PITR replay);
    # binlog_replay_tool's stock mariadb-binlog | mariadb is its baseline and the bench's.
    from snapkeep.engines.mysql.binlog_replay import replay
    return replay


def check_scope_references(description: dict[str, Any], tables: list[str]) -> None:
    """Refuse a ``--table`` point-in-time restore whose tables have a foreign key to a
    table outside them (the restore builds the whole database in the shadow)."""
    inside = set(tables)
    for t in description["tables"]:
        if t["name"] not in inside:
            continue
        outside = {m.group(1).replace("``", "`") for m in _REFERENCES.finditer(t["create"])}
        outside -= inside
        if outside:
            raise UsageError(
                f"table {quote_ident(t['name'])} has a foreign key to "
                f"{', '.join(map(quote_ident, sorted(outside)))}, which is not restored: a "
                f"point-in-time restore of some tables cannot keep it; add "
                f"{' '.join('--table ' + n for n in sorted(outside))}")


def prepare_restore_at(target: MySQLTarget, description: dict[str, Any], repo: BlobSource,
                       reporter: Reporter, *, pieces: Iterable[ReplayPiece],
                       stop: ReplayStop, threads: int | None = None,
                       tables: list[str] | None = None,
                       replayer: Replayer | None = None,
                       allow_archive_end: bool = False) -> tuple[PreparedRestore, ReplayResult]:
    """The shadow holding ``description``'s snapshot with the archived events replayed up
    to ``stop``, ready to swap. ``allow_archive_end``: the archive is known to hold every
    event the server wrote, so reaching its end before the stop is the stop. Raises
    UsageError (nothing touched, the shadow dropped) when the archive ends first or the
    replay cannot be exact."""
    check_readable(description, "restore", pages=True)
    position = description.get("binlog")
    if not position:
        raise UsageError("the snapshot records no binlog position (its server had log_bin "
                         "off): it cannot be the base of a point-in-time restore")
    if tables is not None:
        scope.scoped(description, tables)  # NotFoundError for a table it does not hold
        check_scope_references(description, tables)
    restore = prepare_restore(target, description, repo, reporter, threads=threads)
    try:
        with errors_as(target, "replaying the binary log"):
            result = _replay(restore, pieces, stop, position, replayer or _default_replayer(),
                             allow_archive_end)
            _redescribe(restore, tables)
    except BaseException:
        restore.abort()
        raise
    return restore, result


def _replay(restore: PreparedRestore, pieces: Iterable[ReplayPiece], stop: ReplayStop,
            position: dict[str, Any], replayer: Replayer,
            allow_archive_end: bool) -> ReplayResult:
    conn, shadow, d = restore._conn, restore.shadow, restore.description
    conn.select_db(shadow)
    created = snapshot_objects(d, shadow)
    query(conn, objs.SESSION_DEFAULTS)
    for routine in created["routines"]:
        objs.execute_as_created(conn, routine)
    objs.create_views(conn, created["views"])
    for trigger in created["triggers"]:
        objs.execute_as_created(conn, trigger)
    for event in created["events"]:  # parked: it must not fire in the shadow
        objs.execute_as_created(conn, {**event, "create": _with_status(event["create"],
                                                                       _PARKED)})
    source = str(d.get("database") or restore.live)
    pieces = list(pieces)
    # whatever the replayer: a restore in the window or a DDL naming its database refused,
    # and an archive ending first, before anything is replayed
    planned = scan(pieces, start_file=str(position["file"]),
                   start_position=int(position["position"]), source_db=source, stop=stop)
    if not planned.reached_stop and not allow_archive_end:
        raise _archive_ends()
    result = replayer(restore.target.with_database(shadow), pieces,
                      start_file=str(position["file"]), start_position=int(position["position"]),
                      source_db=source, into_db=shadow, tables=None, stop=stop,
                      reporter=restore.reporter)
    if not result.reached_stop and not allow_archive_end:
        raise _archive_ends()
    restore.reporter.log(
        f"replayed {result.transactions} transactions ({result.events} events) of {source} "
        f"from {position['file']}:{position['position']}; the last at "
        f"{result.last_time.isoformat() if result.last_time else '(none)'}"
        + (f", GTID {result.last_gtid}" if result.last_gtid else ""))
    return result


def _archive_ends() -> UsageError:
    return UsageError("the binlog archive ends before the point asked: nothing was changed; "
                      "restore to an earlier point, or wait for the follower "
                      "(`snapkeep binlog:follow`) to catch up")


def _redescribe(restore: PreparedRestore, tables: list[str] | None) -> None:
    """Make ``restore.description`` the shadow as replayed (see the module), and leave only
    tables in the shadow."""
    conn, shadow, before = restore._conn, restore.shadow, restore.description
    conn.select_db(shadow)
    query(conn, objs.SESSION_DEFAULTS)
    old_tables = {t["name"]: t for t in before["tables"]}
    listed = schema.list_tables(conn, shadow)
    new_tables = []
    for name, kind, engine, auto_inc in listed:
        if not schema.holds_rows(kind):
            continue
        t = dict(old_tables.get(name) or {"name": name, "columns": [], "order_by": []})
        t.update(engine=engine, create=schema.table_ddl(conn, name), auto_increment=auto_inc)
        new_tables.append(t)
    sequences = [schema.sequence_state(conn, name) for name, kind, _, _ in listed
                 if kind == "SEQUENCE"]
    found = schema.objects(conn, shadow, restore.reporter)
    original = {e["name"]: e for e in before.get("events", [])}
    events = []
    for e in found["events"]:
        o = original.get(e["name"])
        status = _status(o["create"]) if o is not None else None
        if status is not None and _status(e["create"]) == _PARKED:
            # no ALTER EVENT … ENABLE/DISABLE in the window: the snapshot's status
            e = {**e, "create": _with_status(e["create"], status)}
        events.append(e)
    d = {**before, "database": shadow, "tables": new_tables, "sequences": sequences,
         "views": found["views"], "triggers": found["triggers"],
         "routines": found["routines"], "events": events}
    objs.drop_triggers(conn, shadow)
    objs.drop_non_tables(conn, shadow)
    if tables is not None:
        try:
            d = scope.scoped(d, tables)
        except NotFoundError as e:
            raise UsageError(f"{e} at the time asked (dropped before it)") from e
        keep = set(tables)
        query(conn, "SET SESSION foreign_key_checks = 0")
        for name in row_tables(conn, shadow):
            if name not in keep:
                query(conn, f"DROP TABLE {quote_ident(shadow)}.{quote_ident(name)}")
    restore.description = d
