"""The recoverable window on a real server: a follower archiving a private mariadbd's
binlog, real snapshots as bases, the lag measured against the server, and the lag warning
sent to a real webhook receiver (services/pitr_window.py, services/notify/binlog_lag.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.config import load_config
from snapkeep.services import environments, pitr_window
from snapkeep.services.activities import operations
from snapkeep.services.context import Context
from snapkeep.services.identity import auth, users
from snapkeep.services.notify import binlog_lag
from snapkeep.services.schedules.scheduler import tick
from tests.helpers.binlog import binlog_server, master_status
from tests.helpers.clock import ManualClock
from tests.helpers.pitr import caught_up
from tests.helpers.pitr import following as _following
from tests.helpers.shop import Cli, cli_env
from tests.helpers.sql import run
from tests.helpers.webhook import SECRET, Receiver, notifications_toml


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


def _project(tmp_path, server, extra: str = "") -> Context:
    base = tmp_path / "project"
    base.mkdir(exist_ok=True)
    (base / "webhook.secret").write_text(SECRET)
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nplan = "starter"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n'
        "point_in_time = true\nbinlog_interval = 0.3\nbinlog_lag_warning = 60\n\n" + extra)
    ctx = Context(load_config(str(base / "snapkeep.toml")))
    if not (base / "repo").exists():
        ctx.init_repository()
    return ctx


def following(ctx: Context):
    return _following(ctx, "production")


def _caught_up(ctx: Context, server) -> pitr_window.Window:
    """The window once the archive holds every event the server wrote."""
    return caught_up(ctx, "production", with_base=False)


def test_the_window_starts_at_the_snapshot_and_ends_at_the_last_archived_write(
        tmp_path, server):
    ctx = _project(tmp_path, server)
    env = ctx.config.environments["production"]
    assert "binlog:follow -e production" in pitr_window.window(ctx, env).describe()
    with following(ctx):
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (1), (2)")
        snap = operations.start_backup(ctx, env, live=True).snapshot_id
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (3)")
        w = _caught_up(ctx, server)
    (base,) = w.bases
    assert base.snapshot_id == snap and w.server_checked
    file, _pos = master_status(server)
    assert base.file == file
    now = datetime.now(UTC)
    assert w.start is not None and w.end is not None
    assert w.start <= w.end <= now and now - w.start < timedelta(minutes=5)
    assert w.start.microsecond == 0 and w.gaps == []
    assert w.describe().startswith("recoverable from ") and w.describe().endswith("(lag 0 s)")
    # environment:info's service and its JSON
    info = environments.info(ctx, env, window=True)
    assert info.point_in_time and info.recoverable == w.describe()
    assert info.window["start"] == pitr_window.iso(w.start)
    assert info.window["bases"][0]["snapshot_id"] == snap
    # the CLI: a row in the table, the fields in JSON
    cli = Cli(tmp_path / "project", cli_env())
    shown = cli.run("environment:info", "-e", "production").stdout
    assert f"recoverable from {pitr_window.iso(w.start)} to " in shown
    got = json.loads(cli.run("environment:info", "-e", "production", "--format", "json").stdout)
    assert got["window"]["start"] == pitr_window.iso(w.start)
    assert got["window"]["lag_seconds"] == 0 and got["recoverable"] == w.describe()
    # the API's environment, and GET /metrics
    users.add_user(ctx, "ada@example.com", "Ada", "ada's long password")
    users.set_project_role(ctx, "ada@example.com", "admin")
    token = auth.create_token(ctx, "ada@example.com", "tests")[1]
    api = TestClient(create_app(lambda: Context(ctx.config)),
                     headers={"Authorization": f"Bearer {token}"})
    got = api.get("/api/projects/shop/environments/production").json()
    assert got["point_in_time"] is True
    assert got["recoverable"]["start"] == pitr_window.iso(w.start)
    assert got["recoverable"]["end"] == pitr_window.iso(w.end)
    assert got["recoverable"]["summary"] == w.describe()
    metrics = api.get("/metrics").text
    assert 'snapkeep_binlog_lag_seconds{environment="production"} 0\n' in metrics
    assert (f'snapkeep_pitr_window_start_seconds{{environment="production"}} '
            f"{int(w.start.timestamp())}\n") in metrics


def test_a_lag_over_the_threshold_is_warned_once_by_webhook_and_cleared(tmp_path, server):
    with Receiver() as hook:
        ctx = _project(tmp_path, server, notifications_toml(hook.url, attempts=1, timeout=5))
        env = ctx.config.environments["production"]
        with following(ctx):
            run(server.connect(), "INSERT INTO shop.a (v) VALUES (1)")
            _caught_up(ctx, server)
        # the follower stopped; the server writes on: the archive's newest event ages
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (2)")
        clock = ManualClock(datetime.now(UTC) + timedelta(seconds=120))
        late = Context(ctx.config, clock=clock)
        w = pitr_window.window(late, env)
        assert w.server_checked and w.lag_seconds >= 120
        assert tick(late, clock(), expire=lambda c, e: None) == []  # the scheduler looks
        (call,) = hook.calls
        assert call.signed_with(SECRET)
        p = call.payload
        assert (p["environment"], p["result"], p["activity"]["type"]) == (
            "production", "failure", binlog_lag.LAG)
        assert "behind its server" in p["activity"]["error"]
        assert "binlog:follow -e production" in p["activity"]["error"]
        clock.advance(timedelta(seconds=30))
        assert binlog_lag.check(late, env) is None  # still lagging: warned once only
        assert len(hook.calls) == 1
        with following(ctx):  # the follower back: caught up, the warning cleared
            _caught_up(ctx, server)
        assert binlog_lag.check(late, env) is not None
        assert [c.payload["result"] for c in hook.calls] == ["failure", "success"]
        assert binlog_lag.check(late, env) is None and len(hook.calls) == 2
