"""Entries a restore keeps from the live mount (``prepare_restore(keep=…)``, e.g. the
maintenance flag): copied into the staging tree over the snapshot's, owners too as root."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from snapkeep.engines.volumes.layout import remove_tree
from snapkeep.engines.volumes.staging import Builder
from snapkeep.engines.volumes.tree import DIR, Entry
from snapkeep.errors import ConfigError


def keep_path(rel: str) -> tuple[str, ...]:
    """A path to keep, relative to the mount, as its components; ConfigError if it is
    empty or climbs out of the mount."""
    parts = tuple(p for p in rel.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        raise ConfigError(f"invalid path {rel!r} to keep: give a path inside the mount")
    return parts


def carry_over(builder: Builder, live: Path, keep: frozenset[str]) -> None:
    """Copy the ``keep`` paths present in the live mount into the staging tree, each
    replacing the snapshot's entry (its parents created as needed)."""
    for rel in sorted(keep):
        parts = keep_path(rel)
        src = _live_source(live, parts)
        if src is None:
            continue
        try:
            _copy_in(builder, live, parts, src)
        except OSError as e:
            raise builder.unwritable(os.path.join(builder.staging, *parts), e) from e
        builder.reporter.log(f"kept {'/'.join(parts)} from the live mount")

def _live_source(live: Path, parts: tuple[str, ...]) -> Path | None:
    """The live path to keep, if it exists with only real directories above it."""
    path = live
    for i, part in enumerate(parts):
        path = path / part
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None
    return path

def _copy_in(builder: Builder, live: Path, parts: tuple[str, ...], src: Path) -> None:
    for i in range(1, len(parts)):
        rel = os.fsencode("/".join(parts[:i]))
        p = builder.path(rel)
        if os.path.isdir(p) and not os.path.islink(p):
            continue
        remove_tree(p)
        os.mkdir(p, 0o700)
        st = os.lstat(live.joinpath(*parts[:i]))
        builder.dirs.append(Entry(rel, DIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                               st.st_mtime_ns, 0))
    rel = os.fsencode("/".join(parts))
    builder.dirs = [d for d in builder.dirs if d.path != rel and not d.path.startswith(rel + b"/")]
    dst = os.fsdecode(builder.path(rel))
    remove_tree(dst)
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        shutil.copytree(src, dst, symlinks=True)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)
    else:
        return
    if builder.attrs.as_root:
        _copy_owners(src, dst)

def _copy_owners(src: Path, dst: str) -> None:
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(src):
            for name in dirnames + filenames:
                s = os.lstat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), src)
                os.lchown(os.path.join(dst, rel), s.st_uid, s.st_gid)
        # lchown clears setuid/setgid bits of files: copy the modes again
        for dirpath, _dirnames, filenames in os.walk(src):
            for name in filenames:
                s = os.lstat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), src)
                if stat.S_ISREG(s.st_mode):
                    os.chmod(os.path.join(dst, rel), stat.S_IMODE(s.st_mode))
    elif stat.S_ISREG(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
