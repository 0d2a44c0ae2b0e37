"""The one client interface of the snapshot:* and activity:* commands (DESIGN.md §2).

``LocalClient`` runs the services in this process against ./snapkeep.toml;
``RemoteClient`` asks a ``snapkeep serve`` over its REST API. ``connect`` picks one:
remote when ``SNAPKEEP_URL`` is set (token in ``SNAPKEEP_TOKEN``) or ``snapkeep
auth:login`` stored a server, local otherwise. Both return the same types and raise the
same SnapkeepError subclasses for the same refusals, so a command prints the same either
way. The token is sent in a header only: never printed, logged or put in an argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from snapkeep import __version__
from snapkeep.config import EnvironmentConfig
from snapkeep.errors import (
    AuthenticationError,
    Cancelled,
    ConfigError,
    NotFoundError,
    PermissionDenied,
    PolicyError,
    ServiceUnavailable,
    SnapkeepError,
    UsageError,
)
from snapkeep.services import (
    activities,
    environments,
    gitinfo,
    integrity,
    operations,
    restore,
    retention,
    snapshots,
)
from snapkeep.services.activities import Activity
from snapkeep.services.context import Context
from snapkeep.services.recorder import Observer
from snapkeep.services.restore_scope import RestoreScope
from snapkeep.services.snapshots import SnapshotInfo

if TYPE_CHECKING:
    import httpx

CONNECT_TIMEOUT = 5.0  # seconds to reach the server
REQUEST_TIMEOUT = 60.0  # seconds a plain request may take to answer
STREAM_READ_TIMEOUT = 60.0  # seconds of silence on a log stream (the server beats every 10 s)
FOLLOW_TIMEOUT = 24 * 3600.0  # overall bound on following one activity (SNAPKEEP_FOLLOW_TIMEOUT)
STREAM_RETRIES = 5  # reconnects of a cut log stream (~25 s in all) before giving up
LOCAL_POLL = 0.5  # seconds between two looks at a local activity's log


@dataclass(frozen=True)
class EnvironmentRef:
    name: str
    type: str


@dataclass(frozen=True)
class RestorePreview:
    """What restoring a snapshot replaces, for the confirmation."""

    mounts: tuple[str, ...]
    code_note: str | None
    database: bool = True  # whether the snapshot holds a database


@dataclass(frozen=True)
class LogLine:
    id: int
    at: datetime
    message: str


class Client(Protocol):
    """What the commands ask for. Environments are passed by name.

    ``create_snapshot``/``restore_snapshot``/``delete_snapshot`` run the activity to its
    end, reporting to ``observer``, and return it as it ended (raising what it failed
    with); with ``wait=False`` they return it queued. ``follow_log`` yields log lines,
    until the activity ends when ``follow``.
    """

    @property
    def project_id(self) -> str: ...

    def environment(self, name: str | None) -> EnvironmentRef: ...

    def list_snapshots(self, env: str) -> list[SnapshotInfo]: ...

    def get_snapshot(self, env: str, snapshot_id: str | None) -> SnapshotInfo: ...

    def restore_preview(self, env: str, snapshot_id: str) -> RestorePreview: ...

    def create_snapshot(self, env: str, *, live: bool, threads: int | None, wait: bool,
                        observer: Observer | None) -> Activity: ...

    def restore_snapshot(self, env: str, snapshot_id: str, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None) -> Activity: ...

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> Activity: ...

    def expire_snapshots(self, env: str, *, dry_run: bool) -> list[retention.Decision]: ...

    def verify_snapshot(self, env: str, snapshot_id: str, reporter: Any) -> Any: ...

    def list_activities(self, env: str | None, *, limit: int) -> list[Activity]: ...

    def get_activity(self, activity_id: str) -> Activity: ...

    def follow_log(self, activity_id: str, *, follow: bool) -> Iterator[LogLine]: ...

    def cancel_activity(self, activity_id: str) -> Activity: ...


# -- local -------------------------------------------------------------------------------------

class LocalClient:
    """The services, in this process, as the local operator (project admin)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def project_id(self) -> str:
        return self.ctx.config.id

    def _env(self, name: str) -> EnvironmentConfig:
        return self.ctx.config.environment(name)

    def environment(self, name: str | None) -> EnvironmentRef:
        env = environments.resolve(self.ctx, name)
        return EnvironmentRef(env.name, env.type)

    def list_snapshots(self, env: str) -> list[SnapshotInfo]:
        return snapshots.list_snapshots(self.ctx, self._env(env))

    def get_snapshot(self, env: str, snapshot_id: str | None) -> SnapshotInfo:
        return snapshots.get_snapshot(self.ctx, self._env(env), snapshot_id)

    def restore_preview(self, env: str, snapshot_id: str) -> RestorePreview:
        manifest = snapshots.load_manifest(self.ctx, snapshot_id)
        return RestorePreview(tuple(manifest.mounts),
                              restore.code_note(self._env(env), manifest),
                              "database" in manifest.services)

    def create_snapshot(self, env: str, *, live: bool, threads: int | None, wait: bool,
                        observer: Observer | None) -> Activity:
        return operations.start_backup(self.ctx, self._env(env), live=live, threads=threads,
                                       detach=not wait, observer=observer)

    def restore_snapshot(self, env: str, snapshot_id: str, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None) -> Activity:
        return operations.start_restore(
            self.ctx, self._env(env), snapshot_id, threads=threads, detach=not wait,
            observer=observer, target=self._env(target) if target else None, scope=scope)

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> Activity:
        return operations.delete_snapshot(self.ctx, self._env(env), snapshot_id,
                                          observer=observer)

    def expire_snapshots(self, env: str, *, dry_run: bool) -> list[retention.Decision]:
        if dry_run:
            return retention.plan(self.ctx, self._env(env))
        return operations.expire_snapshots(self.ctx, self._env(env))[1]

    def verify_snapshot(self, env: str, snapshot_id: str, reporter: Any) -> Any:
        return integrity.verify_snapshot(self.ctx, self._env(env), snapshot_id, reporter)

    def list_activities(self, env: str | None, *, limit: int) -> list[Activity]:
        name = environments.resolve(self.ctx, env).name if env else None
        return activities.list_activities(self.ctx, name, limit=limit)

    def get_activity(self, activity_id: str) -> Activity:
        return activities.get_activity(self.ctx, activity_id)

    def follow_log(self, activity_id: str, *, follow: bool) -> Iterator[LogLine]:
        last = 0
        while True:
            for line in activities.activity_log(self.ctx, activity_id, last):
                last = line.id
                yield LogLine(line.id, line.at, line.message)
            a = activities.get_activity(self.ctx, activity_id)
            if not follow or a.state not in activities.RUNNING:
                # lines written between the two reads above
                for line in activities.activity_log(self.ctx, activity_id, last):
                    last = line.id
                    yield LogLine(line.id, line.at, line.message)
                return
            time.sleep(LOCAL_POLL)

    def cancel_activity(self, activity_id: str) -> Activity:
        return activities.cancel_activity(self.ctx, activity_id)


# -- remote ------------------------------------------------------------------------------------

def _error_classes() -> dict[str, type[SnapkeepError]]:
    found: dict[str, type[SnapkeepError]] = {}
    todo: list[type[SnapkeepError]] = [SnapkeepError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[SnapkeepError]] = {
    401: AuthenticationError, 403: PermissionDenied, 404: NotFoundError, 409: PolicyError,
    422: UsageError}


def error_for(status: int, body: Any, url: str) -> SnapkeepError:
    """The SnapkeepError a server's error answer stands for: the class it names (so the
    exit code matches local mode), else one by HTTP status."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        cls = _error_classes().get(str(err.get("type")))
        if cls is None:
            cls = _BY_STATUS.get(status, ServiceUnavailable if status >= 500 else SnapkeepError)
        return cls(err["message"])
    if status >= 500:
        return ServiceUnavailable(f"the snapkeep server at {url} answered HTTP {status}; "
                                  "see its log (journalctl -u snapkeep) and try again")
    return _BY_STATUS.get(status, SnapkeepError)(
        f"the server at {url} answered HTTP {status} without a snapkeep error: is "
        "SNAPKEEP_URL a snapkeep server (not the proxy's or another site's)?")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def activity_from_json(d: dict[str, Any]) -> Activity:
    """An Activity (not in any catalog) from the API's activity object."""
    return Activity(id=d["id"], type=d["type"], state=d["state"], result=d.get("result"),
                    completion_percent=d.get("completion_percent") or 0,
                    environment=d["environment"], description=d["description"],
                    actor=d.get("actor"), created_at=_dt(d["created_at"]),
                    started_at=_dt(d.get("started_at")),
                    completed_at=_dt(d.get("completed_at")),
                    snapshot_id=d.get("snapshot_id"), error=d.get("error"), parameters={},
                    warnings=d.get("warnings") or [])


def snapshot_from_json(d: dict[str, Any]) -> SnapshotInfo:
    created = _dt(d["created_at"])
    assert created is not None
    return SnapshotInfo(id=d["id"], environment=d["environment"], created_at=created,
                        expires_at=_dt(d.get("expires_at")), restorable=bool(d["restorable"]),
                        live=bool(d["live"]), automated=bool(d["automated"]),
                        commit_id=d.get("commit_id"), size_bytes=int(d["size_bytes"]),
                        added_bytes=d.get("added_bytes"), status=d["status"])


def _failure(a: Activity) -> SnapkeepError:
    message = a.error or f"activity {a.id} ended {a.state} without saying why"
    return Cancelled(message) if a.state == "cancelled" else SnapkeepError(message)


def _follow_timeout() -> float:
    raw = os.environ.get("SNAPKEEP_FOLLOW_TIMEOUT")
    try:
        return float(raw) if raw else FOLLOW_TIMEOUT
    except ValueError:
        raise UsageError(f"SNAPKEEP_FOLLOW_TIMEOUT={raw!r} is not a number of seconds") \
            from None


class RemoteClient:
    """A snapkeep server's REST API (docs/api.md), as the token's user."""

    def __init__(self, url: str, token: str, project: str | None = None, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx  # here: local commands do not pay for importing it

        self.url = normalize_url(url)
        self._project = project
        self._http = httpx.Client(
            base_url=self.url, transport=transport, follow_redirects=False,
            headers={"Authorization": f"Bearer {token.strip()}",
                     "User-Agent": f"snapkeep/{__version__}"},
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT))

    # -- plumbing ------------------------------------------------------------------------------

    def _unreachable(self, e: httpx.HTTPError) -> ServiceUnavailable:
        import httpx

        if isinstance(e, httpx.TimeoutException):
            why = f"no answer in time ({type(e).__name__})"
        else:
            why = str(e) or type(e).__name__
        return ServiceUnavailable(
            f"cannot reach the snapkeep server at {self.url}: {why}; check SNAPKEEP_URL (or "
            "`snapkeep auth:login --url URL`) and that `snapkeep serve` runs there")

    def _check(self, r: httpx.Response) -> None:
        if r.status_code < 400:
            return
        r.read()
        try:
            body = r.json()
        except ValueError:
            body = None
        raise error_for(r.status_code, body, self.url)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        self._check(r)
        return r.json() if r.content else None

    def _p(self, *parts: str) -> str:
        return "/api/projects/" + "/".join(quote(p, safe="") for p in
                                           (self.project_id, *parts))

    def info(self) -> dict[str, Any]:
        """``GET /api``: the served project and who the token belongs to."""
        return self._call("GET", "/api")

    @property
    def project_id(self) -> str:
        if self._project is None:
            self._project = str(self.info()["project"])
        return self._project

    # -- environments and snapshots ------------------------------------------------------------

    def environment(self, name: str | None) -> EnvironmentRef:
        if name:
            d = self._call("GET", self._p("environments", name))
            return EnvironmentRef(d["name"], d["type"])
        envs = {d["name"]: EnvironmentRef(d["name"], d["type"])
                for d in self._call("GET", self._p("environments"))}
        branch = gitinfo.current_branch(Path.cwd())
        if branch and branch in envs:
            return envs[branch]
        if len(envs) == 1:
            return next(iter(envs.values()))
        if not envs:
            raise PermissionDenied(f"you may see no environment of project {self.project_id} "
                                   f"on {self.url}; ask a project admin for a role")
        where = f"the checked-out git branch {branch!r} is not one of them" if branch else \
            "no git branch is checked out here"
        raise ConfigError(f"which environment? {where} (environments: "
                          f"{', '.join(sorted(envs))}); pass -e NAME or check out the "
                          "environment's branch")

    def list_snapshots(self, env: str) -> list[SnapshotInfo]:
        return [snapshot_from_json(d) for d in self._call("GET", self._p("environments", env,
                                                                         "backups"))]

    def get_snapshot(self, env: str, snapshot_id: str | None) -> SnapshotInfo:
        if snapshot_id is None:
            listed = self.list_snapshots(env)
            if not listed:
                raise NotFoundError(f"environment {env} has no snapshots; take one with "
                                    f"`snapkeep snapshot:create -e {env}`")
            return listed[0]
        return snapshot_from_json(self._call("GET", self._p("environments", env, "backups",
                                                            snapshot_id)))

    def restore_preview(self, env: str, snapshot_id: str) -> RestorePreview:
        d = self._call("GET", self._p("environments", env, "backups", snapshot_id))
        return RestorePreview(tuple(d.get("mounts") or ()), d.get("code_note"),
                              bool(d.get("database", True)))

    def create_snapshot(self, env: str, *, live: bool, threads: int | None, wait: bool,
                        observer: Observer | None) -> Activity:
        body: dict[str, Any] = {"safe": not live}
        if threads is not None:
            body["threads"] = threads
        a = activity_from_json(self._call("POST", self._p("environments", env, "backups"),
                                          json=body))
        return self._follow(a, observer) if wait else a

    def restore_snapshot(self, env: str, snapshot_id: str, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None) -> Activity:
        body: dict[str, Any] = {"threads": threads} if threads is not None else {}
        if target:
            body["target"] = target
        if scope is not None:
            body.update(scope.to_options())
        a = activity_from_json(self._call(
            "POST", self._p("environments", env, "backups", snapshot_id, "restore"), json=body))
        return self._follow(a, observer) if wait else a

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> Activity:
        a = activity_from_json(self._call("DELETE", self._p("environments", env, "backups",
                                                            snapshot_id)))
        return self._follow(a, observer)

    def _local_only(self, what: str) -> UsageError:
        return UsageError(f"{what} runs on the server's host, not over the API: run it there "
                          f"(or unset SNAPKEEP_URL / `snapkeep auth:logout` to work locally)")

    def expire_snapshots(self, env: str, *, dry_run: bool) -> list[retention.Decision]:
        raise self._local_only("snapshot:expire (the server's scheduler also applies "
                               "retention)")

    def verify_snapshot(self, env: str, snapshot_id: str, reporter: Any) -> Any:
        raise self._local_only("snapshot:verify")

    # -- activities ----------------------------------------------------------------------------

    def list_activities(self, env: str | None, *, limit: int) -> list[Activity]:
        params: dict[str, Any] = {"limit": limit}
        if env:
            params["environment"] = env
        return [activity_from_json(d) for d in self._call("GET", self._p("activities"),
                                                          params=params)]

    def get_activity(self, activity_id: str) -> Activity:
        return activity_from_json(self._call("GET", self._p("activities", activity_id)))

    def cancel_activity(self, activity_id: str) -> Activity:
        return activity_from_json(self._call("POST", self._p("activities", activity_id,
                                                             "cancel")))

    def events(self, activity_id: str, *, follow: bool = True) -> Iterator[dict[str, Any]]:
        """The log stream's lines as dicts, across reconnects; ends after the seal line
        (or, without ``follow``, when the server has sent what there is)."""
        import httpx

        after, cuts = 0, 0
        deadline = time.monotonic() + _follow_timeout()
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT,
                                read=STREAM_READ_TIMEOUT)
        while True:
            try:
                with self._http.stream("GET", self._p("activities", activity_id, "log"),
                                       params={"after": after, "follow": follow},
                                       timeout=timeout) as r:
                    self._check(r)
                    for raw in r.iter_lines():
                        if not raw.strip():
                            continue
                        event = json.loads(raw)
                        if "error" in event and isinstance(event["error"], dict):
                            raise error_for(int(event["error"].get("status", 500)), event,
                                            self.url)
                        if "message" in event:
                            after = int(event["id"])
                        cuts = 0  # the server is there again
                        yield event
                        if event.get("sealed"):
                            return
                        if time.monotonic() > deadline:
                            raise ServiceUnavailable(
                                f"stopped following activity {activity_id} after "
                                f"{_follow_timeout():.0f} s (SNAPKEEP_FOLLOW_TIMEOUT); it goes "
                                f"on on the server: `snapkeep activity:log {activity_id}`")
            except httpx.HTTPError as e:
                # A cut stream, or a server restarting after one, is asked again.
                cut = isinstance(e, httpx.ReadTimeout | httpx.RemoteProtocolError |
                                 httpx.ReadError) or (cuts > 0 and
                                                      isinstance(e, httpx.ConnectError))
                if not follow or not cut or cuts >= STREAM_RETRIES:
                    raise self._unreachable(e) from None
            else:
                if not follow:
                    return
            cuts += 1  # cut without a seal (the server restarting): ask again from `after`
            if cuts > STREAM_RETRIES:
                raise ServiceUnavailable(
                    f"the server at {self.url} kept closing the log stream of activity "
                    f"{activity_id}; it may still run: `snapkeep activity:log {activity_id}`")
            time.sleep(min(10.0, 2.0 ** (cuts - 1)))  # 1, 2, 4, 8, 10 s

    def follow_log(self, activity_id: str, *, follow: bool) -> Iterator[LogLine]:
        for event in self.events(activity_id, follow=follow):
            if "message" in event:
                at = _dt(event["at"])
                assert at is not None
                yield LogLine(int(event["id"]), at, event["message"])

    def _follow(self, a: Activity, observer: Observer | None) -> Activity:
        """Follow a queued activity to its end through its log stream."""
        if observer:
            observer.on_start(a)
        for event in self.events(a.id):
            if observer and "message" in event:
                observer.on_log(event["message"])
            elif observer and "progress" in event:
                observer.on_progress(float(event["progress"]))
        done = self.get_activity(a.id)
        if done.result != "success":
            raise _failure(done)
        return done


# -- choosing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    url: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"Credentials(url={self.url!r})"


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash or ``/api``."""
    value = (url or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"server URL {url!r} must start with http:// or https://, as in "
                         "https://snapkeep.example.com")
    if value.endswith("/api"):
        value = value[:-4]
    return value


def credentials_path() -> Path:
    """Where ``auth:login`` keeps the server and token: ``$XDG_CONFIG_HOME/snapkeep/
    credentials.json`` (default ``~/.config``), readable by the user only."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "snapkeep" / "credentials.json"


def stored_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the stored login {path}: {e}; run `snapkeep "
                          "auth:logout` and log in again") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or \
            not isinstance(data.get("token"), str):
        raise ConfigError(f"the stored login {path} is damaged; run `snapkeep auth:logout` "
                          "and log in again")
    return Credentials(data["url"], data["token"])


def store_credentials(creds: Credentials) -> Path:
    """Write the login with mode 0600 (its directory 0700), replacing any other."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": creds.url, "token": creds.token}, f)
    os.replace(tmp, path)
    return path


def forget_credentials() -> Credentials | None:
    """Remove the stored login; the one removed, if any."""
    creds = None
    with contextlib.suppress(ConfigError):  # a damaged file is removed all the same
        creds = stored_credentials()
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return None
    return creds or Credentials("")


def remote_settings() -> Credentials | None:
    """The server to talk to: SNAPKEEP_URL + SNAPKEEP_TOKEN, else the stored login (its
    token also serves SNAPKEEP_URL when that names the same server); None: local."""
    url, token = os.environ.get("SNAPKEEP_URL", "").strip(), \
        os.environ.get("SNAPKEEP_TOKEN", "").strip()
    stored = stored_credentials()
    if not url:
        if stored is None:
            if token:
                raise UsageError("SNAPKEEP_TOKEN is set but SNAPKEEP_URL is not: set it to "
                                 "the server's address, e.g. https://snapkeep.example.com")
            return None
        return Credentials(normalize_url(stored.url), token or stored.token)
    url = normalize_url(url)
    if not token and stored is not None and normalize_url(stored.url) == url:
        token = stored.token
    if not token:
        raise AuthenticationError(f"SNAPKEEP_URL is {url} but no API token is given: set "
                                  "SNAPKEEP_TOKEN, or run `snapkeep auth:login --url "
                                  f"{url} --token-stdin`")
    return Credentials(url, token)


def connect(load: Callable[[], Context], project: str | None) -> Client:
    """The client for this command: remote when a server is configured (see
    ``remote_settings``), else local over ``load()``."""
    remote = remote_settings()
    if remote is None:
        return LocalClient(load())
    return RemoteClient(remote.url, remote.token, project)
