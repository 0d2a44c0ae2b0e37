"""``snapkeep worker``: run queued activities in this process until stopped."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from snapkeep.cli.options import load, project_options
from snapkeep.cli.render import say
from snapkeep.errors import SnapkeepError
from snapkeep.services import binlogs
from snapkeep.services.activities.lease import LEASE_SECONDS, worker_id
from snapkeep.services.activities.workers import POLL_INTERVAL, Worker, start_worker_threads
from snapkeep.services.notify import webhooks as notify


@click.command("worker")
@project_options
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
              help="Only run activities of this environment (repeatable; default: all).")
@click.option("--no-binlog-follow", is_flag=True,
              help="Do not archive the binary log of point_in_time environments here "
                   "(`snapkeep binlog:follow` or another process does).")
def worker(config_path, project, threads, once, lease, poll_interval, environments,
           no_binlog_follow) -> None:
    """Run queued activities (from the API, schedules, --no-wait) until SIGTERM or Ctrl-C.

    Without --once, it also archives the binary log of the point_in_time environments it
    serves (one follower per environment: where another runs, it waits; docs/pitr.md).

    Several workers, on several hosts, may share one PostgreSQL catalog: each activity
    runs once, one per environment at a time. On SIGTERM/SIGINT the worker claims nothing
    more and ends what it is running cleanly: stopped at its next safe point and marked
    failed, or run to its end once past its point of no return (a restore's cut-over).
    """
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


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            say(f"{signal.Signals(signum).name}: stopping after the current activity's next "
                "safe point")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


COMMANDS = [worker]
