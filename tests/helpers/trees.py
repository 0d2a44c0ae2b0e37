"""Directory trees for the volume engine's tests: one with every kind of entry, and a
listing that compares two trees exactly (metadata and content)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

MiB = 1 << 20


def listing(root: Path) -> dict[bytes, tuple]:
    """(type, mode, size, mtime_ns, link target, sha256, uid, gid) of every entry."""
    base = os.fsencode(root)
    out: dict[bytes, tuple] = {}

    def add(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        mode, size, target, digest = stat.S_IMODE(st.st_mode), st.st_size, None, None
        if stat.S_ISLNK(st.st_mode):
            kind, mode, target = "symlink", None, os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            kind, size = "dir", None
        else:
            kind = "file"
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        out[rel] = (kind, mode, size, st.st_mtime_ns, target, digest, st.st_uid, st.st_gid)

    add(base, b"")
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            add(full, os.path.relpath(full, base))
    return out


def make_tree(mount: Path, *, big: int = 6 * MiB + 7) -> None:
    """A mount with every kind of entry the engine must keep exactly."""
    (mount / "a" / "b" / "c").mkdir(parents=True)
    (mount / "a" / "b" / "c" / "file.txt").write_text("nested\n")
    (mount / "empty-dir").mkdir()
    (mount / "empty2" / "nested-empty").mkdir(parents=True)
    (mount / "big.bin").write_bytes(os.urandom(big))
    (mount / "empty.txt").write_bytes(b"")
    os.symlink("a/b/c/file.txt", mount / "link-to-file")
    os.symlink("does/not/exist", mount / "dangling")
    os.symlink("../outside.txt", mount / "outside-link")
    os.symlink("/etc/passwd", mount / "absolute-link")
    (mount / "with space.txt").write_text("space")
    (mount / "ünïcødé-☃.txt").write_text("unicode")
    (Path(os.fsdecode(os.fsencode(mount) + b"/latin1-\xe9.txt"))).write_text("latin1")
    (mount / "-leading-dash").write_text("dash")
    (mount / "new\nline").write_text("newline")
    for name, mode in (("secret", 0o600), ("script.sh", 0o755), ("setuid", 0o4755)):
        (mount / name).write_text(name)
        os.chmod(mount / name, mode)
    (mount / "sticky").mkdir()
    (mount / "sticky" / "inside").write_text("x")
    os.chmod(mount / "sticky", 0o1777)
    (mount / "readonly").mkdir()
    (mount / "readonly" / "kept").write_text("ro")
    os.chmod(mount / "readonly", 0o555)
    for i, (dirpath, dirnames, filenames) in enumerate(os.walk(os.fsencode(mount),
                                                               topdown=False)):
        for name in filenames + dirnames:
            t = 1_600_000_000_000_000_000 + i * 1_000_003 + len(name)
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
        os.utime(dirpath, ns=(1_500_000_000_123_456_789 + i, 1_500_000_000_123_456_789 + i))


def new_mount(mount: Path, *, big: int = 6 * MiB + 7) -> Path:
    """``mount`` made with its parents and filled by make_tree."""
    mount.mkdir(parents=True)
    make_tree(mount, big=big)
    return mount


def killed_between_renames(mount: Path, prepared: Any, killed_in: str) -> None:
    """``mount`` as a restore (``prepared``) killed between its two renames leaves it:
    in ``"swap"`` the live tree moved aside, the new one not yet in place; in
    ``"rollback"`` (after a complete swap) the new tree moved aside, the old one not back."""
    if killed_in == "swap":  # the first rename of swap() happened, the second did not
        os.rename(mount, mount.parent / prepared.staging.name.replace("-staging-", "-old-"))
    else:  # swap() completed; rollback() moved the new tree aside and died
        prepared.swap()
        os.rename(mount, mount.parent / prepared.staging.name.replace("-staging-", "-trash-"))


def leftovers(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if ".snapkeep-" in n)


def siblings(app: Path) -> dict:
    return {k: v for k, v in listing(app).items()
            if k != b"" and k != b"var" and not k.startswith(b"var/")}
