"""The export directory (services/transfer/exportdir.py) and what an import accepts
(services/transfer/import_source.py), on real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from snapkeep.config import DatabaseURL, EnvironmentConfig
from snapkeep.errors import UsageError
from snapkeep.services.transfer import import_source
from snapkeep.services.transfer.exportdir import (
    METADATA,
    ExportWriter,
    HashingReader,
    read_metadata,
    remove_leftovers,
)

FACTS = {"snapshot_id": "s1", "environment": "dev", "database": True, "mounts": ["var"]}


def write_export(dest: Path, *, force: bool = False, parts: dict[str, bytes] | None = None,
                 facts: dict | None = None) -> dict:
    w = ExportWriter(dest, force=force)
    for name, data in (parts or {"database.sql.zst": b"CREATE TABLE t (a int);\n",
                                 "mounts/var.tar.zst": b"tar bytes"}).items():
        with w.part(name) as out:
            out.write(data)
    return w.commit(facts or FACTS)


def test_an_export_lists_each_file_with_its_size_and_sha256(tmp_path: Path) -> None:
    meta = write_export(tmp_path / "out")
    assert read_metadata(tmp_path / "out") == meta
    for name, facts in meta["files"].items():
        raw = (tmp_path / "out" / name).read_bytes()
        assert facts == {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO((tmp_path / "out" / "database.sql.zst").read_bytes())).read() == \
        b"CREATE TABLE t (a int);\n"
    assert sorted(os.listdir(tmp_path / "out")) == ["database.sql.zst", "mounts", METADATA]


def test_a_failed_export_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    w = ExportWriter(dest, force=False)
    with pytest.raises(RuntimeError), w.part("database.sql.zst") as out:
        out.write(b"half")
        raise RuntimeError("the engine failed")
    w.abort()
    assert os.listdir(dest) == ["notes.txt"]


def test_a_directory_holding_an_export_is_refused_unless_forced(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    write_export(dest)
    with pytest.raises(UsageError, match="already holds an export .snapshot s1 of dev.*--force"):
        ExportWriter(dest, force=False)
    meta = write_export(dest, force=True, parts={"mounts/pub/media.tar.zst": b"x"},
                        facts={**FACTS, "snapshot_id": "s2", "database": False})
    assert read_metadata(dest)["snapshot_id"] == "s2"
    assert list(meta["files"]) == ["mounts/pub/media.tar.zst"]
    # the parts of the replaced export are gone, not mistaken for the new one's
    assert not (dest / "database.sql.zst").exists()
    assert not (dest / "mounts" / "var.tar.zst").exists()


def test_work_directories_of_dead_exports_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    gone = tmp_path / f".snapkeep-export-{dead}-abc123.partial"
    mine = tmp_path / f".snapkeep-export-{os.getpid()}-def456.partial"
    other = tmp_path / ".snapkeep-export-notes"
    for d in (gone, mine, other):
        d.mkdir()
    assert remove_leftovers(tmp_path) == [gone.name]
    assert mine.exists() and other.exists()


def test_a_changed_file_fails_its_check() -> None:
    data = b"0123456789"
    r = HashingReader(io.BytesIO(data), "x.sql.zst")
    r.drain()
    r.verify({"size": 10, "sha256": hashlib.sha256(data).hexdigest()})
    with pytest.raises(UsageError, match="x.sql.zst does not match"):
        r.verify({"size": 10, "sha256": "0" * 64})


# -- what an import accepts ----------------------------------------------------------------------

def env(tmp_path: Path, database: bool = True) -> EnvironmentConfig:
    db = DatabaseURL(host="127.0.0.1", port=3306, user="u", database="shop") if database \
        else None
    return EnvironmentConfig(name="dev", type="development", root=tmp_path / "app",
                             mounts=("var", "pub/media"), database=db)


def test_an_export_directory_is_checked_against_its_description(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_export(out)
    src = import_source.inspect(env(tmp_path), out)
    assert src.sql == out / "database.sql.zst"
    assert src.mounts == {"var": out / "mounts" / "var.tar.zst"}
    size = (out / "mounts" / "var.tar.zst").stat().st_size
    with open(out / "mounts" / "var.tar.zst", "ab") as f:
        f.write(b"!")
    with pytest.raises(UsageError, match=f"var.tar.zst is {size + 1} bytes, not the {size} "):
        import_source.inspect(env(tmp_path), out)
    meta = json.loads((out / METADATA).read_text())
    meta["format"] = 99
    (out / METADATA).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="format 99, newer than this snapkeep reads"):
        import_source.inspect(env(tmp_path), out)


def test_a_dump_directory_takes_one_sql_file_and_known_mounts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pub" / "media").mkdir(parents=True)
    (src / "mounts").mkdir()
    (src / "mounts" / "var.tar.zst").write_bytes(b"")
    (src / "shop.sql.zst").write_bytes(b"")
    found = import_source.inspect(env(tmp_path), src)
    assert found.sql == src / "shop.sql.zst" and found.export is None
    assert found.mounts == {"pub/media": src / "pub" / "media",
                            "var": src / "mounts" / "var.tar.zst"}
    (src / "var").mkdir()
    with pytest.raises(UsageError, match="holds mount var twice"):
        import_source.inspect(env(tmp_path), src)
    (src / "var").rmdir()
    with pytest.raises(UsageError, match="has no `database` configured"):
        import_source.inspect(env(tmp_path, database=False), src)
    with pytest.raises(UsageError, match="is not a directory"):
        import_source.inspect(env(tmp_path), src / "shop.sql.zst")
