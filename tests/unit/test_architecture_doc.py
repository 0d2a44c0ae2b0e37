"""docs/architecture.md names every module: a module the map leaves out is one a new
maintainer cannot find. A line names a module by its path (`services/snapshots/backup.py`)
or, after a path that sets the folder, by its name alone (`engines/mysql/` | `connect`, …)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "snapkeep"
DOC = ROOT / "docs" / "architecture.md"


def source_modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*"):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.suffix not in (".py", ".c") or path.name == "__init__.py":
            continue
        if rel.startswith("catalog/migrations/"):
            continue  # Alembic's environment and revisions: the catalog row names them as a whole
        found.add(rel)
    return found


def with_suffix(name: str) -> str:
    return name if name.endswith((".py", ".c")) else name + ".py"


def named_in_doc() -> set[str]:
    named = set()
    for line in DOC.read_text().splitlines():
        folder = ""
        for token in re.findall(r"`([^`\s]+)`", line):
            token = token.strip(",.;:()")
            if "/" in token:
                folder, _, leaf = token.rpartition("/")
                if leaf:
                    named.add(with_suffix(token))
            else:
                named.add(with_suffix(f"{folder}/{token}" if folder else token))
    return named


def test_every_module_is_on_the_map() -> None:
    missing = sorted(source_modules() - named_in_doc())
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


def test_every_path_on_the_map_exists() -> None:
    paths = {token.strip(",.;:()") for token in re.findall(r"`([^`\s]+)`", DOC.read_text())}
    stale = sorted(p for p in paths if "/" in p and p.endswith((".py", ".c"))
                   and not (PACKAGE / p).exists() and not (ROOT / p).exists())
    assert not stale, f"docs/architecture.md names files that do not exist: {', '.join(stale)}"
