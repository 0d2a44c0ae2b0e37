"""``snapshot:import`` through a server: an import directory sent as a tar stream.

The API (``api/routers/imports.py``) checks who asks and the environment before it reads
a byte of the body (``check_upload``), then an ``Upload`` extracts the streamed tar into
a private staging directory, ``.snapkeep/uploads/<env>.<token>/``, taking only the layout
an import reads (``import_source``): ``snapkeep-export.json`` and one SQL dump at the top,
``mounts/<mount>.tar.zst``, and the trees of the environment's mounts. Other members are
left out; links outside a mount's tree, names that are absolute or hold ``..``, devices
and FIFOs are refused (``BadUpload``, HTTP 400). ``volumes.extract_tar`` does the writing,
so nothing is ever written through a symlink or outside the directory.

``Upload.start`` checks the directory as a local import checks its source, then runs the
normal import activity (``transfer.run_import``) in a thread of this process — the host
that holds the files — and removes the staging directory before the activity's end is
recorded, whatever the outcome.

The process using a staging directory holds a ``flock`` on it from its creation until its
removal. The kernel drops it when that process dies, so the next upload removes any
staging directory whose lock it can take: one a killed server left.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.errors import BadUpload, BusyError, InsufficientSpace, SizeRequired, UsageError
from snapkeep.ids import new_id
from snapkeep.policy import Action, require_active, require_role
from snapkeep.services.activities.claims import Claim, claim
from snapkeep.services.activities.info import RUNNING, ActivityInfo
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.activities.recovery import reconcile
from snapkeep.services.activities.running import run
from snapkeep.services.context import Context
from snapkeep.services.sizes import mib
from snapkeep.services.transfer import export_import as transfer
from snapkeep.services.transfer import import_source
from snapkeep.services.transfer.exportdir import DATABASE_PART, METADATA, read_metadata

UPLOADS_DIR = "uploads"  # under .snapkeep/
SPACE_MARGIN = 256 << 20  # bytes left free on the staging filesystem beyond an upload
_GUARD = ".lock"  # held while staging directories are swept or created (never swept)
_SHOWN = 5  # member names a log line lists before "and N more"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_HOW = ("send the directory as `snapkeep snapshot:import DIR` does (an uncompressed tar of "
        "snapkeep-export.json, the SQL dump, mounts/<mount>.tar.zst and mount directories)")

log = logging.getLogger("snapkeep.upload")

# Import activities this process runs in threads of their own (``Upload.start``): ``snapkeep
# serve`` waits for them when it stops, as it waits for its workers, so none is left
# recorded as running.
_running: set[threading.Thread] = set()
_running_lock = threading.Lock()


def running_imports() -> list[threading.Thread]:
    """The import threads of this process that have not ended."""
    with _running_lock:
        return list(_running)


def check_upload(ctx: Context, env: EnvironmentConfig, size: int | None = None) -> None:
    """What can be refused before an upload is read: the role (Admin on ``env``), an
    inactive environment, a busy one (BusyError), no repository, for an environment with
    a database no stock ``mariadb`` client or no MariaDB server programs on this host (an
    import loads the dump into a private server: ``import_server``), and, when the client announces
    the upload's ``size`` in bytes, too little free space for it (InsufficientSpace).
    Creates nothing."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_IMPORT)
    require_active(env.name, ctx.catalog.environment_status(env.name))
    reconcile(ctx)  # an activity whose runner died does not hold env any more
    busy = ctx.catalog.list_activities(env.name, states=RUNNING, limit=1)
    if busy:
        a = busy[0]
        doing = "is waiting to run" if a.state == "pending" else "is running"
        raise BusyError(f"activity {a.id} ({a.description}) {doing} on environment "
                        f"{env.name}; only one activity runs per environment at a time. Wait "
                        f"for it (`snapkeep activity:list -e {env.name}`) and upload again.")
    if env.database is not None:  # said now, not after the whole upload
        mysql.find_client()
        mysql.check_import_server()
    ctx.repository  # noqa: B018 - fail now when there is no repository
    if size is not None:
        _check_space(ctx.config.state_dir, size)


def _check_space(state_dir: Path, size: int) -> None:
    """Room for ``size`` bytes of upload plus ``SPACE_MARGIN`` on the staging filesystem
    (the size is the client's word: writing still stops cleanly on a full disk)."""
    free = shutil.disk_usage(state_dir).free
    if size + SPACE_MARGIN > free:
        raise InsufficientSpace(
            f"the upload is {mib(size)} and the server has {mib(free)} free where it "
            f"stages uploads ({UPLOADS_DIR}/ in its state directory), of which it keeps "
            f"{mib(SPACE_MARGIN)}; free space on the server, or import on the host that "
            "has the files")


class Upload:
    """One upload's staging directory, locked by this process until it is removed."""

    def __init__(self, ctx: Context, env: EnvironmentConfig, path: Path, fd: int,
                 swept: list[Path], size: int) -> None:
        self.ctx, self.env, self.path = ctx, env, path
        self.size = size  # declared: the file content it may hold, in bytes
        self._fd = fd
        self._owned_by_activity = False
        self.notes = [f"removed {p}, left by an interrupted upload" for p in swept]
        self.files = 0
        self.bytes = 0
        self.skipped: list[str] = []

    @classmethod
    def begin(cls, ctx: Context, env: EnvironmentConfig, size: int | None) -> Upload:
        """``check_upload``, then a new empty staging directory (after removing those that
        killed processes left). ``size`` (the bytes of file content the client declares)
        is required: SizeRequired without it."""
        check_upload(ctx, env, size)
        if size is None:
            raise SizeRequired(
                "the upload does not say how big it is: send its size as `?size=BYTES` (the "
                "bytes of file content in the tar, as `snapkeep snapshot:import` does) or a "
                "Content-Length header, so the server can check its room and bound it")
        base = ctx.state_path(UPLOADS_DIR, _GUARD).parent
        base.chmod(0o700)
        with _guard(base):
            swept = _sweep(base)
            path = base / f"{_SAFE_NAME.sub('_', env.name)}.{new_id()}"
            path.mkdir(mode=0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return cls(ctx, env, path, fd, swept, size)

    # -- receiving --------------------------------------------------------------------------

    def receive(self, body: BinaryIO) -> None:
        """Extract the tar stream ``body`` into the staging directory. BadUpload for a body
        that is no tar or holds a refused member; what the reader raises (the client went
        away) propagates. Either way the caller ``discard``s."""
        try:
            outside = volumes.extract_tar(body, self.path, self._accept, fifos=False)
        except BadUpload:
            raise
        except UsageError as e:  # UnsafeArchive, or not a tar at all
            raise BadUpload(f"the upload was refused: {e.message}; {_HOW}") from e
        if self.skipped:
            self.notes.append(f"left out {len(self.skipped)} uploaded member(s) an import does "
                              f"not read: {_listing(self.skipped)}")
        if outside:
            self.notes.append(f"{len(outside)} symlink(s) in the uploaded mount directories "
                              "point outside them and are kept as links: " +
                              _listing([f"{p} -> {t}" for p, t in outside]))

    def _accept(self, m: tarfile.TarInfo, parts: tuple[bytes, ...]) -> bool:
        """Whether to extract member ``m`` (named ``parts``); BadUpload for a link outside a
        mount's tree. Devices, FIFOs, absolute names and ``..`` never get here."""
        if not parts:
            return True  # the directory itself (``tar -C DIR -cf - .``)
        path = "/".join(os.fsdecode(p) for p in parts)
        mounts = self.env.mounts
        if any(path.startswith(f"{mount}/") for mount in mounts):
            return self._count(m)  # inside a mount's tree: as a mount tar may hold it
        if m.issym() or m.islnk():
            raise BadUpload(f"the upload was refused: its member {path!r} is a link, and an "
                            "import takes links only inside a mount's directory (mounts of "
                            f"{self.env.name}: {', '.join(mounts) or 'none'}); put the file "
                            "itself in its place and upload again")
        if m.isdir():  # a mount, a directory above one, or mounts/…
            return path in mounts or parts[0] == b"mounts" or \
                any(mount.startswith(f"{path}/") for mount in mounts)
        top = len(parts) == 1 and (path == METADATA or
                                   path.lower().endswith(import_source.SQL_SUFFIXES))
        if m.isreg() and (top or (parts[0] == b"mounts" and path.endswith(".tar.zst"))):
            return self._count(m)
        self.skipped.append(path)
        return False

    def _count(self, m: tarfile.TarInfo) -> bool:
        if m.isreg() and self.bytes + m.size > self.size:
            raise BadUpload(f"the upload was refused: it holds more than the {self.size} "
                            "bytes of file content it declared (`?size=` or Content-Length); "
                            "send its true size and upload again")
        if m.isreg():
            self.files += 1
            self.bytes += m.size
        return True

    # -- starting the import ----------------------------------------------------------------

    def start(self, *, threads: int | None = None,
              stop: threading.Event | None = None) -> ActivityInfo:
        """Check the staging directory as a local import checks its source (UsageError
        saying what is wrong), then start the import activity in a thread of this process
        and return it (``in_progress``). From then on the activity owns the directory and
        removes it when it ends; ``stop`` set (the server is stopping) interrupts it."""
        try:
            _check_listing(self.path)
            src = import_source.inspect(self.env, self.path)
            if src.sql is not None:
                mysql.find_client()
                mysql.check_import_server()
        except UsageError as e:
            raise type(e)(self._unstaged(e.message)) from e
        what = f"the export of snapshot {src.export.get('snapshot_id')}" if src.export else \
            src.sql.name if src.sql else "mount directories"
        desc = f"{self.ctx.actor.name} imported a backup of {self.env.name} from an upload " \
            f"({what})"
        params = {"source": str(self.path), "threads": threads, "upload": True}
        c = claim(self.ctx, self.env.name, transfer.IMPORT, desc, params)
        own = self.ctx.with_own_repository()  # this thread runs the import
        self._owned_by_activity = True
        t = threading.Thread(target=self._run, args=(own, c, params, stop), daemon=True,
                             name=f"import-{c.activity.id}")
        with _running_lock:
            _running.add(t)
        t.start()
        return ActivityInfo.of(c.activity)

    def _run(self, ctx: Context, c: Claim, params: dict[str, Any],
             stop: threading.Event | None) -> None:
        def work(rec: ActivityRecorder) -> str:
            try:
                rec.log(f"Received {self.files} uploaded file(s) ({self.bytes / 2**20:.1f} "
                        f"MiB) from {ctx.actor.name}")
                for note in self.notes:
                    rec.log(note)
                return transfer.run_import(ctx, self.env, rec, params)
            finally:
                self._remove()  # before the end is recorded: an ended import left nothing

        try:
            run(ctx, c, work, stop=stop)
        except BaseException as e:  # noqa: BLE001 - recorded in the activity by run
            log.info("import activity %s ended: %s", c.activity.id, e)
        finally:
            self._remove()
            self._unlock()
            with _running_lock:
                _running.discard(threading.current_thread())

    # -- cleaning up ------------------------------------------------------------------------

    def discard(self) -> None:
        """Remove the staging directory, unless an activity took it over (``start``)."""
        if not self._owned_by_activity:
            self._remove()
            self._unlock()

    def _remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _unlock(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # drops the flock
            self._fd = -1

    def _unstaged(self, message: str) -> str:
        """``message`` naming the upload rather than this host's staging path."""
        return message.replace(f"{self.path}/", "").replace(str(self.path),
                                                            "the uploaded directory")


def _check_listing(path: Path) -> None:
    """An uploaded snapkeep-export.json may list only the parts an export holds: its names
    are read as paths, and must not lead out of the staging directory."""
    meta = read_metadata(path)
    for name in (meta or {}).get("files", {}):
        parts = str(name).split("/")
        if name != DATABASE_PART and not (parts[0] == "mounts" and name.endswith(".tar.zst")
                                          and "" not in parts and ".." not in parts):
            raise BadUpload(f"the upload was refused: its {METADATA} lists {name!r}, which is "
                            f"no part of an export ({DATABASE_PART}, mounts/<mount>.tar.zst); "
                            "upload the export directory as snapshot:export wrote it")


@contextlib.contextmanager
def _guard(base: Path) -> Iterator[None]:
    fd = os.open(base / _GUARD, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sweep(base: Path) -> list[Path]:
    """Remove the staging directories no live process holds (their uploader was killed)."""
    swept = []
    for old in sorted(base.iterdir()):
        if old.name == _GUARD or not old.is_dir() or old.is_symlink():
            continue
        fd = os.open(old, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # in use by an upload or an import
        finally:
            os.close(fd)
        shutil.rmtree(old, ignore_errors=True)
        log.info("removed %s, left by an interrupted upload", old)
        swept.append(old)
    return swept


def _listing(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more
