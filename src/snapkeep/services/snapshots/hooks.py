"""Hooks: an environment's own shell commands around its snapshots and restores.

``[environments.X.hooks]`` names commands for ``before_snapshot``, ``after_snapshot``,
``before_restore`` and ``after_restore``; ``post_restore`` commands run after a snapshot
of another environment is restored (services/snapshots/restore.py). Each command runs with
``/bin/sh -c`` in the environment's root, stdin from /dev/null, in a process group of its
own; its output (stdout and stderr, interleaved) goes into the activity log line by line
as it comes. It is killed — the whole group: SIGTERM, then SIGKILL after ``KILL_GRACE``
seconds — when it runs past its timeout, or when the activity is cancelled or its worker
stops (``rec.check()`` raises).

A failure (non-zero exit, killed, timed out, could not start) raises ``HookError`` under
the ``fail`` policy, or becomes a warning on the activity under ``warn``.

The commands' output is readable by the environment's Viewers, so they get no credential
snapkeep knows (snapkeep.redact's list is withheld from their environment); the database
is reached through a 0600 option file (``SNAPKEEP_DB_DEFAULTS_FILE``) that exists only
while they run, and every logged line is cleared of known secret values by the recorder.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql
from snapkeep.errors import HookError
from snapkeep.redact import without_credentials
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a command's process group
POLL = 0.2  # seconds between two looks at the cancel flag while a command is quiet
DRAIN = 2.0  # seconds output is still read after the shell exited (a background child)
TAIL_LINES = 5  # lines of output quoted in a failure message
MAX_LOGGED_LINES = 2000  # per command; a chatty command must not flood the catalog
MAX_LINE = 4000  # characters; a longer line is cut
OUTPUT_PREFIX = "  > "
DEFAULTS_FILE_VARIABLE = "SNAPKEEP_DB_DEFAULTS_FILE"


def run_hook(ctx: Context, env: EnvironmentConfig, event: str, rec: ActivityRecorder,
             variables: Mapping[str, str] | None = None) -> None:
    """Run the environment's ``event`` hooks (``before_snapshot`` …) with its hooks'
    timeout and ``on_failure`` policy. Nothing happens when there are none."""
    run_commands(ctx, env, env.hooks.commands(event), rec, label=f"{event} hook",
                 timeout=env.hooks.timeout, on_failure=env.hooks.on_failure,
                 variables=variables)


def run_commands(ctx: Context, env: EnvironmentConfig, commands: Sequence[str],
                 rec: ActivityRecorder, *, label: str, timeout: float, on_failure: str,
                 variables: Mapping[str, str] | None = None) -> None:
    """Run ``commands`` one after the other (see the module docstring).

    ``on_failure="fail"``: the first failing command raises ``HookError`` (the later ones
    do not run); ``"warn"``: each failure is a warning on the activity and the next
    command runs. ``Cancelled``/``Interrupted`` from ``rec`` kill the running command and
    propagate. ``variables`` are added to the commands' environment.
    """
    if on_failure not in ("fail", "warn"):
        raise ValueError(f"on_failure must be 'fail' or 'warn', not {on_failure!r}")
    if not commands:
        return
    with tempfile.TemporaryDirectory(prefix="snapkeep-hook-") as private:  # 0700
        defaults = _defaults_file(env, Path(private))
        environ = hook_environment(ctx, env, rec.activity.id, label, variables,
                                   defaults_file=defaults)
        _run_all(ctx, env, commands, rec, label=label, timeout=timeout,
                 on_failure=on_failure, environ=environ)


def _run_all(ctx: Context, env: EnvironmentConfig, commands: Sequence[str],
             rec: ActivityRecorder, *, label: str, timeout: float, on_failure: str,
             environ: dict[str, str]) -> None:
    for n, command in enumerate(commands, 1):
        counter = f" ({n}/{len(commands)})" if len(commands) > 1 else ""
        rec.log(f"Running {label}{counter}: {command}")
        outcome = _run_one(command, env, rec, label=label, timeout=timeout, environ=environ)
        if outcome.ok:
            rec.log(f"{label}{counter} finished in {outcome.seconds:.1f} s")
            continue
        message = _failure(label, command, outcome, timeout)
        if on_failure == "warn":
            rec.warn(message)
            continue
        raise HookError(f"{message}. Fix the command under {_where(env, label)} in "
                        f"{ctx.config.path}" +
                        (', or set on_failure = "warn" there to go on despite it'
                         if label.endswith(" hook") else ""))


def _defaults_file(env: EnvironmentConfig, directory: Path) -> Path | None:
    """The environment's database login and database as a 0600 option file in
    ``directory``; None without a database."""
    target = database_target(env)
    return None if target is None else mysql.option_file(directory, target,
                                                         with_database=True)


def hook_environment(ctx: Context, env: EnvironmentConfig, activity_id: str, label: str,
                     variables: Mapping[str, str] | None = None, *,
                     defaults_file: Path | None = None) -> dict[str, str]:
    """The commands' environment: this process's less every credential variable, plus
    who and what they run for and how to reach the environment's database — its password
    only inside ``defaults_file`` (``mariadb --defaults-extra-file=…`` reads it), never in
    a variable a command printing its environment would show."""
    environ = without_credentials(os.environ)
    environ.update({
        "SNAPKEEP_PROJECT": ctx.config.id,
        "SNAPKEEP_ENVIRONMENT": env.name,
        "SNAPKEEP_EVENT": _event_of(label),
        "SNAPKEEP_ACTIVITY_ID": activity_id,
    })
    db = env.database
    if db is not None:
        environ.update({"SNAPKEEP_DB_HOST": db.host, "SNAPKEEP_DB_PORT": str(db.port),
                        "SNAPKEEP_DB_USER": db.user, "SNAPKEEP_DB_NAME": db.database})
        if db.unix_socket:
            environ["SNAPKEEP_DB_SOCKET"] = db.unix_socket
        if defaults_file is not None:
            environ[DEFAULTS_FILE_VARIABLE] = str(defaults_file)
    environ.update(without_credentials(variables or {}))
    return environ


@dataclass
class _Outcome:
    returncode: int | None = None
    timed_out: bool = False
    start_error: str | None = None
    seconds: float = 0.0
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.start_error is None


class _Output:
    """A command's output, cut into lines and logged as they complete."""

    def __init__(self, rec: ActivityRecorder) -> None:
        self.rec = rec
        self.buf = b""
        self.logged = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self._line(line)
        while len(self.buf) > MAX_LINE * 4:  # no newline in sight: log it in pieces
            self._line(self.buf[:MAX_LINE])
            self.buf = self.buf[MAX_LINE:]

    def flush(self) -> None:
        if self.buf:
            self._line(self.buf)
            self.buf = b""

    def _line(self, raw: bytes) -> None:
        # masked here too: the tail is quoted in failure messages and errors
        text = self.rec.redact(raw.decode("utf-8", "replace").rstrip("\r"))
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + " …"
        if text.strip():
            self.tail.append(text.strip())
        self.logged += 1
        if self.logged <= MAX_LOGGED_LINES:
            self.rec.log(OUTPUT_PREFIX + text)
        elif self.logged == MAX_LOGGED_LINES + 1:
            self.rec.log(f"{OUTPUT_PREFIX}(more output follows; only the first "
                         f"{MAX_LOGGED_LINES} lines are logged)")


def _run_one(command: str, env: EnvironmentConfig, rec: ActivityRecorder, *, label: str,
             timeout: float, environ: dict[str, str]) -> _Outcome:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=env.root, env=environ,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        return _Outcome(start_error=f"could not start in {env.root}: {e.strerror or e}")
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = _Output(rec)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = started + timeout
    eof = False
    exited_at: float | None = None
    try:
        while True:
            rec.check()  # raises when the activity is cancelled or its worker stops
            t = time.monotonic()
            if t >= deadline:
                out.flush()
                _kill_group(proc)
                return _Outcome(timed_out=True, seconds=t - started, tail=list(out.tail))
            wait = min(POLL, deadline - t)
            if eof:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
            else:
                for _key, _events in sel.select(wait):
                    data = os.read(fd, 65536)
                    if data:
                        out.feed(data)
                    else:
                        eof = True
            if proc.poll() is not None:
                exited_at = exited_at or time.monotonic()
                # A background child may hold the output open; do not wait for it long.
                if eof or time.monotonic() - exited_at >= DRAIN:
                    break
        out.flush()
        return _Outcome(returncode=proc.returncode, seconds=time.monotonic() - started,
                        tail=list(out.tail))
    except BaseException:
        _kill_group(proc)
        _note(rec, f"Stopped the {label} `{command}` (its processes were killed): the "
                   "activity is stopping.")
        raise
    finally:
        sel.close()
        proc.stdout.close()


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after ``KILL_GRACE``."""
    pgid = proc.pid  # start_new_session: the shell leads its own group
    if not _signal_group(pgid, signal.SIGTERM):
        proc.wait()
        return
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        proc.poll()  # reap the shell, or the group never looks empty
        if not _signal_group(pgid, 0):
            break
        time.sleep(0.05)
    else:
        _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _note(rec: ActivityRecorder, message: str) -> None:
    """Log without the cancel check (the activity is stopping already); never raises."""
    try:
        message = rec.redact(message)
        rec.ctx.catalog.append_log(rec.activity.id, message)
        if rec.observer:
            rec.observer.on_log(message)
    except Exception:  # noqa: BLE001 - the original exception matters more
        pass


def _failure(label: str, command: str, outcome: _Outcome, timeout: float) -> str:
    if outcome.start_error:
        what = outcome.start_error
    elif outcome.timed_out:
        what = f"timed out after {timeout:g} s and was killed"
    elif outcome.returncode is not None and outcome.returncode < 0:
        what = f"was killed by signal {_signal_name(-outcome.returncode)}"
    else:
        what = f"failed with exit code {outcome.returncode}"
    said = f"; its last output: {' | '.join(outcome.tail)}" if outcome.tail else \
        "; it printed nothing" if not outcome.start_error else ""
    return f"{label} `{command}` {what}{said}"


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def _event_of(label: str) -> str:
    """``before_snapshot hook`` → ``before_snapshot``; ``post-restore command`` →
    ``post_restore``."""
    for suffix in (" hook", " command", " commands"):
        label = label.removesuffix(suffix)
    return label.replace("-", "_").replace(" ", "_")


def _where(env: EnvironmentConfig, label: str) -> str:
    return f"[environments.{env.name}.hooks]" if label.endswith(" hook") else \
        f"[environments.{env.name}]"
