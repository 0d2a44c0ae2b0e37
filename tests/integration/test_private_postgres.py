"""The private PostgreSQL of tests/helpers/postgres.py, which ``postgres_server`` starts when
no server answers at SNAPKEEP_TEST_POSTGRES: forced here, whatever this machine runs."""

from __future__ import annotations

import psycopg

from tests.helpers.postgres import INSTALL, PrivatePostgres, bindir, reachable


def test_a_private_postgres_starts_serves_and_leaves_nothing_when_stopped():
    found = bindir()
    assert found is not None, INSTALL
    server = PrivatePostgres(found).start()
    try:
        with psycopg.connect(f"{server.url}/postgres", autocommit=True) as conn:
            conn.execute('CREATE DATABASE "q"')
        with psycopg.connect(f"{server.url}/q") as conn:  # what the queue's claim runs
            conn.execute("CREATE TABLE jobs (id int PRIMARY KEY)")
            conn.execute("INSERT INTO jobs VALUES (1), (2)")
            claimed = conn.execute("SELECT id FROM jobs ORDER BY id LIMIT 1 "
                                   "FOR UPDATE SKIP LOCKED").fetchall()
        assert claimed == [(1,)]
    finally:
        server.stop()
    assert not reachable(server.url)
    assert not server.base.exists()
