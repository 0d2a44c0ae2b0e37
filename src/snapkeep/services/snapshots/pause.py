"""Pausing an environment for a consistent snapshot, and always resuming it.

Strategies: a configured ``pause_command``/``resume_command`` pair (run in the app root),
else Magento's ``var/.maintenance.flag`` when the app root has a ``var`` directory, else
none (database writes are still held by the engine). Before pausing, a marker file
beside the mounts (``<root>/.snapkeep-state/paused.json``, ``shared_state``) records what
to undo and who paused; a guard process watches the pausing process and, if it dies (even
by SIGKILL), lifts the pause at once. When the whole host died, a worker of another host
lifts it (``lift_leftover``) before the environment is freed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import Interrupted, ServiceUnavailable
from snapkeep.progress import Reporter
from snapkeep.services.context import Context
from snapkeep.services.snapshots import shared_state

MAGENTO_FLAG = "var/.maintenance.flag"
COMMAND_TIMEOUT = 300


def flag_path(env: EnvironmentConfig) -> str | None:
    """The maintenance flag (relative to the app root) this environment is paused with."""
    if env.pause_command:
        return None
    return MAGENTO_FLAG if (env.root / "var").is_dir() else None


def _marker(ctx: Context, env: str) -> Path:
    """Where an earlier version kept the marker: on the worker's own disk."""
    return shared_state.legacy(ctx, "paused", env)


def marker_path(env: EnvironmentConfig) -> Path:
    return shared_state.path(env, "paused.json")


def _run(cmd: str, env: EnvironmentConfig, what: str) -> None:
    try:
        out = subprocess.run(cmd, shell=True, cwd=env.root, capture_output=True, text=True,
                             timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ServiceUnavailable(f"the {what} command of environment {env.name} did not finish "
                                 f"in {COMMAND_TIMEOUT} s: {cmd}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or [""]
        raise ServiceUnavailable(f"the {what} command of environment {env.name} failed with exit "
                                 f"code {out.returncode}: {cmd} ({tail[0]})")


def _undo(marker: dict, env: EnvironmentConfig) -> None:
    if marker.get("resume_command"):
        _run(marker["resume_command"], env, "resume")
    elif marker.get("created_flag"):
        (env.root / marker["flag"]).unlink(missing_ok=True)


def _unfenced(what: str) -> None:
    """No lease to check (a run outside the activity machinery)."""


@contextmanager
def paused(ctx: Context, env: EnvironmentConfig, reporter: Reporter,
           fence: Callable[[str], None] = _unfenced) -> Iterator[None]:
    """Pause ``env`` for the ``with`` block, then resume it. ``fence(what)`` raises when
    this worker lost its activity's lease: then it neither pauses nor resumes — after
    a reaper settled its pause, another worker may have paused the environment, and
    lifting that pause in the middle of its backup is what fencing prevents."""
    fence(f"pausing {env.name}")
    flag = flag_path(env)
    activity = getattr(reporter, "activity", None)  # an ActivityRecorder's
    marker: dict = {"activity": getattr(activity, "id", None),
                    "worker": getattr(activity, "worker", None)}
    if env.pause_command:
        marker["resume_command"] = env.resume_command
    elif flag:
        marker["flag"] = flag
        marker["created_flag"] = not (env.root / flag).exists()
    else:
        reporter.log("No pause configured (no var/ directory and no pause_command): the app "
                     "keeps running; database writes are held.")
        yield
        return
    path = marker_path(env)
    shared_state.write(path, marker)  # durably, before the pause it undoes
    guard = _start_guard(ctx, env.name)
    started = time.monotonic()
    try:
        if env.pause_command:
            _run(env.pause_command, env, "pause")
        elif flag and marker["created_flag"]:  # created_flag is set only with a flag
            (env.root / flag).touch()
        if env.pause_command or marker["created_flag"]:
            reporter.log(f"Paused {env.name} "
                         f"({'pause command' if env.pause_command else flag})")
        else:
            reporter.log(f"{env.name} was already in maintenance ({flag} existed): left as "
                         "found, and it stays in maintenance after the snapshot")
        yield
    finally:
        try:
            fence(f"resuming {env.name}")
        except Interrupted:
            # Not ours to lift any more, nor the marker ours to remove: whoever settles the
            # reaped activity does (the guard must not lift it either when we exit).
            _stop_guard(guard)
            raise
        try:
            _undo(marker, env)
        finally:
            shared_state.remove(path)
            _stop_guard(guard)
        if env.pause_command or marker["created_flag"]:
            reporter.log(f"Resumed {env.name} after {time.monotonic() - started:.1f} s")


def leftover(ctx: Context, env: EnvironmentConfig) -> dict | None:
    """The pause marker a process that died left on ``env`` (None: not paused by us)."""
    for p in (marker_path(env), _marker(ctx, env.name)):
        found = shared_state.read(p)
        if found is not None:
            return found
    return None


def lift_leftover(ctx: Context, env_name: str) -> bool:
    """Undo a pause whose process died — on any host: the marker is beside the mounts.
    Call with the environment held (this host's lock, the activity taken over)."""
    env = ctx.config.environments.get(env_name)
    lifted = False
    paths = [_marker(ctx, env_name)] + ([marker_path(env)] if env is not None else [])
    for path in paths:
        marker = shared_state.read(path)
        if marker is None:
            continue
        if env is not None:
            _undo(marker, env)
        shared_state.remove(path)
        lifted = True
    return lifted


def _stop_guard(guard: subprocess.Popen | None) -> None:
    if guard is not None:
        guard.kill()
        guard.wait()


def _start_guard(ctx: Context, env_name: str) -> subprocess.Popen | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "snapkeep.worker.guard", str(ctx.config.path), env_name,
             str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
    except OSError:
        return None  # the next command still lifts the pause
