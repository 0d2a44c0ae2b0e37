from __future__ import annotations

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
def project(tmp_path: Path) -> ConsoleProject:
    """A console project (catalog, users, one environment) in the test's temp dir."""
    return make_project(tmp_path)
