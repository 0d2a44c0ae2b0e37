"""``snapkeep serve`` as an operator runs it: it starts, says where, warns about TLS off
loopback, refuses a taken port in one line, and stops cleanly on SIGTERM."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from snapkeep.services.schedules import manage as schedules
from tests.helpers.server import Server, TeamProject, ndjson, wait_for
from tests.helpers.shop import cli_env

P = "/api/projects/team"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TeamProject]:
    p = TeamProject(tmp_path, None)
    yield p
    p.release()
    p.ctx.catalog.engine.dispose()


def test_sigterm_ends_the_running_activity_at_its_safe_point_and_stops(project: TeamProject,
                                                                       tmp_path: Path):
    server = Server(project.config, tmp_path, "--workers", "1", "--no-scheduler")
    try:
        with server.http(project.tokens["project_admin"]) as admin:
            started = admin.post(f"{P}/environments/held/backups", json={"safe": True}).json()
            wait_for(lambda: project.paused("held"), "the backup to pause")
            followed: list[str] = []

            def follow() -> None:
                with admin.stream("GET", started["links"]["log"]) as stream:
                    followed.extend(stream.iter_lines())

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            wait_for(lambda: followed, "the log stream to start")
            server.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "Stopping: waiting for the running activities" in server.log(),
                     "the server to stop taking requests and wait for its worker")
            reader.join(timeout=30)
            assert not reader.is_alive(), "the log stream did not end on SIGTERM"
            assert not any('"sealed"' in ln for ln in followed)  # cut, not ended
            project.release()  # the pause command returns; the worker sees the stop
            assert server.terminate() == 0, server.log()
    finally:
        server.kill()
    a = project.ctx.catalog.get_activity(started["id"])
    assert (a.state, a.result) == ("complete", "failure")
    assert "the worker running it was stopped" in a.error
    assert not project.paused("held")  # resumed on the way out
    assert project.ctx.catalog.running_activity("held") is None
    assert server.err.read_text().rstrip().endswith("Server stopped.")
    assert "Traceback" not in server.log()


def test_the_first_line_says_what_is_served_and_the_log_lines_are_json(project, tmp_path):
    server = Server(project.config, tmp_path, "--workers", "1")
    try:
        first = server.log().splitlines()[0]
        assert first.startswith(f"Serving project team on {server.url} (API at /api")
        assert "1 worker thread(s); scheduler on" in first
        assert "warning" not in server.log()
        with server.http(project.tokens["project_admin"]) as admin:
            started = admin.post(f"{P}/environments/held/backups", json={"safe": False})
            lines = ndjson(admin.get(started.json()["links"]["log"]).iter_lines())
        assert lines[-1]["sealed"] is True and lines[-1]["result"] == "success"
    finally:
        assert server.terminate() == 0


def test_a_host_beyond_loopback_is_served_with_a_warning_to_put_tls_in_front(project,
                                                                             tmp_path):
    server = Server(project.config, tmp_path, "--host", "0.0.0.0", "--workers", "0",
                    "--no-scheduler")
    try:
        assert "listening on 0.0.0.0, beyond this machine: terminate TLS in a reverse proxy" \
            in server.log()
        assert httpx.get(f"{server.url}/api/health", timeout=10).json() == {"status": "ok"}
    finally:
        assert server.terminate() == 0


def test_a_taken_port_is_refused_in_one_line(project: TeamProject):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "snapkeep", "serve", "--config",
                              str(project.config), "--port", str(port)], env=cli_env(),
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(
        f"snapkeep: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in res.stderr


@pytest.mark.skipif(importlib.util.find_spec("snapkeep.web") is None,
                    reason="the web console package is not there")
def test_the_web_console_is_served_next_to_the_api(project, tmp_path):
    server = Server(project.config, tmp_path, "--workers", "0", "--no-scheduler")
    try:
        assert "web console at /" in server.log()
        page = httpx.get(f"{server.url}/signin", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        # the API's JSON errors stay under /api: a token first (told before the path is
        # looked up, so a caller without one learns nothing), then the missing path
        assert httpx.get(f"{server.url}/api/nothing", timeout=30).json()["error"]["status"] \
            == 401
        with server.http(project.tokens["viewer"]) as http:
            assert http.get("/api/nothing").json()["error"]["status"] == 404
    finally:
        assert server.terminate() == 0


def test_activity_log_over_the_api_follows_an_activity_across_a_server_restart(
        project: TeamProject, tmp_path: Path):
    first = Server(project.config, tmp_path, "--workers", "1", "--no-scheduler")
    port = first.url.rsplit(":", 1)[1]
    second = None
    try:
        with first.http(project.tokens["project_admin"]) as admin:
            started = admin.post(f"{P}/environments/held/backups", json={"safe": True}).json()
        wait_for(lambda: project.paused("held"), "the backup to pause")
        follower = subprocess.Popen(
            [sys.executable, "-m", "snapkeep", "activity:log", started["id"]],
            env={**cli_env(), "SNAPKEEP_URL": first.url, "XDG_CONFIG_HOME": str(tmp_path),
                 "SNAPKEEP_TOKEN": project.tokens["project_admin"]},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: "GET /api/projects/team/activities/" in first.out.read_text(),
                     "the CLI to open the log stream")
            first.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "Stopping: waiting" in first.err.read_text(), "the first to stop")
            project.release()
            assert first.terminate() == 0
            (tmp_path / "second").mkdir()
            second = Server(project.config, tmp_path / "second", "--port", port,
                            "--workers", "0", "--no-scheduler")
            out, err = follower.communicate(timeout=90)
        finally:
            if follower.poll() is None:
                follower.kill()
    finally:
        first.kill()
        if second is not None:
            assert second.terminate() == 0
    assert follower.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "Creating backup of held"
    assert lines[-1].startswith("Failed: the worker running it was stopped")
    assert len(lines) == len(set(lines))  # nothing printed twice across the reconnect


def test_with_no_worker_threads_a_due_schedule_waits_for_a_worker_process(project, tmp_path):
    """`serve --workers 0` queues the scheduler's backups for `snapkeep worker` processes:
    it never starts one on the server's own host, where the mounts may not be (issue 19)."""
    project.release()  # the pause command of `held` returns at once
    held = project.ctx.config.environment("held")
    schedules.add_schedule(project.ctx, held, "0 * * * *", live=False,
                           at=datetime.now(UTC) - timedelta(hours=2))
    server = Server(project.config, tmp_path, "--workers", "0")
    try:
        (queued,) = wait_for(lambda: project.ctx.catalog.list_activities("held"),
                             "the scheduler to queue the backup")
        assert queued.actor == "the scheduler" and queued.state == "pending"
        worker = subprocess.Popen(
            [sys.executable, "-m", "snapkeep", "worker", "--config", str(project.config),
             "--once", "-e", "held"], env=cli_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        done = project.ctx.catalog.get_activity(queued.id)
        assert (done.state, done.result) == ("complete", "success"), done.error
        # run by the worker process, not by anything the server started
        assert done.worker.split(":")[1] == str(worker.pid)
        assert len(project.ctx.catalog.list_activities("held")) == 1  # and only once
    finally:
        assert server.terminate() == 0
