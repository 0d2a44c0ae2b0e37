from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A fresh repository in the test's temp dir (its master key kept in the repository)."""
    return Repository.init(LocalBackend(tmp_path / "repo"))
