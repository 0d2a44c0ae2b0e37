"""The private MariaDB server used by the tests."""

from __future__ import annotations

import subprocess

from snapkeep.sandbox import PrivateMariaDB


def test_the_session_server_keeps_stock_defaults_and_accepts_local_infile(mariadb):
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT @@character_set_server, @@local_infile, @@event_scheduler, "
                    "@@log_bin")
        assert cur.fetchone() == ("latin1", 1, "OFF", 0)
    assert mariadb.url("shop") == f"mysql://root@127.0.0.1:{mariadb.port}/shop"
    res = subprocess.run([*mariadb.client_args(), "-N", "-e", "SELECT 1"], capture_output=True,
                         text=True, check=True)
    assert res.stdout.strip() == "1"


def test_a_server_can_be_killed_and_started_again_on_its_datadir(tmp_path):
    server = PrivateMariaDB(tmp_path)
    with server:
        first_pid = server.pid
        server.connect().cursor().execute("CREATE DATABASE kept")
        server.kill()
        assert server.pid is None
        server.start()
        assert server.pid != first_pid
        with server.connect().cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'kept'")
            assert cur.fetchall() == (("kept",),)
    assert server.pid is None
