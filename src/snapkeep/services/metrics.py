"""What ``GET /metrics`` reports: per environment (those the asker may read) and for the
project, computed from the catalog's aggregates and the repository's own index.

Counters come from the catalog, so they survive restarts and agree across servers that
share it. Known label combinations are reported as 0 before they first happen, so
``increase()`` sees the first failure. The repository's size is the sum of its packs'
sizes from its index (no listing of the data itself), cached for ``REPOSITORY_TTL``
seconds. Rendering in the Prometheus text format is the API's job (api/routers/metrics.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from snapkeep import __version__
from snapkeep.errors import SnapkeepError
from snapkeep.policy import Action, may
from snapkeep.services.activities.info import BACKUP, DELETE, EXPIRE, RESTORE
from snapkeep.services.context import Context

REPOSITORY_TTL = 60.0  # seconds the repository's size is reused between scrapes
TYPES = (BACKUP, RESTORE, DELETE, EXPIRE)
RESULTS = ("success", "failure", "cancelled")
LAST_SUCCESS_KINDS = ("backup", "restore")  # always reported (0: never)
NOTIFICATION_STATES = ("pending", "failed", "delivered")

log = logging.getLogger("snapkeep.metrics")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float
    suffix: str = ""  # "_sum" / "_count" of a summary


@dataclass
class Family:
    """One metric: ``type`` is gauge, counter or summary."""

    name: str
    type: str
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append(Sample(tuple(labels.items()), value, suffix))


def kind(activity_type: str) -> str:
    """``environment.backup`` → ``backup``; ``environment.backup.delete`` → ``backup_delete``."""
    return activity_type.removeprefix("environment.").replace(".", "_")


def readable_environments(ctx: Context) -> list[str]:
    return sorted(e for e in ctx.config.environments
                  if may(ctx.actor, e, Action.ACTIVITY_READ))


def collect_projects(contexts: list[Context]) -> list[Family]:
    """Every metric of every project in ``contexts`` (each acting as the asker, with their
    roles there), each sample labelled with its ``project``, the families of one name
    merged (Prometheus wants each family once)."""
    merged: dict[str, Family] = {}
    for ctx in contexts:
        for f in collect(ctx):
            into = merged.setdefault(f.name, Family(f.name, f.type, f.help))
            for s in f.samples:
                labels = s.labels if any(k == "project" for k, _ in s.labels) else \
                    (("project", ctx.config.id), *s.labels)
                into.samples.append(Sample(labels, s.value, s.suffix))
    return list(merged.values())


def collect(ctx: Context) -> list[Family]:
    """Every metric, for the environments ``ctx.actor`` may read."""
    envs = readable_environments(ctx)
    shown = set(envs)
    cat = ctx.catalog
    out = [_info(ctx)]
    out += _snapshots(cat.snapshot_totals(), envs, shown)
    out += _activities(cat.activity_counts(), envs, shown)
    out.append(_durations(cat.activity_durations(), shown))
    out.append(_last_success(cat.last_successes(), envs, shown))
    out += _repository(ctx)
    if ctx.config.replicas and envs:
        out += _replicas(ctx)
    out += _point_in_time(ctx, envs)
    deliveries = Family("snapkeep_webhook_deliveries", "gauge",
                        "Webhook notifications in the outbox, by state (failed: given up "
                        "after every attempt).")
    counts = cat.notification_counts()
    for state in NOTIFICATION_STATES:
        deliveries.add(counts.get(state, 0), state=state)
    out.append(deliveries)
    return out


def _info(ctx: Context) -> Family:
    f = Family("snapkeep_info", "gauge", "The project this server serves, and its version.")
    f.add(1, project=ctx.config.id, version=__version__)
    return f


def _snapshots(totals: list[tuple[str, int, int, int]], envs: list[str],
               shown: set[str]) -> list[Family]:
    count = Family("snapkeep_snapshots", "gauge", "Snapshots stored, per environment.")
    size = Family("snapkeep_snapshot_bytes", "gauge",
                  "Data held by the stored snapshots (before deduplication), per environment.")
    added = Family("snapkeep_snapshot_added_bytes", "gauge",
                   "Bytes the stored snapshots added to the repository, per environment.")
    by_env = {env: (n, s, a) for env, n, s, a in totals if env in shown}
    for env in envs:
        n, s, a = by_env.get(env, (0, 0, 0))
        count.add(n, environment=env)
        size.add(s, environment=env)
        added.add(a, environment=env)
    return [count, size, added]


def _activities(counts: list[tuple[str, str, str, str | None, int]], envs: list[str],
                shown: set[str]) -> list[Family]:
    ended: dict[tuple[str, str, str], int] = {}
    live: dict[tuple[str, str], int] = {}
    for env, type_, state, result, n in counts:
        if env not in shown:
            continue
        if state == "cancelled":
            ended[env, type_, "cancelled"] = ended.get((env, type_, "cancelled"), 0) + n
        elif state == "complete" and result in ("success", "failure"):
            ended[env, type_, result] = ended.get((env, type_, result), 0) + n
        elif state in ("pending", "in_progress"):
            live[env, state] = live.get((env, state), 0) + n
    total = Family("snapkeep_activities_total", "counter",
                   "Activities ended, by environment, type and result (success, failure, "
                   "cancelled).")
    failed = Family("snapkeep_activities_failed_total", "counter",
                    "Activities that failed (not counting cancelled ones), by environment and "
                    "type: the same as snapkeep_activities_total{result=\"failure\"}.")
    running = Family("snapkeep_activities", "gauge",
                     "Activities waiting (pending) or running (in_progress), per environment.")
    types = sorted({*TYPES, *(t for _e, t, _r in ended)})
    for env in envs:
        for type_ in types:
            for result in RESULTS:
                total.add(ended.get((env, type_, result), 0), environment=env, type=type_,
                          result=result)
            failed.add(ended.get((env, type_, "failure"), 0), environment=env, type=type_)
        for state in ("pending", "in_progress"):
            running.add(live.get((env, state), 0), environment=env, state=state)
    return [total, failed, running]


def _durations(rows: list[tuple[str, str, int, float]], shown: set[str]) -> Family:
    f = Family("snapkeep_activity_duration_seconds", "summary",
               "How long ended activities ran (from start to end), by environment and type.")
    for env, type_, n, seconds in sorted(rows):
        if env in shown:
            f.add(seconds, "_sum", environment=env, type=type_)
            f.add(n, "_count", environment=env, type=type_)
    return f


def _last_success(rows: list, envs: list[str], shown: set[str]) -> Family:
    f = Family("snapkeep_last_success_timestamp_seconds", "gauge",
               "When the last successful activity of each kind ended (unix seconds; 0: "
               "never), per environment. Alert on time() - this > 86400 for kind=\"backup\".")
    last: dict[tuple[str, str], float] = {}
    for env, type_, at in rows:
        if env in shown:
            last[env, kind(type_)] = at.timestamp()
    kinds = sorted({*LAST_SUCCESS_KINDS, *(k for _e, k in last)})
    for env in envs:
        for k in kinds:
            f.add(last.get((env, k), 0), environment=env, kind=k)
    return f


def _point_in_time(ctx: Context, envs: list[str]) -> list[Family]:
    """Per point-in-time environment: the archive's lag and the recoverable window
    (services/pitr_window.py; its records are read once per process)."""
    from snapkeep.services import pitr_window  # only projects with point_in_time pay

    pitr = [e for e in envs if ctx.config.environments[e].point_in_time]
    if not pitr:
        return []
    lag = Family("snapkeep_binlog_lag_seconds", "gauge",
                 "How far the binlog archive is behind the server: 0 when every event the "
                 "server wrote is archived, else the age of the newest archived event "
                 "(absent: nothing archived yet).")
    start = Family("snapkeep_pitr_window_start_seconds", "gauge",
                   "The earliest time a point-in-time restore reaches (unix seconds; 0: no "
                   "window).")
    end = Family("snapkeep_pitr_window_end_seconds", "gauge",
                 "The last archived binlog event's time (unix seconds; 0: none).")
    for name in pitr:
        try:
            w = pitr_window.window(ctx, ctx.config.environments[name])
        except SnapkeepError as e:
            log.warning("metrics: cannot read the recoverable window of %s: %s", name, e)
            continue
        if w.lag_seconds is not None:
            lag.add(w.lag_seconds, environment=name)
        start.add(w.start.timestamp() if w.start else 0, environment=name)
        end.add(w.end.timestamp() if w.end else 0, environment=name)
    return [lag, start, end]


_replica_cache: dict[str, tuple[float, dict]] = {}
_replica_lock = threading.Lock()


def _replicas(ctx: Context) -> list[Family]:
    """Per replica: the newest copied snapshot's age (so an alert fires when off-site
    copies fall behind) and how many it holds; its manifests read at most every
    ``REPOSITORY_TTL`` seconds. A replica that cannot be opened here is left out."""
    from snapkeep.services import replicas  # only projects with replicas pay

    key = str(ctx.config.path)
    with _replica_lock:
        cached = _replica_cache.get(key)
        if cached is None or time.monotonic() - cached[0] >= REPOSITORY_TTL:
            cached = (time.monotonic(), replicas.newest_copies(ctx))
            _replica_cache[key] = cached
    age = Family("snapkeep_replica_newest_snapshot_age_seconds", "gauge",
                 "Age of the newest snapshot a replica holds (absent: it holds none); alert "
                 "when it grows past the backup interval plus the copy's time.")
    count = Family("snapkeep_replica_snapshots", "gauge", "Snapshots a replica holds.")
    now = ctx.clock()
    for name, (newest, n) in sorted(cached[1].items()):
        if newest is not None:
            age.add(max(0.0, (now - newest).total_seconds()), replica=name)
        count.add(n, replica=name)
    return [age, count]


class _RepositoryCache:
    """The repository's size, read at most every ``REPOSITORY_TTL`` seconds per location."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, tuple[int, int]]] = {}

    def get(self, ctx: Context) -> tuple[int, int]:
        key = ctx.config.repository
        with self._lock:
            cached = self._values.get(key)
            if cached is not None and time.monotonic() - cached[0] < REPOSITORY_TTL:
                return cached[1]
            value = _pack_totals(ctx)
            self._values[key] = (time.monotonic(), value)
            return value


_repository_cache = _RepositoryCache()


def _pack_totals(ctx: Context) -> tuple[int, int]:
    """(bytes, packs) of the repository, from its index: new index files are read (one
    listing of ``index/``), the data itself is not listed."""
    return ctx.repository.stored_size()


def _repository(ctx: Context) -> list[Family]:
    try:
        size, packs = _repository_cache.get(ctx)
    except SnapkeepError as e:
        log.warning("metrics: cannot read the repository's size: %s", e)
        return []
    b = Family("snapkeep_repository_size_bytes", "gauge",
               "Bytes stored in the repository (its pack files), after deduplication and "
               f"compression; refreshed at most every {REPOSITORY_TTL:.0f} s.")
    b.add(size)
    p = Family("snapkeep_repository_packs", "gauge", "Pack files in the repository.")
    p.add(packs)
    return [b, p]
