"""A writer of orders for snapshots taken under continuous writes: each order and its
items in one transaction with a counter row bumped (InnoDB), then the order logged in a
non-transactional table (``order_log``) — what one consistent point must keep together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pymysql


def order_writer(connect: Callable[[], Any], stop: threading.Event, written: list[object],
                 order_insert: str, items: int) -> Callable[[], None]:
    """A thread target writing orders until ``stop``: each written order's id is appended
    to ``written``, or the error that ended it (``repr``), for the test to show."""
    values = ", ".join(f"(%s, {n})" for n in range(1, items + 1))

    def write() -> None:
        c = connect()
        try:
            with c.cursor() as cur:
                while not stop.is_set():
                    cur.execute("BEGIN")
                    cur.execute(order_insert)
                    oid = cur.lastrowid
                    cur.execute(f"INSERT INTO items (order_id, n) VALUES {values}",
                                (oid,) * items)
                    cur.execute("UPDATE counter SET n = n + 1 WHERE name = 'orders'")
                    cur.execute("COMMIT")
                    cur.execute("INSERT INTO order_log VALUES (%s)", (oid,))
                    written.append(oid)
        except pymysql.MySQLError as e:
            written.append(repr(e))
        finally:
            c.close()

    return write
