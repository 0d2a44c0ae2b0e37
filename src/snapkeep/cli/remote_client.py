"""``RemoteClient``: a snapkeep server's REST API, as the token's user (see ``client.py``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from snapkeep import __version__
from snapkeep.cli.client import EnvironmentRef, RestorePreview
from snapkeep.cli.credentials import normalize_url
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
from snapkeep.services import gitinfo
from snapkeep.services.activities.info import ActivityInfo, LogLine
from snapkeep.services.activities.recorder import Observer
from snapkeep.services.snapshots import retention
from snapkeep.services.snapshots.listing import SnapshotInfo
from snapkeep.services.snapshots.restore_scope import RestoreScope
from snapkeep.services.transfer.exportdir import ExportWriter

if TYPE_CHECKING:
    import httpx

CONNECT_TIMEOUT = 5.0  # seconds to reach the server
REQUEST_TIMEOUT = 60.0  # seconds a plain request may take to answer
STREAM_READ_TIMEOUT = 60.0  # seconds of silence on a log stream (the server beats every 10 s)
FOLLOW_TIMEOUT = 24 * 3600.0  # overall bound on following one activity (SNAPKEEP_FOLLOW_TIMEOUT)
STREAM_RETRIES = 5  # reconnects of a cut log stream (~25 s in all) before giving up
DOWNLOAD_READ_TIMEOUT = 300.0  # seconds of silence on an export part's download
DOWNLOAD_PIECE = 1 << 20
UPLOAD_READ_TIMEOUT = 300.0  # seconds for the server's answer once an import is uploaded


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


def activity_from_json(d: dict[str, Any]) -> ActivityInfo:
    """An ActivityInfo from the API's activity object."""
    created = _dt(d["created_at"])
    assert created is not None
    return ActivityInfo(id=d["id"], type=d["type"], state=d["state"], result=d.get("result"),
                        completion_percent=d.get("completion_percent") or 0,
                        environment=d["environment"], description=d["description"],
                        actor=d.get("actor"), created_at=created,
                        started_at=_dt(d.get("started_at")),
                        completed_at=_dt(d.get("completed_at")),
                        snapshot_id=d.get("snapshot_id"), error=d.get("error"),
                        warnings=tuple(d.get("warnings") or ()))


def snapshot_from_json(d: dict[str, Any]) -> SnapshotInfo:
    created = _dt(d["created_at"])
    assert created is not None
    return SnapshotInfo(id=d["id"], environment=d["environment"], created_at=created,
                        expires_at=_dt(d.get("expires_at")), restorable=bool(d["restorable"]),
                        live=bool(d["live"]), automated=bool(d["automated"]),
                        commit_id=d.get("commit_id"), size_bytes=int(d["size_bytes"]),
                        added_bytes=d.get("added_bytes"), status=d["status"],
                        verified_at=_dt(d.get("verified_at")), verified_ok=d.get("verified_ok"),
                        engine=d.get("engine"))


def _failure(a: ActivityInfo) -> SnapkeepError:
    message = a.error or f"activity {a.id} ended {a.state} without saying why"
    return Cancelled(message) if a.state == "cancelled" else SnapkeepError(message)


def _follow_timeout() -> float:
    raw = os.environ.get("SNAPKEEP_FOLLOW_TIMEOUT")
    try:
        return float(raw) if raw else FOLLOW_TIMEOUT
    except ValueError:
        raise UsageError(f"SNAPKEEP_FOLLOW_TIMEOUT={raw!r} is not a number of seconds") \
            from None


AUTO_BASE = "auto"  # with "at": the API picks the base snapshot


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
                        observer: Observer | None) -> ActivityInfo:
        body: dict[str, Any] = {"safe": not live}
        if threads is not None:
            body["threads"] = threads
        a = activity_from_json(self._call("POST", self._p("environments", env, "backups"),
                                          json=body))
        return self._follow(a, observer) if wait else a

    def restore_snapshot(self, env: str, snapshot_id: str | None, *, threads: int | None,
                         wait: bool, observer: Observer | None, target: str | None = None,
                         scope: RestoreScope | None = None,
                         at: str | None = None) -> ActivityInfo:
        body: dict[str, Any] = {"threads": threads} if threads is not None else {}
        if target:
            body["target"] = target
        if at is not None:
            body["at"] = at
        snapshot_id = snapshot_id or AUTO_BASE
        if scope is not None:
            body.update(scope.to_options())
        a = activity_from_json(self._call(
            "POST", self._p("environments", env, "backups", snapshot_id, "restore"), json=body))
        return self._follow(a, observer) if wait else a

    def delete_snapshot(self, env: str, snapshot_id: str, *,
                        observer: Observer | None) -> ActivityInfo:
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

    def drill_snapshot(self, env: str, snapshot_id: str, *, threads: int | None, wait: bool,
                       observer: Observer | None) -> ActivityInfo:
        body: dict[str, Any] = {"threads": threads} if threads is not None else {}
        a = activity_from_json(self._call(
            "POST", self._p("environments", env, "backups", snapshot_id, "verify"), json=body))
        return self._follow(a, observer) if wait else a

    def export_snapshot(self, env: str, snapshot_id: str, dest: Path, *, force: bool,
                        wait: bool, observer: Observer | None) -> ActivityInfo | None:
        """Download every part of the snapshot's export into ``dest``, laid out as a
        local export (snapkeep-export.json written last). The server records each
        download as an export activity; none is returned here."""
        import httpx

        if not wait:
            raise UsageError("through a server, snapshot:export downloads the files into "
                             "this machine's directory, so it cannot run detached: leave out "
                             "-W/--no-wait")
        listing = self._call("GET", self._p("environments", env, "backups", snapshot_id,
                                            "export"))
        writer = ExportWriter(dest, force=force)
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT,
                                read=DOWNLOAD_READ_TIMEOUT)
        try:
            for part in listing["parts"]:
                if observer:
                    observer.on_log(f"Downloading {part['name']}")
                with writer.part(part["name"], compress=False) as out:
                    try:
                        with self._http.stream("GET", part["url"], timeout=timeout) as r:
                            self._check(r)
                            for piece in r.iter_bytes(DOWNLOAD_PIECE):
                                out.write(piece)
                    except httpx.HTTPError as e:
                        raise self._unreachable(e) from None
            writer.commit(listing["metadata"])
        except BaseException:
            writer.abort()
            raise
        return None

    def import_snapshot(self, env: str, source: Path, *, threads: int | None, wait: bool,
                        observer: Observer | None) -> ActivityInfo:
        """Upload what an import of ``source`` reads (a tar written as it is sent) to the
        server, which starts the import activity from it; follow it unless not ``wait``."""
        import httpx

        from snapkeep.cli.import_upload import TarBody, content_bytes, members

        path = self._p("environments", env, "backups", "import")
        mounts = self._call("GET", self._p("environments", env)).get("mounts") or []
        items = members(source, list(mounts))
        params: dict[str, Any] = {"size": content_bytes(items)}
        if threads is not None:
            params["threads"] = threads
        # The server's refusals (role, inactive, busy, no mariadb client, no room) before
        # any upload.
        self._call("POST", path, params={**params, "check": "true"})
        body = TarBody(items, observer.on_log if observer is not None else None)
        if observer is not None:
            observer.on_log(f"Uploading {source} to {self.url}")
        started = time.monotonic()
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT,
                                read=UPLOAD_READ_TIMEOUT)
        try:
            r = self._http.post(path, params=params, content=body, timeout=timeout,
                                headers={"Content-Type": "application/x-tar"})
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        self._check(r)
        if observer is not None:
            observer.on_log(f"Uploaded {body.files} files ({body.bytes / 2**20:.1f} MiB) in "
                            f"{time.monotonic() - started:.0f} s")
        a = activity_from_json(r.json())
        return self._follow(a, observer) if wait else a

    # -- activities ----------------------------------------------------------------------------

    def list_activities(self, env: str | None, *, limit: int) -> list[ActivityInfo]:
        params: dict[str, Any] = {"limit": limit}
        if env:
            params["environment"] = env
        return [activity_from_json(d) for d in self._call("GET", self._p("activities"),
                                                          params=params)]

    def get_activity(self, activity_id: str) -> ActivityInfo:
        return activity_from_json(self._call("GET", self._p("activities", activity_id)))

    def cancel_activity(self, activity_id: str) -> ActivityInfo:
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

    def _follow(self, a: ActivityInfo, observer: Observer | None) -> ActivityInfo:
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

