"""The README's Quick start says how to install the `snapkeep` command (issue 13, item 15)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_quick_start_keeps_demo_and_test_and_gives_an_install_line():
    section = quick_start()
    assert "scripts/demo" in section and "scripts/test" in section
    install = [line for line in section.splitlines()
               if re.search(r"python3 -m venv \S+ && \S+/bin/pip install \.", line)]
    assert install, "no one-line install in the Quick start"
    # The line puts the venv's `snapkeep` on PATH: the console script must exist.
    assert "bin/snapkeep" in install[0]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["snapkeep"] == "snapkeep.cli.main:main"
