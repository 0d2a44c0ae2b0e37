"""Load units of the shared fidelity corpora (``<repo>/../shared/corpora``) into a server.

The corpora directory is ``$SNAPKEEP_CORPORA`` if set, else ``<repo>/../shared/corpora``.
Tests call ``corpora_dir()`` (skips when absent), ``unit(name)`` and ``load_unit(server, u)``,
which follows the manifest's ``load_procedure``: drop the unit's databases, then run its
literal ``commands`` through bash with ``$CORPORA`` and ``$MARIADB`` set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from snapkeep.engines.mysql.encoding import ESCAPED, QUOTED, split_quoted_lines
from snapkeep.repository import BlobRef

REPO_ROOT = Path(__file__).resolve().parents[2]
_STDIN_MARK = re.compile(r"#\s*stdin\s*=\s*post_load\[(\d+)\]\.sql\s*$")


def corpora_dir() -> Path:
    """The corpora root; skips the calling test with a reason when it is not there."""
    root = Path(os.environ.get("SNAPKEEP_CORPORA") or REPO_ROOT / ".." / "shared" / "corpora")
    if not (root / "manifest.json").is_file():
        pytest.skip(f"fidelity corpora not found at {root} (set SNAPKEEP_CORPORA)")
    return root.resolve()


@cache
def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def unit(name: str) -> dict[str, Any]:
    units = {u["name"]: u for u in _manifest(corpora_dir())["units"]}
    if name not in units:
        pytest.skip(f"corpus unit {name!r} is not in the manifest")
    return units[name]


def load_unit(server: Any, u: dict[str, Any]) -> None:
    """Load one manifest unit into ``server`` (a PrivateMariaDB); fails the test on errors."""
    root = corpora_dir()
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            for db in u["databases"]:
                cur.execute("DROP DATABASE IF EXISTS `{}`".format(db.replace("`", "``")))
    finally:
        conn.close()
    with tempfile.TemporaryDirectory() as tmp:
        lines = ["set -e -o pipefail"]
        for cmd in u["commands"]:
            m = _STDIN_MARK.search(cmd)
            if m:
                sql_file = Path(tmp) / f"post_load_{m.group(1)}.sql"
                sql_file.write_text(u["post_load"][int(m.group(1))]["sql"])
                cmd = cmd[: m.start()].rstrip() + f" < '{sql_file}'"
            lines.append(cmd)
        env = dict(os.environ, CORPORA=str(root),
                   MARIADB=" ".join(server.client_args()))
        res = subprocess.run(["bash", "-c", "\n".join(lines)], env=env, capture_output=True,
                             text=True, check=False)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("ERROR")]
    if res.returncode != 0 or len(errors) > u.get("expected_client_errors", 0):
        pytest.fail(f"loading corpus unit {u['name']} failed (exit {res.returncode}):\n"
                    f"{res.stderr[-3000:]}")


def recut_parts(description: dict[str, Any], repo: Any, parts: int = 3) -> dict[str, Any]:
    """The same snapshot with ``parts`` row parts per table: a table's rows (the format-1
    ``rows`` blob, or its parts joined in order) cut at line boundaries into up to
    ``parts`` contiguous blobs, as the parallel dump writes them; an empty table gets no
    parts. Format 1 becomes format 2; format 3 keeps its line encoding per part."""
    out = json.loads(json.dumps(description))
    out["format"] = max(2, out["format"])
    for table in out["tables"]:
        refs = [table.pop("rows")] if "rows" in table else table["parts"]
        encodings = {r.get("encoding", ESCAPED) for r in refs} or {ESCAPED}
        if len(encodings) > 1:
            continue  # a part fell back to another encoding: leave the table as it is
        (encoding,) = encodings
        data = b"".join(repo.read_blob(BlobRef.from_json(r)) for r in refs)
        if encoding == QUOTED:  # newlines inside quotes do not end a row
            lines = [line + b"\n" for line in split_quoted_lines(data)]
        else:
            lines = [line + b"\n" for line in data.split(b"\n")[:-1]]  # rows end with LF
        size = max(1, -(-len(lines) // parts)) if lines else 0
        extra = {"encoding": encoding} if out["format"] >= 3 else {}
        table["parts"] = [{**repo.put_blob(b"".join(lines[i:i + size])).to_json(), **extra}
                          for i in range(0, len(lines), size)] if lines else []
    return out
