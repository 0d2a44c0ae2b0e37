"""``GET /metrics`` on a real ``snapkeep serve``: Prometheus text that parses, numbers that
match the catalog and the repository on disk, environments filtered by the token's
roles, and 401 without a valid token."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from snapkeep.errors import ConfigError
from snapkeep.services.activities import info, operations
from snapkeep.services.activities import listing as activities
from snapkeep.services.identity import auth, users
from tests.helpers.server import Server, TeamProject

SHOP = TeamProject.SHOP
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
TYPES = ("counter", "gauge", "summary", "histogram", "untyped")


@dataclass
class Scrape:
    types: dict[str, str]
    samples: dict[tuple[str, frozenset], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name, frozenset(labels.items())]

    def labels_of(self, name: str, label: str) -> set[str]:
        return {dict(lbl)[label] for n, lbl in self.samples if n == name}


def parse(text: str) -> Scrape:
    """Text exposition format 0.0.4, strictly: every sample belongs to a family declared
    (HELP and TYPE) before it; labels and values are well formed; nothing repeats."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name) and name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in TYPES and name not in types, line
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, raw_labels, raw_value = m.groups()
            family = name if name in types else re.sub(r"_(sum|count)$", "", name)
            assert family in types and family in helped, f"undeclared: {line!r}"
            if family != name:
                assert types[family] == "summary", line
            labels: dict[str, str] = {}
            if raw_labels:
                pos = 0
                for lm in LABEL.finditer(raw_labels):
                    assert lm.start() == pos, f"bad labels: {line!r}"
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
                assert pos == len(raw_labels), f"bad labels: {line!r}"
            key = (name, frozenset(labels.items()))
            assert key not in samples, f"repeated: {line!r}"
            samples[key] = float(raw_value)
    return Scrape(types, samples)


@dataclass
class World:
    project: TeamProject
    server: Server
    held_viewer: str  # a token whose user may read `held` only

    def scrape(self, token: str) -> Scrape:
        with self.server.http(token) as http:
            r = http.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(r.text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("metrics")
    project = TeamProject(base, None)
    project.release()
    ctx = project.ctx
    config = ctx.config
    for env, n in ((SHOP, 2), ("held", 1)):
        for _ in range(n):
            operations.start_backup(ctx, config.environment(env), live=True)
    data = base / "held" / "data"
    data.rename(base / "held" / "moved")  # a backup that fails: its mount is missing
    with pytest.raises(ConfigError, match="mount data of environment held does not exist"):
        operations.start_backup(ctx, config.environment("held"), live=True)
    (base / "held" / "moved").rename(data)
    queued = operations.start_backup(ctx, config.environment(SHOP), live=True, queue=True)
    activities.cancel_activity(ctx, queued.id)
    oldest = ctx.catalog.list_snapshots(SHOP)[-1]
    operations.delete_snapshot(ctx, config.environment(SHOP), oldest.id)
    users.add_user(ctx, "held-only@example.com", "Held Only")
    users.set_environment_role(ctx, "held-only@example.com", "held", "viewer")
    held_viewer = auth.create_token(ctx, "held-only@example.com", "tests")[1]
    # no workers, no scheduler: nothing changes while the test reads
    server = Server(project.config, base, "--workers", "0", "--no-scheduler")
    try:
        yield World(project, server, held_viewer)
    finally:
        server.terminate()
        ctx.catalog.engine.dispose()


def test_metrics_parse_and_count_what_the_catalog_holds(world: World):
    m = world.scrape(world.project.tokens["project_admin"])
    cat = world.project.ctx.catalog
    envs = (SHOP, "held", "dormant")
    assert m.labels_of("snapkeep_snapshots", "environment") == set(envs)
    for env in envs:
        snaps = cat.list_snapshots(env)
        assert m.value("snapkeep_snapshots", environment=env) == len(snaps)
        assert m.value("snapkeep_snapshot_bytes", environment=env) == \
            sum(s.size_bytes for s in snaps)
    assert m.value("snapkeep_snapshots", environment=SHOP) == 1  # two taken, one deleted

    acts = cat.list_activities(limit=1000)
    ended = Counter((a.environment, a.type, "cancelled" if a.state == "cancelled" else a.result)
                    for a in acts if a.state in ("complete", "cancelled"))
    assert sum(ended.values()) == 6
    for env in envs:
        for type_ in (info.BACKUP, info.RESTORE, info.DELETE,
                      info.EXPIRE):
            for result in ("success", "failure", "cancelled"):
                assert m.value("snapkeep_activities_total", environment=env, type=type_,
                               result=result) == ended[env, type_, result], (env, type_, result)
            assert m.value("snapkeep_activities_failed_total", environment=env,
                           type=type_) == ended[env, type_, "failure"]
    assert m.value("snapkeep_activities_total", environment=SHOP, type=info.BACKUP,
                   result="cancelled") == 1
    assert m.value("snapkeep_activities", environment=SHOP, state="pending") == 0
    assert m.value("snapkeep_activities_failed_total", environment="held",
                   type=info.BACKUP) == 1

    ran = [a for a in acts if a.started_at and a.completed_at]
    for env, type_ in {(a.environment, a.type) for a in ran}:
        mine = [a for a in ran if (a.environment, a.type) == (env, type_)]
        assert m.value("snapkeep_activity_duration_seconds_count", environment=env,
                       type=type_) == len(mine)
        total = sum((a.completed_at - a.started_at).total_seconds() for a in mine)
        assert m.value("snapkeep_activity_duration_seconds_sum", environment=env,
                       type=type_) == pytest.approx(total, abs=0.01)
    assert m.types["snapkeep_activity_duration_seconds"] == "summary"
    assert m.types["snapkeep_activities_total"] == "counter"

    for env in (SHOP, "held"):
        last = max(a.completed_at for a in acts if a.environment == env
                   and a.type == info.BACKUP and a.result == "success")
        assert m.value("snapkeep_last_success_timestamp_seconds", environment=env,
                       kind="backup") == pytest.approx(last.timestamp(), abs=0.01)
    assert m.value("snapkeep_last_success_timestamp_seconds", environment="dormant",
                   kind="backup") == 0  # never: `time() - x > 86400` fires

    packs = world.project.base / ".snapkeep" / "repository" / "data"
    on_disk = [f.stat().st_size for f in packs.rglob("*") if f.is_file()]
    assert on_disk and m.value("snapkeep_repository_size_bytes") == sum(on_disk)
    assert m.value("snapkeep_repository_packs") == len(on_disk)
    for state in ("pending", "failed", "delivered"):
        assert m.value("snapkeep_webhook_deliveries", state=state) == 0
    assert m.value("snapkeep_info", project="team", version=m.labels_of(
        "snapkeep_info", "version").pop()) == 1


def test_a_token_sees_only_the_environments_its_user_may_read(world: World):
    m = world.scrape(world.held_viewer)
    for name in ("snapkeep_snapshots", "snapkeep_activities_total",
                 "snapkeep_last_success_timestamp_seconds"):
        assert m.labels_of(name, "environment") == {"held"}, name
    assert m.value("snapkeep_snapshots", environment="held") == 1


@pytest.mark.parametrize("who", [None, "revoked", "not-a-token"])
def test_metrics_without_a_valid_token_are_refused_with_401(world: World, who):
    token = world.project.tokens.get(who, who) if who else None
    with world.server.http(token) as http:
        r = http.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "snapkeep_" not in r.text
    assert "token" in r.text


def test_the_metrics_endpoint_is_in_the_openapi_document(world: World):
    with world.server.http() as http:
        doc = http.get("/api/openapi.json").json()
    assert "/metrics" in doc["paths"]
