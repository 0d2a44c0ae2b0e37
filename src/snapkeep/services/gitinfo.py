"""What git says about the app root: the commit checked out, the branch."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def head_commit(root: Path) -> str | None:
    return _git(root, "rev-parse", "HEAD") if root.is_dir() else None


def current_branch(cwd: Path) -> str | None:
    branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    return branch


def work_tree_root(cwd: Path) -> Path | None:
    """The top of the git work tree holding ``cwd``, or None outside one."""
    top = _git(cwd, "rev-parse", "--show-toplevel")
    return Path(top).resolve() if top else None
