"""What the volume engine's tests share beyond tests/integration/conftest.py."""

from __future__ import annotations

import pytest

from snapkeep.engines.volumes import walk


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by a test are seconds old at most, so every one would be "racily clean"
    and lose its files-cache key: let the cache keep the keys, so trees are the same from
    one snapshot to the next whatever the machine's speed. A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("no_racy_window")``."""
    monkeypatch.setattr(walk, "RACY_WINDOW_NS", 0)
