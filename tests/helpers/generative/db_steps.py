"""The database steps the generative round trips share: which features the server can
have, loading a drawn schema, applying drawn damage (each counted in features.py's
ACCEPTED/REFUSED)."""

from __future__ import annotations

import pymysql
from hypothesis import assume, note

from tests.helpers.generative.features import ACCEPTED, DB_FEATURES, REASONS, REFUSED, enabled
from tests.helpers.generative.schema_gen import PRELUDE


def db_features(server) -> frozenset[str]:
    on = enabled(DB_FEATURES)
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@lower_case_table_names")
            (lctn,) = cur.fetchone()
    finally:
        conn.close()
    # `t` and `T` are two tables only where names are case-sensitive (0, Linux's default)
    return on if int(lctn) == 0 else on - {"case_distinct_names"}


def load_schema(conn, schema) -> None:
    """Run the schema's statements; discard the example if the server refuses one."""
    with conn.cursor() as cur:
        for kind, sql in schema.statements:
            try:
                cur.execute(sql)
            except pymysql.MySQLError as e:
                REFUSED[kind] += 1
                REASONS[f"{kind} {e.args[0]}: {str(e.args[-1])[:60]}"
                        + (f" in {sql[:400]!r}" if e.args[0] == 1064 else "")] += 1
                note(f"refused ({kind}): {e} in {sql[:300]}")
                assume(False)
            ACCEPTED[kind] += 1


def damage_db(conn, damage) -> None:
    with conn.cursor() as cur:
        for sql in damage.statements:
            try:
                cur.execute(sql)
                ACCEPTED["damage"] += 1
            except pymysql.MySQLError as e:  # damage that cannot happen is no damage
                REFUSED["damage"] += 1
                note(f"damage skipped: {e} in {sql[:200]}")


def damage_in_new_session(server, db: str, damage) -> None:
    """``damage`` applied to ``db`` on a connection of its own, with the schema's session
    settings (PRELUDE), as another client of the live database would."""
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            for sql in PRELUDE:
                cur.execute(sql)
        damage_db(conn, damage)
    finally:
        conn.close()
