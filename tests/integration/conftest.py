from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.console import ConsoleProject, make_project


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A fresh repository in the test's temp dir (its master key kept in the repository)."""
    return Repository.init(LocalBackend(tmp_path / "repo"))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("20m")``: a small filesystem of its own, for full-disk tests (mounting needs
    root: the test is skipped otherwise). Unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"tmpfs-{len(mounted)}"
        mnt.mkdir()
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                           check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            pytest.skip(f"cannot mount a small tmpfs for a disk-full test: {e} "
                        f"{detail.decode(errors='replace').strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], check=False, capture_output=True, timeout=30)


@pytest.fixture
def project(tmp_path: Path) -> ConsoleProject:
    """A console project (catalog, users, one environment) in the test's temp dir."""
    return make_project(tmp_path)
