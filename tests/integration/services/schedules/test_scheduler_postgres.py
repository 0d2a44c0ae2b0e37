"""Two schedulers sharing one PostgreSQL catalog fire each due schedule exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapkeep.catalog import Activity
from snapkeep.config import load_config
from snapkeep.ids import new_id
from snapkeep.services.context import Context
from snapkeep.services.schedules import manage as schedules
from snapkeep.services.schedules import scheduler
from tests.helpers.clock import ManualClock

T0 = datetime(2026, 11, 26, 9, 59, tzinfo=UTC)
# environment → its one schedule (None: the Pro plan's hourly one)
ENVIRONMENTS: dict[str, tuple[str, str | None]] = {
    "production": ("production", None),
    "staging": ("staging", None),
    **{f"dev{i}": ("development", cron) for i, cron in enumerate(
        ["*/5 * * * *", "*/10 * * * *", "*/15 * * * *", "0,30 * * * *", "*/20 * * * *",
         "5 * * * *", "*/5 * * * *", "*/10 * * * *"])},
}



def project(base: Path, catalog: str) -> Path:
    text = [f'[project]\nid = "p"\nplan = "pro"\ncatalog = "{catalog}"\n']
    for name, (env_type, _cron) in ENVIRONMENTS.items():
        text.append(f'[environments.{name}]\ntype = "{env_type}"\nroot = "app"\n'
                    'mounts = ["var"]\n')  # never read: the backups here are stand-ins
    path = base / "snapkeep.toml"
    path.write_text("\n".join(text))
    return path


def host(config: Path, clock: ManualClock) -> Context:
    """What one server has: its own config load and its own connections to the catalog
    (and a clock synchronised with the other server's: they share one)."""
    ctx = Context(load_config(str(config)), actor=scheduler.scheduler_actor(), clock=clock)
    assert ctx.catalog.engine.dialect.name == "postgresql"
    return ctx


def is_due(cron: str | None, minute: int) -> bool:
    """Whether ``cron`` matches the minute (a hand-written reading of the crons above)."""
    if cron is None:
        return minute == 0
    field = cron.split()[0]
    if field.startswith("*/"):
        return minute % int(field[2:]) == 0
    return minute in {int(m) for m in field.split(",")}


def test_two_schedulers_on_one_postgresql_catalog_fire_each_due_schedule_once(
        tmp_path, postgres_url):
    config = project(tmp_path, postgres_url)
    clock = ManualClock(T0)
    hosts = [host(config, clock), host(config, clock)]
    for name, (_type, cron) in ENVIRONMENTS.items():
        if cron:
            schedules.add_schedule(hosts[0], hosts[0].config.environment(name), cron, at=T0)

    fired: Counter[tuple[str, datetime]] = Counter()
    lock = threading.Lock()

    def start(ctx, env, **kw) -> Activity:
        with lock:
            fired[(env.name, ctx.clock())] += 1
        return Activity(id=new_id(), environment=env.name)

    # a tick a minute for two hours; the first (09:59) also materialises the plan schedules
    ticks = [T0 + timedelta(minutes=m) for m in range(0, 122)]
    barrier = threading.Barrier(2, timeout=30)
    failures: list[BaseException] = []

    def run(ctx: Context) -> None:
        sched = scheduler.Scheduler(ctx, start_backup=start, expire=lambda c, e: None)
        try:
            for t in ticks:
                barrier.wait()  # both schedulers tick at the same moment
                clock.t = t
                sched.tick(ctx.clock())
                barrier.wait()
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            failures.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(ctx,)) for ctx in hosts]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads) and failures == []

    expected = {(name, t) for t in ticks for name, (_type, cron) in ENVIRONMENTS.items()
                if is_due(cron, t.minute)}
    assert set(fired) == expected
    assert all(n == 1 for n in fired.values()), [k for k, n in fired.items() if n > 1]
    assert len(hosts[0].catalog.list_schedules(origin="plan")) == 2
