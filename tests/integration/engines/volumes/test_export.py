"""A mount snapshot exported as a tar: the system tar and ``extract_tar`` both give back the
snapshotted tree, and ``extract_tar`` refuses archives that would write outside its
directory."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from snapkeep.engines.volumes import snapshot_mount
from snapkeep.engines.volumes.export import UnsafeArchive, export_tar, extract_tar
from snapkeep.errors import IntegrityError, UsageError
from snapkeep.progress import NullReporter
from snapkeep.repository.chunks import CDC_MAX
from tests.helpers.recording import Recorder
from tests.helpers.shop import tree

pytestmark = pytest.mark.usefixtures("no_racy_window")


def make_mount(mount: Path) -> None:
    (mount / "a" / "b" / "c").mkdir(parents=True)
    (mount / "a" / "b" / "c" / "deep.txt").write_text("nested\n")
    (mount / "empty-dir").mkdir()
    (mount / "ünïcødé ☃").mkdir()
    (mount / "ünïcødé ☃" / "naïve café.txt").write_text("unicode")
    Path(os.fsdecode(os.fsencode(mount) + b"/latin1-\xe9.txt")).write_text("latin1")
    (mount / "empty.txt").write_bytes(b"")
    (mount / "big.bin").write_bytes(os.urandom(CDC_MAX + 3 * 1024 * 1024 + 17))
    (mount / "private").write_text("secret")
    os.chmod(mount / "private", 0o600)
    (mount / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(mount / "run.sh", 0o755)
    os.chmod(mount / "a" / "b", 0o700)
    os.symlink("a/b/c/deep.txt", mount / "link-to-deep")
    os.symlink("../../empty.txt", mount / "a" / "b" / "up-link")
    for i, (dirpath, dirnames, filenames) in enumerate(
            os.walk(os.fsencode(mount), topdown=False)):
        for name in filenames + dirnames:
            t = 1_600_000_000_123_456_789 + i * 1_000_003 + len(name)
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
        os.utime(dirpath, ns=(1_500_000_000_987_654_321 + i,) * 2)


def root_attrs(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_mtime_ns


def test_an_exported_mount_extracts_to_the_same_tree_with_tar_and_extract_tar(repo, tmp_path):
    mount = tmp_path / "mount"
    mount.mkdir()
    make_mount(mount)
    before = tree(mount)
    description = snapshot_mount(mount, repo, NullReporter())
    archive = tmp_path / "var.tar"
    progress = Recorder()
    with archive.open("wb") as out:
        export_tar(description, repo, out, progress)
    assert progress.done == progress.total == description["bytes"] > CDC_MAX

    names = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, check=True,
                           timeout=120).stdout.decode("utf-8", "surrogateescape").splitlines()
    assert names[0] == "./" and "a/b/c/deep.txt" in names
    assert not any(n.startswith("/") or n.startswith("../") for n in names)

    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(by_tar)], check=True, timeout=120,
                   preexec_fn=lambda: os.umask(0o022))
    assert tree(by_tar) == before
    assert root_attrs(by_tar) == root_attrs(mount)

    by_us = tmp_path / "by-extract-tar"
    by_us.mkdir()
    with archive.open("rb") as src:
        extract_tar(src, by_us)
    assert tree(by_us) == before
    assert root_attrs(by_us) == root_attrs(mount)


def test_a_damaged_file_chunk_makes_the_export_raise_integrity_error(repo, tmp_path):
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "data.bin").write_bytes(os.urandom(100_000))
    description = snapshot_mount(mount, repo, NullReporter())
    repo.flush()
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file():
            raw = bytearray(pack.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            pack.write_bytes(bytes(raw))
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend

    damaged = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(IntegrityError):
        export_tar(description, damaged, io.BytesIO(), NullReporter())


# -- hostile archives ------------------------------------------------------------------------------

def archive_of(*members: tuple[str, str, bytes | str]) -> bytes:
    """A tar of (name, kind, content or link target) members, as a hostile tool could write."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
                         "chr": tarfile.CHRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                assert isinstance(data, str)
                info.linkname = data
            tar.addfile(info)
    return buf.getvalue()


HOSTILE = {
    "parent path": [("../escaped", "file", b"x")],
    "absolute path": [("/tmp/snapkeep-escaped", "file", b"x")],
    "dotdot inside": [("a/../../escaped", "file", b"x")],
    "write through a symlink": [("sub", "dir", ""), ("l", "symlink", "sub"),
                                ("l/escaped", "file", b"x")],
    "write through an absolute symlink": [("t", "symlink", str(Path("/tmp").resolve())),
                                          ("t/snapkeep-escaped", "file", b"x")],
    "write through a symlink out": [("up", "symlink", "../.."),
                                    ("up/snapkeep-escaped", "file", b"x")],
    "symlink with no target": [("l", "symlink", "")],
    "hardlink out": [("h", "hardlink", "../escaped")],
    "hardlink to nothing extracted": [("h", "hardlink", "etc/passwd")],
    "fifo, when the caller refuses them": [("pipe", "fifo", "")],
    "device": [("null", "chr", "")],
    "twice": [("f", "file", b"one"), ("f", "file", b"two")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_extract_tar_refuses_a_hostile_archive_without_writing_outside(tmp_path, case):
    dest = tmp_path / "work" / "dest"
    dest.mkdir(parents=True)
    outside = tree(tmp_path)
    del outside["work/dest"]
    with pytest.raises(UnsafeArchive) as e:
        extract_tar(io.BytesIO(archive_of(*HOSTILE[case])), dest, fifos="fifo" not in case)
    assert "refusing" in str(e.value)
    assert {k: v for k, v in tree(tmp_path).items()
            if k != "work/dest" and not k.startswith("work/dest/")} == outside
    assert not Path("/tmp/snapkeep-escaped").exists()


def test_extract_tar_keeps_symlinks_pointing_outside_as_links_and_names_them(tmp_path):
    dest = tmp_path / "work" / "dest"
    dest.mkdir(parents=True)
    outside = tree(tmp_path)
    del outside["work/dest"]
    links = {"etc": "/etc", "out": "../", "d/l": "x/../../../x", "d/in": "../etc",
             "shared/env.php": "/srv/shared/env.php"}
    found = extract_tar(io.BytesIO(archive_of(
        ("d", "dir", ""), ("shared", "dir", ""),
        *[(path, "symlink", target) for path, target in links.items()])), dest)
    for path, target in links.items():
        assert os.readlink(dest / path) == target
    # "d/in" -> "../etc" stays inside (it names the link "etc", whatever that points to)
    assert sorted(found) == sorted((p, t) for p, t in links.items() if p != "d/in")
    assert {k: v for k, v in tree(tmp_path).items()
            if k != "work/dest" and not k.startswith("work/dest/")} == outside


def test_extract_tar_keeps_links_inside_and_hardlinks_to_extracted_files(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_tar(io.BytesIO(archive_of(
        ("d/e/f.txt", "file", b"f"), ("d/e/up", "symlink", "../../d/e/f.txt"),
        ("d/same", "hardlink", "d/e/f.txt"))), dest)
    assert (dest / "d" / "e" / "up").read_text() == "f"
    assert os.stat(dest / "d" / "same").st_ino == os.stat(dest / "d" / "e" / "f.txt").st_ino


def test_extract_tar_needs_an_empty_directory(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "already").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        extract_tar(io.BytesIO(archive_of(("f", "file", b"x"))), tmp_path / "dest")
    with pytest.raises(UsageError, match="not a directory"):
        extract_tar(io.BytesIO(archive_of(("f", "file", b"x"))), tmp_path / "missing")
