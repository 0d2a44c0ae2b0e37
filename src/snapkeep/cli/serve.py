"""``snapkeep serve``: the API (and the web console), worker threads and the scheduler."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from snapkeep.cli.render import say
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import UsageError
from snapkeep.services import binlogs, projects
from snapkeep.services.activities import operations
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.activities.workers import start_worker_threads
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify
from snapkeep.services.schedules.scheduler import Scheduler, scheduler_actor
from snapkeep.services.transfer import upload

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("snapkeep.serve")

SHUTDOWN_GRACE = 5  # seconds open HTTP connections (log streams) get to end on SIGTERM


def _run_http(app: FastAPI, sock: socket.socket, stop: threading.Event,
              forwarded_allow_ips: str) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until SIGTERM/SIGINT; ``stop`` is set as soon
    as a signal comes, so workers and log streams end while uvicorn drains requests."""
    import uvicorn  # here: other commands do not pay for importing the server

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop.set()
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if stop.is_set():  # stopped before uvicorn caught signals itself
                self.should_exit = True
            return await super().on_tick(counter)

    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE,
                            proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
                            lifespan="off")
    Server(config).run(sockets=[sock])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a taken port is one clear line, not a traceback."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}; pick another "
                         "--port or --host") from None
    sock.set_inheritable(True)
    return sock


def _queued_backup(ctx: Context, env: EnvironmentConfig, *, live: bool, automated: bool,
                   detach: bool) -> ActivityInfo:
    """The scheduler's backups are queued for workers — this server's threads or
    `snapkeep worker` processes, never a one-shot process on this host — behind whatever
    the environment runs (one waiting backup at most)."""
    return operations.start_backup(ctx, env, live=live, automated=automated, queue=True,
                                   queue_behind=True, once=True)


def _queued_drill(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, *,
                  detach: bool) -> ActivityInfo:
    """The scheduler's restore drills are queued for workers, too."""
    return operations.start_drill(ctx, env, snapshot_id, queue=True, queue_behind=True,
                                  once=True)


def _web(app: FastAPI, ctx_factory: Callable[[], Context]) -> bool:
    """Mount the web console (it serves its own files) when the package is there."""
    try:
        from snapkeep import web
    except ImportError:
        return False
    web.install(app, ctx_factory)
    return True


@click.command("serve")
@click.option("--config", "config_paths", multiple=True, metavar="PATH",
              help="snapkeep.toml to serve (default: found from the working directory; "
                   "SNAPKEEP_CONFIG). Repeat it, or name a directory of configs, to serve "
                   "several projects: they must share one `catalog` (docs/server.md).")
@click.option("-p", "--project", metavar="ID",
              help="The project ID; checked against snapkeep.toml (one config only).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Put a TLS-terminating reverse proxy in front of "
                   "anything but loopback.")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--workers", "-w", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Worker threads running queued activities (0: none; run `snapkeep "
                   "worker` processes instead).")
@click.option("--no-scheduler", is_flag=True,
              help="Do not run schedules and retention here (another server does).")
@click.option("--no-binlog-follow", is_flag=True,
              help="Do not archive the binary log of point_in_time environments here "
                   "(`snapkeep binlog:follow` or another server does).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              metavar="IPS", help="Proxies whose X-Forwarded-For/-Proto headers are trusted "
                                  "(comma-separated, or *).")
def serve(config_paths, project, host, port, workers, no_scheduler, no_binlog_follow,
          forwarded_allow_ips) -> None:
    """Serve the REST API (and the web console), run queued activities and schedules, and
    archive the binary log of the point_in_time environments (docs/pitr.md).

    With several configs (`--config` repeated, or a directory of them) it serves every
    project on their shared catalog: one API and console, and per project its worker
    threads (`--workers` each), scheduler, webhooks and binlog archiving.

    SIGTERM or Ctrl-C stops it cleanly: no new requests or activities; a running activity
    ends at its next safe point (marked failed, to be started again) or, past its point
    of no return (a restore's cut-over), runs to its end.
    """
    from snapkeep.api.app import create_app

    logging.getLogger("snapkeep").setLevel(logging.INFO)
    paths = list(config_paths) or [os.environ.get("SNAPKEEP_CONFIG") or ""]
    several = len(paths) > 1 or os.path.isdir(paths[0])
    if several and project:
        raise UsageError("-p/--project checks a single config; drop it when serving several")
    # no prompts: a server has no terminal
    served = projects.load_projects(paths) if several else \
        [Context.load(paths[0] or None, project)]

    stop = threading.Event()
    app = create_app(lambda: served, stop=stop)
    base: Context = app.state.base_context
    # Requests share the server's Context (catalog, repository) through for_actor copies:
    # they only read the repository; activities run in the workers' own Contexts.
    console = _web(app, lambda: base)
    sock = _listen(host, port)
    follows = {ctx.config.id: [] if no_binlog_follow or ctx.config.read_only else
               [e.name for e in binlogs.followed(ctx)] for ctx in served}
    follow = [f"{pid}/{env}" if several else env
              for pid, envs in follows.items() for env in envs]
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    names = f"projects {', '.join(ctx.config.id for ctx in served)}" if several else \
        f"project {base.config.id}"
    say(f"Serving {names} on http://{shown}:{bound_port} (API at /api, "
        f"its document at /api/openapi.json{', web console at /' if console else ''}); catalog "
        f"{base.config.catalog_description}; {workers} worker thread(s)"
        f"{' per project' if several else ''}"
        f"{'' if workers else ' (queued activities wait for `snapkeep worker` processes)'}; "
        "scheduler "
        f"{'off' if no_scheduler else 'on'}; binlog archiving "
        f"{', '.join(follow) if follow else 'off'}. SIGTERM or Ctrl-C stops it.")
    if not _is_loopback(host):
        say(f"snapkeep: warning: listening on {host}, beyond this machine: terminate TLS in "
            "a reverse proxy (nginx, caddy) in front of snapkeep, so API tokens and "
            "passwords never cross the network in clear text (docs/server.md).")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()  # before uvicorn runs; once it has stopped, it re-raises what it caught

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    threads: list[threading.Thread] = []
    for ctx in served:
        # each thread a Context of its own: one project's loads its own catalog (as
        # before); several share the one catalog, each thread its own repository
        load = ctx.with_own_repository if several else \
            functools.partial(Context.load, paths[0] or None, project)
        threads += _start_threads(load, workers, stop, scheduler=not no_scheduler,
                                  webhooks=ctx.config.webhook is not None)
        threads += binlogs.follow_in_background(load, follows[ctx.config.id], stop, log.info)
    try:
        _run_http(app, sock, stop, forwarded_allow_ips)
    finally:
        stop.set()
        threads += upload.running_imports()  # uploads' imports run beside the workers
        if any(t.is_alive() for t in threads):
            say("Stopping: waiting for the running activities to reach a safe point.")
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)  # short joins: signals reach the main thread between
        sock.close()
    say("Server stopped.")


def _start_threads(load: Callable[[], Context], workers: int, stop: threading.Event, *,
                   scheduler: bool, webhooks: bool) -> list[threading.Thread]:
    """Start the worker threads, the scheduler's and the webhook sender's (each with a
    Context of its own from ``load``), until ``stop`` is set."""
    threads = start_worker_threads(load, workers, stop, report=log.info) if workers else []
    if scheduler:
        sched_ctx = load().for_actor(scheduler_actor())
        runner = Scheduler(sched_ctx, start_backup=_queued_backup, start_drill=_queued_drill)
        t = threading.Thread(target=runner.run, args=(stop,), name="scheduler", daemon=True)
        t.start()
        threads.append(t)
    if webhooks:
        t = threading.Thread(target=notify.deliver_until, args=(load(), stop),
                             name="notifications", daemon=True)
        t.start()
        threads.append(t)
    return threads


COMMANDS = [serve]
