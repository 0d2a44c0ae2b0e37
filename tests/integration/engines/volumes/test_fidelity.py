"""Mount fidelity: hard links, extended attributes (POSIX ACLs included), sparse files,
FIFOs, owners, special modes and nanosecond mtimes survive a snapshot and a restore, an
export and an extraction, with real files on the test machine's filesystem."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from snapkeep.engines.volumes import measure_mount, prepare_restore, snapshot_mount
from snapkeep.engines.volumes.export import UnsafeArchive, export_tar, extract_tar
from snapkeep.engines.volumes.staging import presize
from snapkeep.engines.volumes.tree import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    decode_tree,
    encode_tree,
)
from snapkeep.errors import IntegrityError
from snapkeep.repository import Repository
from snapkeep.repository.blobs import BlobRef
from tests.helpers.recording import Recorder

MiB = 1 << 20
ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="owners and trusted.* attributes need root")

# POSIX ACLs as the kernel stores them in system.posix_acl_*: a version, then
# (tag, permissions, id) entries sorted by tag and id.
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 1, 2, 4, 8, 0x10, 0x20
_NO_ID = 0xFFFFFFFF


def acl(*named: tuple[int, int, int]) -> bytes:
    entries = [(_USER_OBJ, 6, _NO_ID), *named, (_GROUP_OBJ, 4, _NO_ID), (_MASK, 6, _NO_ID),
               (_OTHER, 4, _NO_ID)]
    entries.sort(key=lambda e: (e[0], e[2]))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


ACL_ACCESS = acl((_USER, 6, 1001), (_GROUP, 4, 2002))
ACL_DEFAULT = acl((_USER, 7, 1003))


pytestmark = pytest.mark.usefixtures("no_racy_window")


def xattrs(path: bytes) -> dict[str, bytes]:
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in sorted(os.listxattr(path, follow_symlinks=False))}


def fingerprint(root: Path) -> dict[bytes, tuple]:
    """Everything a restore must give back, per path: kind, mode, owner, mtime, size, link
    target, content digest, extended attributes, and the hard-link group (the group's
    paths, not inode numbers, so two trees compare)."""
    base = os.fsencode(root)
    out: dict[bytes, tuple] = {}
    groups: dict[int, list[bytes]] = {}
    stats: dict[bytes, os.stat_result] = {}

    def add(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        stats[rel] = st
        target = digest = None
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            groups.setdefault(st.st_ino, []).append(rel)
        out[rel] = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    st.st_mtime_ns, st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                    target, digest, xattrs(path)]

    add(base, b"")
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            add(full, os.path.relpath(full, base))
    for paths in groups.values():
        for rel in paths:
            out[rel].append(tuple(sorted(paths)))
    return {rel: tuple(v) for rel, v in out.items()}


def tree_of(repo: Repository, desc: dict) -> list[Entry]:
    return list(decode_tree(io.BytesIO(repo.read_blob(BlobRef.from_json(desc["tree"])))))


def restore(mount: Path, desc: dict, repo: Repository, rec: Recorder | None = None) -> None:
    prepared = prepare_restore(mount, desc, repo, rec or Recorder())
    prepared.swap()
    prepared.finish()


def set_times(mount: Path) -> None:
    """Distinct nanosecond mtimes everywhere, directories last."""
    for i, (dirpath, dirnames, filenames) in enumerate(
            os.walk(os.fsencode(mount), topdown=False)):
        for name in filenames + dirnames:
            t = 1_600_000_000_000_000_001 + i * 1_000_003 + 7 * len(name)
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
        os.utime(dirpath, ns=(1_500_000_000_123_456_789 + i,) * 2)


def hard_links(mount: Path, outside: Path) -> None:
    (mount / "a").mkdir()
    (mount / "b").mkdir()
    (mount / "skip").mkdir()
    (mount / "a" / "three").write_bytes(b"one inode, three names\n" * 1000)
    os.link(mount / "a" / "three", mount / "a" / "three-again")
    os.link(mount / "a" / "three", mount / "b" / "three-elsewhere")
    (mount / "b" / "pair").write_text("a pair, one of them excluded")
    os.link(mount / "b" / "pair", mount / "skip" / "pair")
    os.link(mount / "b" / "pair", mount / "b" / "pair-2")
    (mount / "shared-out").write_text("also linked from outside the mount")
    os.link(mount / "shared-out", outside)
    (mount / "b" / "setuid-pair").write_text("#!/bin/sh\n")
    os.link(mount / "b" / "setuid-pair", mount / "b" / "setuid-pair-2")
    if ROOT:
        os.chown(mount / "b" / "setuid-pair", 1234, 5678)
    os.chmod(mount / "b" / "setuid-pair", 0o6755)


def test_hard_link_groups_come_back_as_links_within_the_mount(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    hard_links(mount, tmp_path / "outside-link")
    set_times(mount)
    rec = Recorder()
    desc = snapshot_mount(mount, repo, rec, exclude=frozenset({"skip"}))
    # progress: each inode's bytes once, as estimated (skip/pair is b/pair's inode)
    assert rec.done == desc["bytes"] == measure_mount(mount)
    entries = {e.path: e for e in tree_of(repo, desc)}
    # the first path of a group in tree order holds the content; the others name it
    assert entries[b"a/three"].type == FILE
    assert (entries[b"a/three-again"].type, entries[b"a/three-again"].link) == \
        (HARDLINK, b"a/three")
    assert entries[b"b/three-elsewhere"].link == b"a/three"
    assert entries[b"b/pair"].type == FILE and entries[b"b/pair-2"].link == b"b/pair"
    assert entries[b"shared-out"].type == FILE
    assert desc["hardlinks"] == 4 and desc["files"] == 4
    assert entries[b"a/three-again"].blob is None
    expected = {k: v for k, v in fingerprint(mount).items() if not k.startswith(b"skip")}
    # the restore has no excluded link nor outside one: the groups' other names remain
    for rel in (b"b/pair", b"b/pair-2", b"shared-out"):
        expected[rel] = (*expected[rel][:-1], tuple(p for p in expected[rel][-1]
                                                    if not p.startswith(b"skip")))

    (mount / "a" / "three").unlink()
    (mount / "b" / "pair").write_text("changed")
    restore(mount, desc, repo)

    assert fingerprint(mount) == expected
    three = {os.lstat(mount / p).st_ino for p in ("a/three", "a/three-again",
                                                  "b/three-elsewhere")}
    assert len(three) == 1 and os.lstat(mount / "a" / "three").st_nlink == 3
    assert os.lstat(mount / "b" / "pair").st_nlink == 2
    assert os.lstat(mount / "shared-out").st_nlink == 1
    st = os.lstat(mount / "b" / "setuid-pair-2")
    assert stat.S_IMODE(st.st_mode) == 0o6755 and st.st_nlink == 2
    if ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_a_hard_link_to_anything_but_a_file_restored_before_is_refused(tmp_path, repo):
    blob = repo.blob_writer()
    blob.write(b"x")
    content = blob.close()

    def tree(*entries: Entry) -> dict:
        writer = repo.blob_writer()
        writer.write(encode_tree([Entry(b"", DIR, 0o755, 0, 0, 0, 0), *entries]))
        return {"kind": "volume", "format": 3, "tree": writer.close().to_json()}

    f = Entry(b"d/f", FILE, 0o644, 0, 0, 0, 1, blob=content)
    outside = tmp_path / "outside.txt"
    outside.write_text("not to be linked")
    cases = {
        "a symlink": [Entry(b"a", SYMLINK, 0o777, 0, 0, 0, 1, target=str(outside).encode()),
                      Entry(b"b", HARDLINK, 0o644, 0, 0, 0, 1, link=b"a")],
        "a directory": [Entry(b"d", DIR, 0o755, 0, 0, 0, 0), f,
                        Entry(b"e", HARDLINK, 0o644, 0, 0, 0, 1, link=b"d")],
        "through a symlink": [Entry(b"d", DIR, 0o755, 0, 0, 0, 0), f,
                              Entry(b"l", SYMLINK, 0o777, 0, 0, 0, 1, target=b"d"),
                              Entry(b"m", HARDLINK, 0o644, 0, 0, 0, 1, link=b"l/f")],
        "nothing": [Entry(b"z", HARDLINK, 0o644, 0, 0, 0, 1, link=b"y")],
    }
    for case, entries in cases.items():
        mount = tmp_path / case.replace(" ", "-")
        mount.mkdir()
        with pytest.raises(IntegrityError, match="hard link"):
            prepare_restore(mount, tree(*entries), repo, Recorder())
        assert os.listdir(mount) == [] and outside.stat().st_nlink == 1, case
        assert [n for n in os.listdir(tmp_path) if ".snapkeep-" in n] == [], case


def attributes(mount: Path) -> None:
    (mount / "plain").write_text("created before the default ACL: no ACL of its own")
    (mount / "d").mkdir()
    (mount / "d" / "before").write_text("no ACL")
    os.setxattr(mount / "d", "system.posix_acl_default", ACL_DEFAULT)
    (mount / "d" / "inherits").write_text("inherits the default ACL as its access ACL")
    (mount / "acl").write_text("an access ACL")
    os.setxattr(mount / "acl", "system.posix_acl_access", ACL_ACCESS)
    (mount / "tagged").write_text("user attributes")
    os.setxattr(mount / "tagged", "user.origin", b"camera \xe2\x98\x83")
    os.setxattr(mount / "tagged", "user.binary", b"\xff\x00\xfe not UTF-8")
    os.setxattr(mount / "tagged", "user.empty", b"")
    os.setxattr(mount / "d", "user.dir", b"on a directory")
    os.setxattr(mount, "user.root", b"on the mount root")
    os.mkfifo(mount / "pipe", 0o640)
    os.symlink("acl", mount / "link")
    if ROOT:
        os.setxattr(mount / "link", "trusted.on-link", b"symlink", follow_symlinks=False)
        os.setxattr(mount / "pipe", "trusted.on-fifo", b"fifo", follow_symlinks=False)
        os.setxattr(mount / "tagged", "security.label", b"lbl")


def test_extended_attributes_and_acls_are_kept_and_nothing_else_is_inherited(tmp_path, repo):
    app = tmp_path / "app"
    mount = app / "m"
    mount.mkdir(parents=True)
    attributes(mount)
    set_times(mount)
    before = fingerprint(mount)
    assert before[b"d/inherits"][8]["system.posix_acl_access"]  # the kernel made it
    assert "system.posix_acl_access" not in before[b"d/before"][8]
    desc = snapshot_mount(mount, repo, Recorder())
    line = next(json.loads(raw) for raw in repo.read_blob(BlobRef.from_json(desc["tree"]))
                .splitlines() if json.loads(raw)["path"] == "tagged")
    assert list(line["xattrs"]) == sorted(line["xattrs"])

    # The restore lands under a directory whose default ACL would be inherited.
    os.setxattr(app, "system.posix_acl_default", ACL_ACCESS)
    for name in ("acl", "tagged", "plain"):
        os.unlink(mount / name)
    rec = Recorder()
    restore(mount, desc, repo, rec)
    assert fingerprint(mount) == before
    assert not any(line.startswith("warning:") for line in rec.lines), rec.lines


def test_an_attribute_the_filesystem_refuses_is_a_warning_not_a_failure(tmp_path, repo):
    writer = repo.blob_writer()
    # user.* attributes exist only on files and directories: a symlink cannot take one
    writer.write(encode_tree([
        Entry(b"", DIR, 0o755, 0, 0, 0, 0),
        Entry(b"l", SYMLINK, 0o777, 0, 0, 5, 1, target=b"x", xattrs=(("user.no", b"1"),)),
    ]))
    desc = {"kind": "volume", "format": 3, "tree": writer.close().to_json()}
    mount = tmp_path / "m"
    rec = Recorder()
    restore(mount, desc, repo, rec)
    assert os.readlink(mount / "l") == "x"
    warnings = [line for line in rec.lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "user.no" in warnings[0] and "l" in warnings[0]


def sparse(mount: Path) -> dict[str, list[tuple[int, int]]]:
    """A 256 MiB file with three data extents, a file that is all hole, a dense file."""
    data = {0: os.urandom(4096), 100 * MiB: os.urandom(MiB + 17), 256 * MiB - 10: b"end" * 3
            + b"!"}
    with open(mount / "disk.img", "wb") as f:
        for offset, piece in data.items():
            f.seek(offset)
            f.write(piece)
    with open(mount / "hole", "wb") as f:
        f.truncate(10 * MiB)
    (mount / "dense").write_bytes(os.urandom(3 * MiB + 5))
    return {"disk.img": [(o, len(p)) for o, p in data.items()]}


def data_extents(path: Path) -> list[tuple[int, int]]:
    out = []
    with open(path, "rb") as f:
        size, pos = os.fstat(f.fileno()).st_size, 0
        while pos < size:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            out.append((start, pos - start))
    return out


def test_sparse_files_are_stored_as_their_data_and_restored_with_holes(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    sparse(mount)
    set_times(mount)
    before = fingerprint(mount)
    rec = Recorder()
    desc = snapshot_mount(mount, repo, rec)
    assert rec.done == desc["bytes"] == measure_mount(mount)  # holes count as done
    entries = {e.path: e for e in tree_of(repo, desc)}
    img = entries[b"disk.img"]
    assert img.size == 256 * MiB and img.extents == tuple(data_extents(mount / "disk.img"))
    assert img.blob is not None and img.blob.size == sum(n for _, n in img.extents) < 4 * MiB
    assert entries[b"hole"].extents == () and entries[b"hole"].blob.size == 0
    assert entries[b"dense"].extents is None
    assert desc["bytes"] == 256 * MiB + 10 * MiB + 3 * MiB + 5

    for name in ("disk.img", "hole"):
        (mount / name).write_bytes(b"overwritten")
    restore(mount, desc, repo)
    assert fingerprint(mount) == before
    assert os.lstat(mount / "disk.img").st_blocks * 512 < 4 * MiB
    assert data_extents(mount / "disk.img") == list(img.extents)
    assert os.lstat(mount / "hole").st_blocks == 0


def test_the_files_cache_reuses_unchanged_sparse_and_hard_linked_files(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    sparse(mount)
    hard_links(mount, tmp_path / "outside-link")
    attributes(mount)
    first = snapshot_mount(mount, repo, Recorder())
    again = snapshot_mount(mount, repo, Recorder(), parent=first)
    assert again["reused"] == again["files"] == first["files"]
    assert again["hardlinks"] == first["hardlinks"] == 5
    assert repo.read_blob(BlobRef.from_json(again["tree"])) == \
        repo.read_blob(BlobRef.from_json(first["tree"]))


def test_fifos_modes_owners_and_nanosecond_mtimes_are_exact(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    os.mkfifo(mount / "pipe")
    os.chmod(mount / "pipe", 0o604)
    for name, mode in (("setuid", 0o4755), ("setgid", 0o2711), ("both", 0o6700),
                       ("sticky-file", 0o1644), ("none", 0o000)):
        (mount / name).write_text(name)
        os.chmod(mount / name, mode)
    for name, mode in (("sticky", 0o1777), ("setgid-dir", 0o2775), ("closed", 0o500)):
        (mount / name).mkdir()
        (mount / name / "inside").write_text(name)
        os.chmod(mount / name, mode)
    os.symlink("pipe", mount / "to-pipe")
    if ROOT:
        for i, name in enumerate(("pipe", "setuid", "setgid", "both", "sticky", "setgid-dir",
                                  "to-pipe")):
            os.chown(mount / name, 1000 + i, 2000 + i, follow_symlinks=False)
            if name not in ("pipe", "to-pipe"):
                os.chmod(mount / name, os.lstat(mount / name).st_mode)  # chown cleared s-bits
        os.chmod(mount / "setuid", 0o4755)
        os.chmod(mount / "setgid", 0o2711)
        os.chmod(mount / "both", 0o6700)
        os.chmod(mount / "setgid-dir", 0o2775)
    set_times(mount)
    before = fingerprint(mount)
    assert before[b"pipe"][0] == stat.S_IFIFO
    desc = snapshot_mount(mount, repo, Recorder())
    assert desc["fifos"] == 1

    os.unlink(mount / "pipe")
    os.chmod(mount / "setuid", 0o755)
    restore(mount, desc, repo)
    assert fingerprint(mount) == before


def test_sockets_and_devices_are_left_out_with_a_warning_line(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    (mount / "f").write_text("f")
    rec = Recorder()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(mount / "app.sock"))
        if ROOT:
            os.mknod(mount / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        desc = snapshot_mount(mount, repo, rec)
    assert [e.path for e in tree_of(repo, desc)] == [b"", b"f"]
    warned = [line for line in rec.lines if line.startswith("warning: skipped")]
    assert any("app.sock" in line for line in warned)
    if ROOT:
        assert any("null" in line for line in warned)


def test_a_format_2_tree_still_restores(tmp_path, repo):
    blob = repo.blob_writer()
    blob.write(b"old content")
    content = blob.close()
    writer = repo.blob_writer()
    # written as format 2 wrote it: no format-3 key or type
    writer.write(b"".join(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
                          + b"\n" for obj in [
        {"path": "", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0,
         "mtime_ns": 1_500_000_000_000_000_007, "size": 0},
        {"path": "d", "type": "dir", "mode": 0o2750, "uid": 0, "gid": 0,
         "mtime_ns": 1_500_000_000_000_000_009, "size": 0},
        {"path": "d/f", "type": "file", "mode": 0o4640, "uid": 0, "gid": 0,
         "mtime_ns": 1_600_000_000_000_000_001, "size": 11, "blob": content.to_json(),
         "ino": 42, "ctime_ns": 5},
        {"path": "l", "type": "symlink", "mode": 0o777, "uid": 0, "gid": 0,
         "mtime_ns": 1_600_000_000_000_000_003, "size": 3, "target": "d/f"},
    ]))
    desc = {"kind": "volume", "format": 2, "tree": writer.close().to_json(), "files": 1,
            "dirs": 1, "symlinks": 1, "bytes": 11}
    mount = tmp_path / "m"
    restore(mount, desc, repo)
    assert (mount / "d" / "f").read_bytes() == b"old content"
    st = os.lstat(mount / "d" / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o4640, 1_600_000_000_000_000_001)
    assert os.lstat(mount / "d").st_mtime_ns == 1_500_000_000_000_000_009
    assert os.readlink(mount / "l") == "d/f"
    rec = Recorder()  # and it is a parent the files cache can read
    assert snapshot_mount(mount, repo, rec, parent=desc)["files"] == 1
    assert not any("cannot be used" in line for line in rec.lines), rec.lines


def test_an_export_extracts_with_links_fifos_attributes_and_holes(tmp_path, repo):
    mount = tmp_path / "m"
    mount.mkdir()
    hard_links(mount, tmp_path / "outside-link")
    attributes(mount)
    with open(mount / "sparse", "wb") as f:
        f.seek(5 * MiB)
        f.write(b"data after a hole")
        f.truncate(9 * MiB)
    set_times(mount)
    before = fingerprint(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    out = io.BytesIO()
    export_tar(desc, repo, out, Recorder())

    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar}
    assert members["a/three-again"].islnk() and members["a/three-again"].linkname == "a/three"
    assert members["pipe"].isfifo()
    assert members["tagged"].pax_headers["SCHILY.xattr.user.origin"] == "camera \u2603"
    assert members["sparse"].isreg() and members["sparse"].size == 9 * MiB

    os.setxattr(tmp_path, "system.posix_acl_default", ACL_ACCESS)  # not to be inherited
    dest = tmp_path / "extracted"
    dest.mkdir()
    warned: list[str] = []
    extract_tar(io.BytesIO(out.getvalue()), dest, warn=warned.append)
    assert warned == []
    assert fingerprint(dest) == before
    assert os.lstat(dest / "a" / "three").st_nlink == 3


def hostile(*members: tuple[str, str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = data
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("h", "hardlink", "../outside.txt")],
    [("h", "hardlink", "{outside}")],
    [("s", "symlink", "{outside}"), ("h", "hardlink", "s")],
    [("d", "dir", ""), ("d/f", "file", "x"), ("l", "symlink", "d"), ("h", "hardlink", "l/f")],
    [("o", "symlink", "{tmp}"), ("h", "hardlink", "o/outside.txt")],
    [("d", "dir", ""), ("h", "hardlink", "d")],
], ids=["dotdot", "absolute", "to-a-symlink-out", "through-a-symlink", "through-a-link-out",
        "to-a-directory"])
def test_a_tar_hard_link_outside_or_through_a_symlink_is_refused(tmp_path, members):
    outside = tmp_path / "outside.txt"
    outside.write_text("must not gain a link")
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = hostile(*[(n, k, d.format(outside=outside, tmp=tmp_path))
                        for n, k, d in members])
    with pytest.raises(UnsafeArchive, match="refusing"):
        extract_tar(io.BytesIO(archive), dest)
    assert outside.stat().st_nlink == 1
    assert not os.path.lexists(dest / "h")


def test_dense_files_are_pre_allocated_and_end_with_their_exact_sizes(tmp_path, repo):
    """Files without holes are allocated whole before their content is written
    (``staging.presize``): the restored file has exactly its size and content, whatever
    its size against the filesystem's block, and a sparse neighbour keeps its holes."""
    mount = tmp_path / "m"
    mount.mkdir()
    sizes = [0, 1, 4095, 4096, 4097, MiB - 1, 3 * MiB + 5]
    for n in sizes:
        (mount / f"f{n}").write_bytes(os.urandom(n))
    with open(mount / "sparse", "wb") as f:
        f.seek(8 * MiB)
        f.write(b"tail")
    set_times(mount)
    before = fingerprint(mount)
    desc = snapshot_mount(mount, repo, Recorder())
    for n in sizes:
        (mount / f"f{n}").write_bytes(b"x" * (2 * n + 10))  # bigger: must not survive
    restore(mount, desc, repo)
    assert fingerprint(mount) == before
    for n in sizes:
        st = os.lstat(mount / f"f{n}")
        assert st.st_size == n and st.st_blocks * 512 >= n
    assert os.lstat(mount / "sparse").st_blocks * 512 < MiB


def test_presize_allocates_the_whole_file_before_any_write(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        presize(fd, 3 * MiB + 5)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    assert st.st_size == 3 * MiB + 5 and st.st_blocks * 512 >= 3 * MiB + 5
