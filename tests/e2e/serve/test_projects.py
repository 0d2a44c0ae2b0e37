"""``snapkeep serve`` with two configs (#19): two projects, each with an environment called
``staging``, on one PostgreSQL catalog behind one server. A backup queued in each runs on
that project's worker thread at once (neither waits for, nor is refused because of, the
other's), each lists only its own snapshots, and ``/api/projects`` names both. One
``snapkeep worker`` runs both projects' queued activities."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime

from snapkeep.policy import local_operator
from snapkeep.services import projects
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth, users
from tests.helpers.clock import ManualClock
from tests.helpers.project_files import project_on_catalog
from tests.helpers.server import Server, wait_activity, wait_for
from tests.helpers.shop import cli_env


def test_one_server_two_projects_one_catalog(tmp_path, postgres_url):
    clock = ManualClock(datetime.now(UTC))
    configs = []
    for pid in ("shop", "shop2"):
        ctx = project_on_catalog(tmp_path / pid, pid, postgres_url, clock)
        configs.append(ctx.config.path)
        ctx.catalog.dispose()
    shop, shop2 = projects.load_projects([str(p) for p in configs])
    shop.actor = shop2.actor = local_operator()
    users.add_user(shop, "ann@example.org", "Ann", project_role="admin")
    users.set_project_role(shop2, "ann@example.org", "admin")
    token = auth.create_token(shop, "ann@example.org")[1]
    shop.catalog.dispose()

    server = Server(configs[0], tmp_path, "--config", str(configs[1]), "--workers", "1",
                    "--no-scheduler", "--no-binlog-follow")
    try:
        assert "Serving projects shop, shop2" in server.log()
        with server.http(token) as http:
            assert [p["id"] for p in http.get("/api/projects").json()] == ["shop", "shop2"]
            queued = {}
            for pid in ("shop", "shop2"):
                r = http.post(f"/api/projects/{pid}/environments/staging/backups",
                              json={"safe": True})
                assert r.status_code == 202, r.text
                queued[pid] = r.json()
            done = {pid: wait_activity(http, a) for pid, a in queued.items()}
            for pid, a in done.items():
                assert a["result"] == "success", (pid, a)
                listed = http.get(f"/api/projects/{pid}/environments/staging/backups").json()
                assert [s["id"] for s in listed] == [a["snapshot_id"]]
    finally:
        server.terminate()


def _two_projects(tmp_path, catalog: str) -> tuple[list, list]:
    clock = ManualClock(datetime.now(UTC))
    made = [project_on_catalog(tmp_path / pid, pid, catalog, clock) for pid in ("shop", "shop2")]
    for ctx in made:
        ctx.catalog.dispose()
    contexts = projects.load_projects([str(ctx.config.path) for ctx in made])
    for ctx in contexts:
        ctx.actor = local_operator()
    return [ctx.config.path for ctx in made], contexts


def _worker(configs, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snapkeep", "worker", "--poll-interval", "0.1",
           "--no-binlog-follow"]
    for path in configs:
        cmd += ["--config", str(path)]
    return subprocess.Popen([*cmd, *args], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_one_worker_runs_the_activities_of_two_projects(tmp_path, postgres_url):
    configs, (shop, shop2) = _two_projects(tmp_path, postgres_url)
    queued = [operations.start_backup(ctx, ctx.config.environment("staging"), live=True,
                                      queue=True) for ctx in (shop, shop2)]
    proc = _worker(configs)
    try:
        for ctx, a in zip((shop, shop2), queued, strict=True):
            wait_for(lambda c=ctx, a=a: (c.catalog.get_activity(a.id) or a).state == "complete",
                     f"{ctx.config.id}'s backup to end", 120)
            done = ctx.catalog.get_activity(a.id)
            assert done is not None and done.result == "success", done
            assert ctx.catalog.snapshot_ids() == {done.snapshot_id}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        shop.catalog.dispose()
    assert "for each of shop, shop2" in err, err


def test_a_worker_of_several_projects_takes_project_slash_environment(tmp_path, postgres_url):
    configs, (shop, shop2) = _two_projects(tmp_path, postgres_url)
    bad = _worker(configs, "-e", "stagingg")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode != 0 and "no served project (shop, shop2)" in err, err

    queued = [operations.start_backup(ctx, ctx.config.environment("staging"), live=True,
                                      queue=True) for ctx in (shop, shop2)]
    once = _worker(configs, "--once", "-e", "shop2/staging")
    _, err = once.communicate(timeout=120)
    assert once.returncode == 0, err
    try:
        assert shop2.catalog.get_activity(queued[1].id).result == "success"
        assert shop.catalog.get_activity(queued[0].id).state == "pending"  # not shop's
    finally:
        shop.catalog.dispose()
