"""``prepare_restore_at`` on a real server's binlog, without a follower: the base built in
the shadow, the binlog replayed up to a time, the swap (docs/pitr.md). The pieces are the
server's own file, so the engine is tested apart from the archive."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from snapkeep.engines.mysql import MySQLTarget, ReplayPiece, ReplayStop, dump_database
from snapkeep.engines.mysql.binlog_replay import replay as fast_replay
from snapkeep.engines.mysql.binlog_replay_tool import replay as stock_replay
from snapkeep.engines.mysql.pitr import prepare_restore_at
from snapkeep.errors import PermissionDenied, ServerSetupError, UsageError
from tests.helpers.binlog import binlog_server, file_bytes, master_status
from tests.helpers.dbstate import assert_same, databases, db_state, target_for
from tests.helpers.recording import Recorder
from tests.helpers.sql import run


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    yield s
    s.stop()


def _next_second() -> datetime:
    now = time.time()
    t = int(now) + 1
    time.sleep(t - now + 0.05)
    return datetime.fromtimestamp(t, UTC)


def _pieces(server) -> list[ReplayPiece]:
    file, end = master_status(server)
    data = file_bytes(server, file)[4:end]
    return [ReplayPiece(file, 4, end, lambda: (data,))]


# Each replayer refuses a user without the grants it needs before anything is applied:
# the fast one (the default) BINLOG REPLAY, the stock mariadb-binlog | mariadb both.
REFUSALS = [
    pytest.param(fast_replay, ServerSetupError, "GRANT BINLOG REPLAY", id="fast"),
    pytest.param(stock_replay, PermissionDenied, "BINLOG ADMIN and BINLOG REPLAY",
                 id="stock"),
]


@pytest.mark.parametrize(("replayer", "error", "named"), REFUSALS)
def test_the_replay_needs_its_privileges_and_a_refusal_leaves_nothing(server, repo, replayer,
                                                                      error, named):
    conn = server.connect()
    run(conn, "CREATE DATABASE pt", "USE pt",
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "INSERT INTO a (v) VALUES (1), (2)",
        "CREATE USER 'restorer'@'127.0.0.1' IDENTIFIED BY 'pw'",
        "GRANT ALL ON `pt`.* TO 'restorer'@'127.0.0.1'",
        r"GRANT ALL ON `pt\_\_sk%`.* TO 'restorer'@'127.0.0.1'")
    d = dump_database(target_for(server, "pt"), repo, Recorder())
    run(conn, "USE pt", "INSERT INTO a (v) VALUES (3)", "UPDATE a SET v = 20 WHERE id = 2")
    t = _next_second()
    at_t = db_state(conn, "pt")
    run(conn, "USE pt", "DELETE FROM a")
    after = db_state(conn, "pt")
    before_dbs = databases(conn)
    limited = MySQLTarget(server.host, server.port, "restorer", "pw", "pt")
    with pytest.raises(error, match=named) as e:
        prepare_restore_at(limited, d, repo, Recorder(), pieces=_pieces(server),
                           stop=ReplayStop(before_time=t), replayer=replayer)
    assert "\n" not in str(e.value)
    assert databases(conn) == before_dbs  # the shadow was dropped
    assert_same(db_state(conn, "pt"), after, "after the refusal")
    run(conn, "GRANT BINLOG ADMIN, BINLOG REPLAY ON *.* TO 'restorer'@'127.0.0.1'")
    restore, result = prepare_restore_at(limited, d, repo, Recorder(), pieces=_pieces(server),
                                         stop=ReplayStop(before_time=t), replayer=replayer)
    assert result.reached_stop and result.transactions == 2
    restore.swap()
    restore.finish()
    assert_same(db_state(conn, "pt"), at_t, "--at t as the restorer")


def test_an_archive_ending_before_the_point_is_refused_before_any_replay(server, repo):
    conn = server.connect()
    run(conn, "CREATE DATABASE pe", "USE pe",
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
    d = dump_database(target_for(server, "pe"), repo, Recorder())
    run(conn, "USE pe", "INSERT INTO a (v) VALUES (1)")
    before, before_dbs = db_state(conn, "pe"), databases(conn)
    t = _next_second()  # nothing at or after it in the binlog
    with pytest.raises(UsageError, match="archive ends before the point"):
        prepare_restore_at(target_for(server, "pe"), d, repo, Recorder(),
                           pieces=_pieces(server), stop=ReplayStop(before_time=t))
    assert databases(conn) == before_dbs
    assert_same(db_state(conn, "pe"), before, "after the refusal")
