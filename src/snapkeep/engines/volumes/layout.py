"""Where a restore keeps its work, and the small filesystem helpers the engine shares
(directories opened without following symlinks, an attribute removed if present).

A restore of the mount ``<parent>/<name>`` works in hidden directories named with one
random token ``<t>`` (hex):

- normally **beside** the mount (same filesystem, so the swap is two renames):
  ``<parent>/.<name>.snapkeep-staging-<t>`` (the new tree being built),
  ``<parent>/.<name>.snapkeep-old-<t>`` (the previous tree, kept until ``finish``),
  ``<parent>/.<name>.snapkeep-trash-<t>`` (a tree being deleted);
- **inside** the mount when the mount is itself a mount point (it cannot be renamed; its
  children are moved instead): ``<mount>/.snapkeep-staging-<t>``, ``.snapkeep-old-<t>``,
  ``.snapkeep-trash-<t>`` and ``.snapkeep-moving-<t>`` (previous children being moved
  out; renamed to ``-old-`` once all are out). Snapshots skip these names at the
  mount's top level.

Only names of exactly these shapes are ever deleted or renamed by cleanup.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from snapkeep.errors import ConfigError

STAGING, OLD, TRASH, MOVING = "staging", "old", "trash", "moving"
REMOVERS = max(2, os.cpu_count() or 2)  # threads deleting an old tree after a restore
# A directory opened as a base for ``dir_fd`` calls: never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_INNER = re.compile(r"^\.snapkeep-(staging|old|trash|moving)-([0-9a-f]{8,64})$")


def new_token() -> str:
    return secrets.token_hex(8)


def sibling(mount: Path, kind: str, token: str) -> Path:
    return mount.parent / f".{mount.name}.snapkeep-{kind}-{token}"


def inner(mount: Path, kind: str, token: str) -> Path:
    return mount / f".snapkeep-{kind}-{token}"


def parse_sibling(mount_name: str, name: str) -> tuple[str, str] | None:
    """(kind, token) when ``name`` is one of our work dirs beside ``mount_name``."""
    prefix = f".{mount_name}.snapkeep-"
    if not name.startswith(prefix):
        return None
    m = re.fullmatch(r"(staging|old|trash)-([0-9a-f]{8,64})", name[len(prefix):])
    return (m[1], m[2]) if m else None


def parse_inner(name: str) -> tuple[str, str] | None:
    """(kind, token) when ``name`` is one of our work dirs inside a mount-point mount."""
    m = _INNER.match(name)
    return (m[1], m[2]) if m else None


def is_inner_name(name: bytes | str) -> bool:
    return parse_inner(os.fsdecode(name)) is not None


def resolve_mount(mount_dir: Path, *, must_exist: bool) -> Path:
    """The real path of a configured mount (a symlinked mount root is followed once).

    ConfigError if it exists but is no directory, or if it is missing and must exist.
    A restore (``must_exist=False``) takes any state instead (``restore_path``).
    """
    path = Path(mount_dir)
    if not must_exist:
        return restore_path(path)
    if not os.path.lexists(path) or (path.is_symlink() and not path.exists()):
        if must_exist:
            raise ConfigError(
                f"mount {mount_dir} does not exist: create it or remove it from `mounts` "
                "in snapkeep.toml")
        return Path(os.path.realpath(path))
    real = Path(os.path.realpath(path))
    if not real.is_dir():
        raise ConfigError(
            f"mount {mount_dir} is not a directory: fix it or remove it from `mounts` "
            "in snapkeep.toml")
    return real


def restore_path(mount_dir: Path) -> Path:
    """Where a restore puts a mount, whatever is at its path now (the same answer in
    every state a killed restore can leave, so ``cleanup_leftovers`` finds its work):

    - a directory, or a symlink to one: its real path (a symlinked mount root, e.g. a
      deploy's link into a shared directory, is restored at its target and stays a link);
    - a dangling symlink whose target's parent directory exists: the target, likewise;
    - nothing, a regular file or other non-directory, a symlink to one or through a
      missing directory: the path itself (its real parent), replaced by the restore.
    """
    path = Path(mount_dir)
    here = Path(os.path.realpath(path.parent)) / path.name
    if not os.path.lexists(path):
        return here
    real = Path(os.path.realpath(path))
    if real.is_dir():
        return real
    if path.is_symlink() and not os.path.lexists(real) and real.parent.is_dir():
        return real
    return here


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def is_mount_point(path: Path) -> bool:
    """True if ``path`` is a mount point (bind mounts on the same device included)."""
    if os.path.ismount(path):
        return True
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = {_unescape_mountinfo(line.split(" ")[4]) for line in f if line.strip()}
    except OSError:
        return False
    return str(path) in points


def remove_tree(path: Path | str | bytes) -> None:
    """Delete a file or directory tree without following symlinks; missing is fine.

    Read-only directories inside (restored 0o555 dirs) are made writable as needed.
    """
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return

    def retry(func, failed, _exc_info):  # noqa: ANN001 - shutil's onerror signature
        try:
            parent = os.path.dirname(failed)
            os.chmod(parent, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed)
            else:
                func(failed)
        except FileNotFoundError:
            pass

    # Unlinking is kernel work that releases the GIL: the subdirectories of a big tree
    # (a media mount's old copy after a restore) are removed on parallel threads.
    try:
        subdirs = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        subdirs = []
    if len(subdirs) > 1:
        with ThreadPoolExecutor(REMOVERS, thread_name_prefix="snapkeep-rm") as pool:
            for _ in pool.map(lambda d: shutil.rmtree(d, onerror=retry), subdirs):
                pass
    shutil.rmtree(path, onerror=retry)


def printable(path: Path | str | bytes) -> str:
    """A path for messages: undecodable bytes shown as escapes, never an encoding error."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def parent_dir(root_fd: int, parts: Sequence[bytes]) -> Iterator[int]:
    """The open directory holding ``parts[-1]`` below ``root_fd``, reached one component at
    a time without following symlinks (an OSError when one is missing or not a real
    directory); what it opened is closed on exit, ``root_fd`` stays open."""
    fds: list[int] = []
    try:
        fd = root_fd
        for name in parts[:-1]:
            fd = os.open(name, DIR_FLAGS, dir_fd=fd)
            fds.append(fd)
        yield fd
    finally:
        for fd in fds:
            os.close(fd)


def drop_xattr(target: int | Path | bytes | str, name: str) -> None:
    """Remove ``name`` from an open descriptor or a path (not followed), if it is there."""
    try:
        os.removexattr(target, name, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
