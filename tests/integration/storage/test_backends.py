"""One contract suite for every byte backend: the local directory and S3 (a real
SeaweedFS server, see tests/helpers/seaweed.py). Then what only one backend can show:
an S3 server that goes down and comes back, wrong credentials, a missing bucket; a local
disk that fills up."""

from __future__ import annotations

import errno
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from snapkeep.errors import NotFoundError, RepositoryError
from snapkeep.storage import (
    Backend,
    LocalBackend,
    RetryingBackend,
    get_range_into,
    open_backend,
)
from snapkeep.storage.base import TransientStorageError
from snapkeep.storage.s3 import S3Backend

if TYPE_CHECKING:
    from tests.helpers.seaweed import SeaweedS3

# The fixtures seaweed_s3 (one server per session) and private_seaweed_s3 (one per test).

MiB = 1024 * 1024

ODD_KEYS = [
    "odd/with space",
    "odd/plus+equals=amp&",
    "odd/question?hash#percent%20",
    "odd/colon:semi;comma,at@dollar$bang!",
    "odd/quote'paren(star)*tilde~",
    "odd/[brackets]{braces}^caret`pipe|",
    "odd/é-ünïcödé-漢字-😀",
    "odd/-leading-dash",
    "odd/dots..in..the..middle.",
    "odd/a/b/c/d/e/f/g/deep",
    "odd/" + "x" * 200,
]
BAD_KEYS = ["", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", ".hidden", "a/.tmp-x",
            "back\\slash", "nul\x00", "tab\tkey", "new\nline", "x" * 256, "a/" * 600 + "b"]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh, empty backend as `open_backend` builds it for the repository setting."""
    if request.param == "local":
        return open_backend(str(tmp_path / "repo"))
    server: SeaweedS3 = request.getfixturevalue("seaweed_s3")
    return open_backend(server.location(), server.options())


def _raw_s3(server: SeaweedS3, secret: str | None = None, **kwargs) -> S3Backend:
    opts = server.options(**({"secret_access_key": secret} if secret else {}))
    return S3Backend(server.bucket, f"t-{uuid.uuid4().hex[:12]}", endpoint=opts["endpoint"],
                     region=opts["region"], access_key_id=opts["access_key_id"],
                     secret_access_key=opts["secret_access_key"], **kwargs)


# -- the contract, on both backends ----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 20 * MiB], ids=["0B", "1B", "20MiB"])
def test_put_get_round_trip(backend: Backend, size: int) -> None:
    data = os.urandom(size)
    backend.put("data/obj", data)
    assert backend.get("data/obj") == data
    assert backend.exists("data/obj")


@pytest.mark.parametrize("size", [1000, 20 * MiB], ids=["1000B", "20MiB"])
def test_put_takes_a_view_of_a_buffer_reused_once_it_returns(backend: Backend, size: int) -> None:
    """The pack writer puts a view of its pack buffer and reuses the buffer afterwards."""
    data = os.urandom(size)
    buf = bytearray(size + 100)
    buf[:size] = data
    with memoryview(buf) as view:
        backend.put("data/view", view[:size])
    buf[:] = bytes(len(buf))
    assert backend.get("data/view") == data


def test_put_replaces_an_existing_key(backend: Backend) -> None:
    backend.put("k", b"first version, longer than the second")
    backend.put("k", b"second")
    assert backend.get("k") == b"second"
    assert list(backend.list()) == ["k"]


def test_missing_key_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFoundError) as e:
        backend.get("no/such/key")
    assert "no/such/key" in str(e.value)
    with pytest.raises(NotFoundError):
        backend.get_range("no/such/key", 0, 10)
    with pytest.raises(NotFoundError):
        backend.get_range("no/such/key", 0, 0)
    assert not backend.exists("no/such/key")
    backend.put("file", b"x")  # "under" a stored key is missing too, not an error
    with pytest.raises(NotFoundError):
        backend.get("file/below")
    with pytest.raises(NotFoundError):
        backend.get_range("file/below", 0, 1)
    assert not backend.exists("file/below")
    backend.delete("file/below")
    assert list(backend.list("file/")) == []


def test_exists_is_for_keys_not_directories(backend: Backend) -> None:
    backend.put("dir/sub/key", b"x")
    assert backend.exists("dir/sub/key")
    assert not backend.exists("dir/sub")
    assert not backend.exists("dir")
    assert not backend.exists("dir/sub/ke")


def test_list_by_prefix(backend: Backend) -> None:
    keys = ["a/1", "a/2", "ab/3", "abc", "b/4", "deep/x/y/z", "deep/x/w", "data/ab12", "data/ac"]
    for k in keys:
        backend.put(k, k.encode())
    assert sorted(backend.list()) == sorted(keys)
    assert sorted(backend.list("")) == sorted(keys)
    assert sorted(backend.list("a/")) == ["a/1", "a/2"]
    assert sorted(backend.list("a")) == ["a/1", "a/2", "ab/3", "abc"]
    assert sorted(backend.list("ab")) == ["ab/3", "abc"]
    assert sorted(backend.list("deep/")) == ["deep/x/w", "deep/x/y/z"]
    assert sorted(backend.list("deep/x/y")) == ["deep/x/y/z"]
    assert sorted(backend.list("data/ab")) == ["data/ab12"]
    assert list(backend.list("nothing/")) == []
    assert list(backend.list("a/1/")) == []


def test_list_many_keys(backend: Backend) -> None:
    """More than one S3 page (1,000 keys), each key exactly once."""
    keys = [f"many/{i:05d}" for i in range(1050)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: backend.put(k, b""), keys))
    backend.put("other/1", b"")
    listed = list(backend.list("many/"))
    assert len(listed) == len(keys)
    assert sorted(listed) == keys


def test_delete_is_idempotent(backend: Backend) -> None:
    backend.delete("never/existed")
    backend.put("gone/soon", b"x")
    backend.put("gone/stays", b"y")
    backend.delete("gone/soon")
    backend.delete("gone/soon")
    assert not backend.exists("gone/soon")
    with pytest.raises(NotFoundError):
        backend.get("gone/soon")
    assert list(backend.list("gone/")) == ["gone/stays"]


def test_get_range_into_reads_into_the_given_buffer(backend: Backend) -> None:
    """What a restore reads packs with: the same bytes as ``get_range``, into a buffer it
    reuses (the local backend reads straight into it; others are copied there)."""
    data = bytes(range(256)) * 4
    backend.put("pack", data)
    buf = bytearray(b"\xff" * 2048)
    view = memoryview(buf)
    assert get_range_into(backend, "pack", 100, view[:300]) == 300
    assert buf[:300] == data[100:400] and buf[300:] == b"\xff" * 1748
    assert get_range_into(backend, "pack", 1020, view[:10]) == 4  # short: the object ends
    assert buf[:4] == data[1020:]
    assert get_range_into(backend, "pack", 5000, view[:10]) == 0
    assert get_range_into(RetryingBackend(backend), "pack", 0, view[:1024]) == 1024
    assert buf[:1024] == data
    with pytest.raises(NotFoundError):
        get_range_into(backend, "no/such/key", 0, view[:10])


def test_get_range(backend: Backend) -> None:
    data = bytes(range(256)) * 4  # 1,024 bytes
    backend.put("pack", data)
    assert backend.get_range("pack", 0, 10) == data[:10]
    assert backend.get_range("pack", 100, 300) == data[100:400]
    assert backend.get_range("pack", 1014, 10) == data[1014:]
    assert backend.get_range("pack", 1020, 10) == data[1020:]  # short: the object ends
    assert backend.get_range("pack", 1024, 10) == b""
    assert backend.get_range("pack", 5000, 10) == b""
    assert backend.get_range("pack", 10, 0) == b""
    assert backend.get_range("pack", 0, 1024) == data
    assert backend.get_range("pack", 1000, 1 << 40) == data[1000:]  # no huge buffer
    backend.put("empty", b"")
    assert backend.get_range("empty", 0, 10) == b""
    with pytest.raises(ValueError):
        backend.get_range("pack", -1, 10)
    with pytest.raises(ValueError):
        backend.get_range("pack", 0, -1)


def test_get_range_of_a_large_object(backend: Backend) -> None:
    data = os.urandom(9 * MiB)
    backend.put("big", data)
    for offset, length in [(0, 1), (4 * MiB - 3, 7), (5 * MiB, 2 * MiB), (9 * MiB - 1, 100)]:
        assert backend.get_range("big", offset, length) == data[offset:offset + length]


def test_keys_with_odd_characters(backend: Backend) -> None:
    for k in ODD_KEYS:
        backend.put(k, k.encode())
    for k in ODD_KEYS:
        assert backend.get(k) == k.encode(), k
        assert backend.exists(k)
        assert backend.get_range(k, 0, 3) == k.encode()[:3]
    assert sorted(backend.list("odd/")) == sorted(ODD_KEYS)
    for k in ODD_KEYS:
        backend.delete(k)
    assert list(backend.list("odd/")) == []


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(RepositoryError, match="invalid repository key"):
        backend.put(key, b"x")
    with pytest.raises(RepositoryError, match="invalid repository key"):
        backend.get(key)
    with pytest.raises(RepositoryError, match="invalid repository key"):
        backend.delete(key)


def test_concurrent_puts(backend: Backend) -> None:
    """Threads putting distinct keys all land; threads racing on one key leave one whole
    value, never a mix or a prefix."""
    values = {f"c/{t}/{i}": os.urandom(1000 + t * 37 + i) for t in range(12) for i in range(6)}
    contenders = [bytes([t]) * (64 * 1024 + t) for t in range(12)]
    barrier = threading.Barrier(12)

    def work(t: int) -> None:
        barrier.wait(timeout=60)
        backend.put("c/same", contenders[t])
        for i in range(6):
            key = f"c/{t}/{i}"
            backend.put(key, values[key])

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(work, range(12)))
    for key, value in values.items():
        assert backend.get(key) == value
    assert backend.get("c/same") in contenders
    assert sorted(backend.list("c/")) == sorted([*values, "c/same"])


def test_ensure_is_idempotent(backend: Backend) -> None:
    backend.ensure()
    backend.ensure()
    backend.put("after-ensure", b"ok")
    assert backend.get("after-ensure") == b"ok"


# -- S3 only --------------------------------------------------------------------------------


def test_s3_describe(seaweed_s3: SeaweedS3) -> None:
    b = open_backend("s3://snapkeep-test/some/prefix/", seaweed_s3.options())
    assert b.describe() == f"s3://snapkeep-test/some/prefix at {seaweed_s3.endpoint}"
    assert open_backend("s3://snapkeep-test", seaweed_s3.options()).describe() == \
        f"s3://snapkeep-test at {seaweed_s3.endpoint}"


def test_s3_list_pages(seaweed_s3: SeaweedS3) -> None:
    raw = _raw_s3(seaweed_s3, page_size=7)
    keys = [f"p/{i:03d}" for i in range(30)]
    for k in keys:
        raw.put(k, b"")
    assert sorted(raw.list("p/")) == keys
    assert sorted(raw.list("p/01")) == [f"p/01{i}" for i in range(10)]


def test_s3_multipart_put(seaweed_s3: SeaweedS3) -> None:
    raw = _raw_s3(seaweed_s3, multipart_threshold=6 * MiB, part_size=5 * MiB)
    data = os.urandom(12 * MiB + 123)
    raw.put("mp", data)
    assert raw.get("mp") == data
    assert raw.get_range("mp", 5 * MiB - 10, 20) == data[5 * MiB - 10:5 * MiB + 10]
    uploads = seaweed_s3.client().list_multipart_uploads(Bucket=seaweed_s3.bucket)
    assert not [u for u in uploads.get("Uploads", []) if u["Key"].startswith(raw.prefix)]


def test_s3_objects_live_under_the_prefix(seaweed_s3: SeaweedS3) -> None:
    location = seaweed_s3.location()
    b = open_backend(location, seaweed_s3.options())
    b.put("config", b"{}")
    prefix = location.split("/", 3)[3]
    got = seaweed_s3.client().get_object(Bucket=seaweed_s3.bucket, Key=f"{prefix}/config")
    assert got["Body"].read() == b"{}"
    # A sibling prefix that merely starts the same is not ours.
    seaweed_s3.client().put_object(Bucket=seaweed_s3.bucket, Key=f"{prefix}x/config", Body=b"")
    assert list(b.list()) == ["config"]


def test_s3_wrong_secret_is_a_clear_error_without_the_secret(
        seaweed_s3: SeaweedS3, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    sleeps: list[float] = []
    b = RetryingBackend(_raw_s3(seaweed_s3, secret=wrong), sleep=sleeps.append)
    b2 = open_backend(seaweed_s3.location(), seaweed_s3.options(secret_access_key=wrong))
    caplog.set_level(logging.DEBUG, logger="snapkeep")
    for backend in (b, b2):
        for op in (lambda x: x.get("config"), lambda x: x.put("config", b"x"),
                   lambda x: x.exists("config"), lambda x: list(x.list())):
            with pytest.raises(RepositoryError) as e:
                op(backend)
            assert not isinstance(e.value, NotFoundError | TransientStorageError)
            msg = str(e.value)
            assert seaweed_s3.endpoint in msg
            assert "denied" in msg and "secret_access_key" in msg
            assert wrong not in msg and seaweed_s3.secret_key not in msg
    assert sleeps == []  # not retried
    assert wrong not in caplog.text


def test_s3_unknown_access_key(seaweed_s3: SeaweedS3) -> None:
    b = open_backend(seaweed_s3.location(),
                     seaweed_s3.options(access_key_id="NOSUCHKEYID", secret_access_key="nope-x"))
    with pytest.raises(RepositoryError, match="denied") as e:
        b.get("config")
    assert "nope-x" not in str(e.value) and "NOSUCHKEYID" not in str(e.value)


def test_s3_missing_bucket(seaweed_s3: SeaweedS3) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    b = open_backend(f"s3://{bucket}/repo", seaweed_s3.options())
    for op in (lambda: b.get("config"), lambda: b.put("config", b"{}"), lambda: list(b.list()),
               lambda: b.get_range("config", 0, 4)):
        with pytest.raises(RepositoryError) as e:
            op()
        assert not isinstance(e.value, NotFoundError)
        msg = str(e.value)
        assert f"bucket '{bucket}' does not exist at {seaweed_s3.endpoint}" in msg
        assert "create it" in msg
    assert not b.exists("config")  # HEAD cannot tell a missing bucket from a missing key


def test_s3_ensure_creates_a_missing_bucket(seaweed_s3: SeaweedS3) -> None:
    bucket = f"created-{uuid.uuid4().hex[:12]}"
    b = open_backend(f"s3://{bucket}/repo", seaweed_s3.options())
    b.ensure()
    b.ensure()
    b.put("config", b"{}")
    assert b.get("config") == b"{}"
    seaweed_s3.client().head_bucket(Bucket=bucket)


def _outage_backend(server: SeaweedS3, sleep, attempts: int = 3) -> RetryingBackend:
    opts = server.options()
    raw = S3Backend(server.bucket, "repo", endpoint=opts["endpoint"], region=opts["region"],
                    access_key_id=opts["access_key_id"],
                    secret_access_key=opts["secret_access_key"],
                    connect_timeout=2, read_timeout=10)
    return RetryingBackend(raw, attempts=attempts, base_delay=0.01, max_delay=0.05, sleep=sleep)


def test_s3_down_is_a_clear_error_after_bounded_retries_then_recovers(
        private_seaweed_s3: SeaweedS3, caplog: pytest.LogCaptureFixture) -> None:
    server = private_seaweed_s3
    sleeps: list[float] = []
    b = _outage_backend(server, sleeps.append, attempts=3)
    b.put("before", b"kept")
    server.kill()
    caplog.set_level(logging.WARNING, logger="snapkeep")
    for op in (lambda: b.put("during", b"x"), lambda: b.get("before"),
               lambda: b.exists("before"), lambda: list(b.list()), lambda: b.delete("before"),
               lambda: b.get_range("before", 0, 2)):
        sleeps.clear()
        with pytest.raises(RepositoryError) as e:
            op()
        assert not isinstance(e.value, TransientStorageError)
        msg = str(e.value)
        where = f"s3://{server.bucket}/repo at {server.endpoint}"
        assert f"storage at {where} is unavailable after 3 attempts" in msg
        assert "running and reachable" in msg
        assert server.secret_key not in msg
        assert len(sleeps) == 2 and all(0 < s <= 0.05 for s in sleeps)
    assert server.secret_key not in caplog.text
    assert "retrying" in caplog.text

    server.start()
    assert b.get("before") == b"kept"  # the same backend object works again
    b.put("after", b"new")
    assert sorted(b.list()) == ["after", "before"]


def test_s3_comes_back_during_the_retries(private_seaweed_s3: SeaweedS3) -> None:
    """The first attempt finds the server down; it is back before the second."""
    restarts: list[float] = []

    def sleep(delay: float) -> None:
        restarts.append(delay)
        private_seaweed_s3.start()

    b = _outage_backend(private_seaweed_s3, sleep, attempts=5)
    b.put("k", b"v1")
    private_seaweed_s3.kill()
    b.put("k", b"v2")
    assert len(restarts) == 1
    assert b.get("k") == b"v2"


# -- local only: disk full ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmpfs) -> Path:
    """A 2 MiB tmpfs (we need root to mount; skip otherwise)."""
    return tmpfs("2m")


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_disk_full(small_disk: Path) -> None:
    repo = small_disk / "repo"
    b = open_backend(str(repo))
    b.put("config", b"old config")
    sleeps: list[float] = []
    retrying = RetryingBackend(LocalBackend(repo), sleep=sleeps.append)
    for backend in (b, retrying):
        with pytest.raises(RepositoryError) as e:
            backend.put("data/big", os.urandom(3 * MiB))
        msg = str(e.value)
        assert f"the repository disk at {repo} is full" in msg
        assert "free space or move the repository" in msg
        assert isinstance(e.value.__cause__, OSError)
        assert e.value.__cause__.errno in (errno.ENOSPC, errno.EDQUOT)
        # An overwrite that does not fit leaves the old object whole.
        with pytest.raises(RepositoryError, match="is full"):
            backend.put("config", os.urandom(3 * MiB))
    assert sleeps == []  # a full disk is not retried
    assert _all_files(repo) == ["config"]  # temp files removed
    assert b.get("config") == b"old config"
    assert not b.exists("data/big")
    b.put("data/small", b"still fits")  # the failed puts gave their space back
    assert b.get("data/small") == b"still fits"


def test_local_ensure_creates_the_directory(tmp_path: Path) -> None:
    b = open_backend(str(tmp_path / "a" / "b" / "repo"))
    b.ensure()
    assert (tmp_path / "a" / "b" / "repo").is_dir()


def test_local_list_skips_temp_files(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/k", b"x")
    (tmp_path / "data" / ".k.tmp-1-abcd").write_bytes(b"partial")
    (tmp_path / ".hidden-dir").mkdir()
    (tmp_path / ".hidden-dir" / "k").write_bytes(b"")
    assert list(b.list()) == ["data/k"]
