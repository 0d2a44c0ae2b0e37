"""``snapkeep worker``: run queued activities in this process until stopped."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import click

from snapkeep.cli.options import load
from snapkeep.cli.render import say
from snapkeep.errors import SnapkeepError, UsageError
from snapkeep.services import binlogs, projects
from snapkeep.services.activities.lease import LEASE_SECONDS, worker_id
from snapkeep.services.activities.workers import POLL_INTERVAL, Worker, start_worker_threads
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify


@click.command("worker")
@click.option("--config", "config_paths", multiple=True, metavar="PATH",
              help="snapkeep.toml to serve (default: found from the working directory; "
                   "SNAPKEEP_CONFIG). Repeat it, or name a directory of configs, to run the "
                   "activities of several projects: they must share one `catalog`.")
@click.option("-p", "--project", metavar="ID",
              help="The project ID; checked against snapkeep.toml (one config only).")
@click.option("--threads", "-n", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Activities run at once (each on its own environment).")
@click.option("--once", is_flag=True, help="Run at most one queued activity, then exit.")
@click.option("--lease", type=click.FloatRange(min=1), default=LEASE_SECONDS,
              show_default=True, metavar="SECONDS",
              help="How long a claimed activity stays ours without a renewal; renewed every "
                   "third of it. A worker that dies is noticed after this long.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=POLL_INTERVAL,
              show_default=True, metavar="SECONDS", help="Pause between looks at an empty queue.")
@click.option("-e", "--environment", "environments", multiple=True, metavar="NAME",
              help="Only run activities of this environment (repeatable; default: all). "
                   "With several projects: PROJECT/ENV, or ENV for every project that has "
                   "it.")
@click.option("--no-binlog-follow", is_flag=True,
              help="Do not archive the binary log of point_in_time environments here "
                   "(`snapkeep binlog:follow` or another process does).")
def worker(config_paths, project, threads, once, lease, poll_interval, environments,
           no_binlog_follow) -> None:
    """Run queued activities (from the API, schedules, --no-wait) until SIGTERM or Ctrl-C.

    Without --once, it also archives the binary log of the point_in_time environments it
    serves (one follower per environment: where another runs, it waits; docs/pitr.md).

    Several workers, on several hosts, may share one PostgreSQL catalog: each activity
    runs once, one per environment at a time. On SIGTERM/SIGINT the worker claims nothing
    more and ends what it is running cleanly: stopped at its next safe point and marked
    failed, or run to its end once past its point of no return (a restore's cut-over).

    With several configs (`--config` repeated, or a directory of them) it serves every
    project on their shared catalog: `--threads` each, and the binlog archiving and
    webhook retries of each.
    """
    paths = list(config_paths) or [os.environ.get("SNAPKEEP_CONFIG") or ""]
    if len(paths) > 1 or os.path.isdir(paths[0]):
        if project:
            raise UsageError("-p/--project checks a single config; drop it with several")
        _several(projects.load_projects(paths), list(environments), threads=threads,
                 once=once, lease=lease, poll_interval=poll_interval,
                 binlog_follow=not no_binlog_follow)
        return
    config_path = paths[0] or None
    ctx = load(config_path, project)
    envs = list(environments) or None
    stop = threading.Event()
    if once:
        w = Worker(ctx, lease_seconds=lease, environments=envs, stop=stop, report=say)
        _on_signals(stop)
        a = w.run_once()
        if a is None:
            say("No queued activity to run.")
        elif a.result == "failure":
            raise SnapkeepError(f"activity {a.id} {a.state}: {a.error}")
        return
    host_pid = worker_id(ctx, 0).rsplit(":", 1)[0]
    follow = [] if no_binlog_follow else [e.name for e in binlogs.followed(ctx, envs)]
    say(f"Worker {host_pid} running {threads} thread(s) on catalog {ctx.catalog.description}; "
        f"binlog archiving {', '.join(follow) if follow else 'off'}; "
        "SIGTERM or Ctrl-C stops it.")
    pool = start_worker_threads(lambda: load(config_path, project), threads, stop,
                                lease_seconds=lease, poll_interval=poll_interval,
                                environments=envs, report=say)
    if ctx.config.webhook is not None:  # retries of webhook calls, here as in `serve`
        threading.Thread(target=notify.deliver_until, args=(load(config_path, project), stop),
                         name="notifications", daemon=True).start()
    pool += binlogs.follow_in_background(lambda: load(config_path, project), follow, stop,
                                         say)
    _on_signals(stop)
    while any(t.is_alive() for t in pool):
        for t in pool:
            t.join(timeout=0.5)  # short joins: the main thread must get to run the handler
    say("Worker stopped.")


def _several(contexts: list[Context], names: list[str], *, threads: int, once: bool,
             lease: float, poll_interval: float, binlog_follow: bool) -> None:
    """``worker`` for several projects on one catalog: per project what one runs."""
    chosen = projects.environments_by_project(contexts, names)
    served = [ctx for ctx in contexts if ctx.config.id in chosen]
    stop = threading.Event()
    if once:
        _on_signals(stop)
        for ctx in served:
            a = Worker(ctx, lease_seconds=lease, environments=chosen[ctx.config.id],
                       stop=stop, report=say).run_once()
            if a is not None:
                if a.result == "failure":
                    raise SnapkeepError(f"activity {a.id} {a.state}: {a.error}")
                return
        say("No queued activity to run.")
        return
    pool: list[threading.Thread] = []
    follows = []
    for ctx in served:
        envs = chosen[ctx.config.id]
        # each thread a Context of its own (its repository) on the one shared catalog
        load_one = ctx.with_own_repository
        pool += start_worker_threads(load_one, threads, stop, lease_seconds=lease,
                                     poll_interval=poll_interval, environments=envs,
                                     report=say)
        if ctx.config.webhook is not None:
            threading.Thread(target=notify.deliver_until, args=(load_one(), stop),
                             name="notifications", daemon=True).start()
        follow = [e.name for e in binlogs.followed(ctx, envs)] if binlog_follow else []
        follows += [f"{ctx.config.id}/{name}" for name in follow]
        pool += binlogs.follow_in_background(load_one, follow, stop, say)
    host_pid = worker_id(served[0]).rsplit(":", 1)[0]
    say(f"Worker {host_pid} running {threads} thread(s) for each of "
        f"{', '.join(ctx.config.id for ctx in served)} on catalog "
        f"{served[0].catalog.description}; binlog archiving "
        f"{', '.join(follows) if follows else 'off'}; SIGTERM or Ctrl-C stops it.")
    _on_signals(stop)
    while any(t.is_alive() for t in pool):
        for t in pool:
            t.join(timeout=0.5)  # short joins: the main thread must get to run the handler
    say("Worker stopped.")


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            say(f"{signal.Signals(signum).name}: stopping after the current activity's next "
                "safe point")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


COMMANDS = [worker]
