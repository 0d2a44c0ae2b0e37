"""Whether the database user may do a whole restore — the cut-over *and* its rollback —
checked before anything is built or changed (``check_restore_privileges``).

A cut-over that fails half-way must be able to roll back: a restore whose rollback would
need a privilege the user lacks could leave the live database without its objects. So
the check covers both directions, from the snapshot's description and the live
database's objects:

- the helper databases (``<db>__sk…``: shadow, old tables, journal): CREATE, DROP,
  ALTER, INDEX, SELECT, INSERT, UPDATE;
- the live database: CREATE, DROP, ALTER, SELECT, INSERT (``RENAME TABLE`` in and out,
  ``ALTER DATABASE``, a dropped database created again), SHOW VIEW (the live views are
  compared with the snapshot's, as a backup reads them); CREATE VIEW when the snapshot
  has views; TRIGGER, CREATE ROUTINE + ALTER ROUTINE, EVENT when the snapshot or the
  live database has triggers, routines, events (dropped on the way in, created again on
  the way back);
- ``SET USER`` (MariaDB ≥ 10.5; SUPER before, ``SET_USER_ID`` on MySQL) when an object
  the cut-over or its rollback creates has a DEFINER other than the current user or its
  role. What is created is ``cutover.replaced_objects``: the live views are renamed
  aside and back, never recreated, and objects identical in the snapshot and the live
  database stay in place — neither needs anything.

Privileges come from ``SHOW GRANTS`` of the user and of its enabled roles (information_schema
shows only the user's own rows, not its roles'): global ones (``*.*``), and per grantee the
most specific database entry that matches (the exact name, else the pattern with the
longest literal start; a tie counts all of them), as the server picks them. Table-level
grants are not counted: the restore replaces every table, so they do not suffice.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import pymysql

from snapkeep.engines.mysql import scope
from snapkeep.engines.mysql.connect import (
    Connection,
    connect,
    database_exists,
    errors_as,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.cutover import replaced_objects
from snapkeep.engines.mysql.descriptions import snapshot_objects
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import PermissionDenied

ALL = "ALL PRIVILEGES"
HELPER_PRIVILEGES = ("CREATE", "DROP", "ALTER", "INDEX", "SELECT", "INSERT", "UPDATE")
LIVE_PRIVILEGES = ("CREATE", "DROP", "ALTER", "SELECT", "INSERT", "SHOW VIEW")
# A DEFINER other than oneself: SET USER (MariaDB ≥ 10.5.2), SET_USER_ID or
# SET_ANY_DEFINER (MySQL 8), SUPER (all, older servers).
DEFINER_PRIVILEGES = frozenset(["SET USER", "SET_USER_ID", "SET_ANY_DEFINER", "SUPER", ALL])

_QUOTED = r"`(?:[^`]|``)*`"
_GRANT = re.compile(rf"^GRANT (?P<privs>.+?) ON (?P<db>\*|{_QUOTED})\.(?P<tbl>\*|{_QUOTED}) TO ")
_DEFINER = re.compile(rf"^\s*CREATE\b[^`]*?\bDEFINER\s*=\s*(?P<user>{_QUOTED})"
                      rf"(?:@(?P<host>{_QUOTED}))?", re.IGNORECASE)


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`")


@dataclass(frozen=True)
class Need:
    """A privilege (``on``: a database name, or None for global) and why it is needed."""

    privilege: str
    on: str | None
    why: str


class Grants:
    """The privileges the current session holds, from its ``SHOW GRANTS`` lines."""

    def __init__(self, lines: list[str]) -> None:
        self.global_: set[str] = set()
        self.by_grantee: dict[str, list[tuple[str, set[str]]]] = {}  # grantee -> (pattern, privs)
        for line in lines:
            m = _GRANT.match(line)
            if not m or m["tbl"] != "*":
                continue  # a role grant, a routine, a table or a proxy grant
            privs = {p.strip().upper() for p in m["privs"].split(",")}
            if m["db"] == "*":
                self.global_ |= privs
            else:
                grantee = line[m.end():].split(" ", 1)[0]
                self.by_grantee.setdefault(grantee, []).append((_unquote(m["db"]), privs))

    def holds(self, privilege: str, database: str | None) -> bool:
        def has(privs: set[str]) -> bool:
            return privilege in privs or ALL in privs

        if has(self.global_) or (privilege == "SET USER" and self.global_ & DEFINER_PRIVILEGES):
            return True
        if database is None:
            return False
        return any(has(_most_specific(entries, database))
                   for entries in self.by_grantee.values())


def _pattern_regex(pattern: str) -> tuple[re.Pattern[str], int]:
    """A database grant's LIKE pattern (``_``, ``%``, ``\\`` escapes) as a regex, and the
    length of its literal start (how specific it is)."""
    out, literal, i, fixed = [], 0, 0, True
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            literal += fixed
            continue
        if c in "%_":
            out.append(".*" if c == "%" else ".")
            fixed = False
        else:
            out.append(re.escape(c))
            literal += fixed
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL), (len(pattern) + 1 if fixed else literal)


def _most_specific(entries: list[tuple[str, set[str]]], database: str) -> set[str]:
    matching = []
    for pattern, privs in entries:
        regex, rank = _pattern_regex(pattern)
        if regex.match(database):
            matching.append((rank, privs))
    if not matching:
        return set()
    best = max(rank for rank, _ in matching)
    return set().union(*(privs for rank, privs in matching if rank == best))


def session_grants(conn: Connection) -> Grants:
    lines = [r[0] for r in query_text(conn, "SHOW GRANTS")]
    for (role,) in query_text(conn, "SELECT ROLE_NAME FROM information_schema.ENABLED_ROLES "
                                    "WHERE ROLE_NAME IS NOT NULL"):
        with contextlib.suppress(pymysql.MySQLError):  # SHOW GRANTS listed it already
            lines += [r[0] for r in query_text(conn, f"SHOW GRANTS FOR {quote_ident(role)}")]
    return Grants(lines)


def definer_of(create: str) -> tuple[str, str | None] | None:
    """(user, host) of a CREATE statement's DEFINER clause (host None: a role)."""
    m = _DEFINER.match(create)
    if not m:
        return None
    return _unquote(m["user"]), _unquote(m["host"]) if m["host"] else None


def listed_objects(conn: Connection, db: str, scope: list[str] | None) -> dict[str, Any]:
    """The live triggers (on the ``scope`` tables, when given), routines and events of
    ``db`` by name and DEFINER, as information_schema lists them to a user who may not
    see their definitions — the ``previous`` of ``needs`` when those cannot be read."""
    triggers = [{"name": n, "definer": d} for n, d, t in query_text(
        conn, "SELECT TRIGGER_NAME, DEFINER, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
              "WHERE TRIGGER_SCHEMA = %s", (db,)) if scope is None or t in scope]
    if scope is not None:
        return {"triggers": triggers, "routines": [], "events": []}
    routines = [{"name": n, "definer": d} for n, d in query_text(
        conn, "SELECT ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES "
              "WHERE ROUTINE_SCHEMA = %s", (db,))]
    events = [{"name": n, "definer": d} for n, d in query_text(
        conn, "SELECT EVENT_NAME, DEFINER FROM information_schema.EVENTS "
              "WHERE EVENT_SCHEMA = %s", (db,))]
    return {"triggers": triggers, "routines": routines, "events": events}


def _definer(obj: dict[str, Any]) -> tuple[str, str | None] | None:
    if "create" in obj:
        return definer_of(obj["create"])
    value = obj.get("definer")  # information_schema's user@host (None: hidden)
    if not value:
        return None
    user, at, host = value.rpartition("@")
    return (user, host) if at else (value, None)


def needs(db: str, created: dict[str, Any], previous: dict[str, Any] | None,
          me: tuple[str, str], role: str | None) -> list[Need]:
    """Every privilege a restore into ``db`` needs: ``created``, the snapshot's objects the
    cut-over creates; ``previous``, the live ones it drops and a rollback creates again
    (None when the database does not exist; see ``cutover.replaced_objects``)."""
    out = [Need(p, h, "the restore's helper database") for h in (
        shadow_name(db), old_name(db), journal_name(db)) for p in HELPER_PRIVILEGES]
    why = "the cut-over renames tables in and out" if previous is not None else \
        "the restore creates the dropped database"
    out += [Need(p, db, why) for p in LIVE_PRIVILEGES]
    previous = previous or {}
    if created.get("views"):
        out.append(Need("CREATE VIEW", db, f"view {quote_ident(created['views'][0]['name'])} "
                                           f"of the snapshot"))
    for priv, key in (("TRIGGER", "triggers"), ("CREATE ROUTINE", "routines"),
                      ("ALTER ROUTINE", "routines"), ("EVENT", "events")):
        if created.get(key):
            out.append(Need(priv, db, f"{key[:-1]} {quote_ident(created[key][0]['name'])} of "
                                      f"the snapshot"))
        elif previous.get(key):
            out.append(Need(priv, db, f"live {key[:-1]} "
                                      f"{quote_ident(previous[key][0]['name'])}, dropped by "
                                      f"the cut-over and created again by a rollback"))
    mine = {me, (role, None)} if role else {me}
    for origin, objects in (("of the snapshot", created), ("live", previous)):
        for key in ("views", "triggers", "routines", "events"):
            for obj in objects.get(key, []):
                definer = _definer(obj)
                if definer is None or definer in mine:
                    continue
                user, host = definer
                shown = quote_ident(user) + (f"@{quote_ident(host)}" if host is not None else "")
                name = quote_ident(obj["name"])
                what = f"{key[:-1]} {name} of the snapshot" if origin != "live" else \
                    f"live {key[:-1]} {name} (a rollback creates it again)"
                return out + [Need("SET USER", None, f"{what} has DEFINER {shown}, which "
                                                     f"only SET USER may create")]
    return out


def check(conn: Connection, db: str, created: dict[str, Any], previous: dict[str, Any] | None,
          where: str) -> None:
    """Raise PermissionDenied naming each missing grant as a GRANT line and what needs it
    (``needs`` gives the arguments)."""
    (account,) = query_text(conn, "SELECT CURRENT_USER()")[0]
    (role,) = query_text(conn, "SELECT CURRENT_ROLE()")[0]
    user, _, host = str(account).rpartition("@")
    grants = session_grants(conn)
    missing: dict[tuple[str, str], Need] = {}
    for need in needs(db, created, previous, (user, host), role):
        if not grants.holds(need.privilege, need.on):
            missing.setdefault((need.privilege, _grant_target(db, need.on)), need)
    if not missing:
        return
    version = str(query_text(conn, "SELECT VERSION()")[0][0])
    lines = [f"  GRANT {_definer_privilege(version) if p == 'SET USER' else p} ON {on} "
             f"TO '{user}'@'{host}'  -- {n.why}" for (p, on), n in missing.items()]
    raise PermissionDenied(
        f"user {user!r} may not restore into {where}: the cut-over and its rollback need "
        f"privileges it lacks. Nothing was changed. Ask an administrator to run:\n"
        + "\n".join(lines))


def _grant_target(db: str, on: str | None) -> str:
    if on is None:
        return "*.*"
    if on == db:
        return f"{quote_ident(db)}.*"
    # a helper database: one pattern grant covers them all
    prefix = min((shadow_name(db), old_name(db), journal_name(db)), key=len).split("__sk")[0]
    escaped = re.sub(r"([\\_%])", r"\\\1", prefix)
    return quote_ident(escaped + "\\_\\_sk%") + ".*"


def _definer_privilege(version: str) -> str:
    if "mariadb" not in version.lower():
        return "SET_USER_ID"
    major, minor, patch = (int(x) for x in re.findall(r"\d+", version)[:3])
    return "SET USER" if (major, minor, patch) >= (10, 5, 2) else "SUPER"


def check_restore(conn: Connection, target: MySQLTarget, description: dict[str, Any]
                  ) -> None:
    """``check`` for what this restore's cut-over and its rollback would create."""
    created = snapshot_objects(description, target.database)
    previous = None
    db, within = target.database, description.get("scope")
    if database_exists(conn, db):
        conn.select_db(db)
        try:
            previous, created, _kept = replaced_objects(conn, db, created, within)
        except (pymysql.MySQLError, PermissionDenied):
            # definitions the user may not read: name the grant from what it may list
            check(conn, db, created, listed_objects(conn, db, within), target.describe())
            raise
    check(conn, db, created, previous, target.describe())


def check_restore_privileges(target: MySQLTarget, description: dict[str, Any],
                             tables: list[str] | None = None) -> None:
    """Refuse (PermissionDenied, naming each missing GRANT) a restore whose cut-over or
    rollback needs a privilege the user lacks (``privileges.py``); changes nothing."""
    if tables is not None:
        description = scope.scoped(description, tables)
    conn = connect(target, database=None, doing="checking the restore's privileges")
    try:
        with errors_as(target, "checking the restore's privileges"):
            check_restore(conn, target, description)
    finally:
        conn.close()
