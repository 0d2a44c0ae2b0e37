"""A tree from storage is untrusted: paths that would leave the mount are refused on restore.

Each hostile tree is built as raw JSON lines (what a tampered or buggy repository could
hold), stored with ``repo.put_blob`` and restored. The restore must raise IntegrityError
naming the bad path, leave the live mount as it was, remove its staging directory, and
write nothing anywhere else — checked at every place the entry would have landed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from snapkeep.engines.volumes import prepare_restore
from snapkeep.engines.volumes.staging import Builder
from snapkeep.engines.volumes.tree import DIR, FILE, SYMLINK, Entry
from snapkeep.errors import IntegrityError
from snapkeep.repository import Repository
from tests.helpers.recording import Recorder
from tests.helpers.trees import leftovers, listing


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "var" / "a").mkdir(parents=True)
    (root / "var" / "a" / "live.txt").write_text("live")
    (tmp_path / "elsewhere").mkdir()
    return root


def line(path: str, kind: str, **extra) -> dict:
    obj = {"path": path, "type": kind, "mode": 0o755 if kind == DIR else 0o644, "uid": 0,
           "gid": 0, "mtime_ns": 0, "size": 0}
    obj.update(extra)
    return obj


def file_line(repo: Repository, path: str) -> dict:
    ref = repo.put_blob(b"evil")
    return line(path, FILE, size=4, blob=ref.to_json())


def link_line(path: str, target: str) -> dict:
    return line(path, SYMLINK, mode=0o777, size=len(target.encode()), target=target)


def hostile(repo: Repository, lines: list[dict]) -> dict:
    data = b"".join(json.dumps(obj).encode() + b"\n" for obj in lines)
    return {"kind": "volume", "format": 2, "tree": repo.put_blob(data).to_json()}


def refused(app: Path, repo: Repository, desc: dict, bad: str, *targets: Path) -> None:
    mount = app / "var"
    before = listing(mount)
    elsewhere = listing(app.parent / "elsewhere")
    with pytest.raises(IntegrityError) as e:
        prepare_restore(mount, desc, repo, Recorder())
    assert bad in str(e.value) or repr(bad.encode())[2:-1] in str(e.value), str(e.value)
    assert listing(mount) == before
    assert leftovers(app) == []
    assert listing(app.parent / "elsewhere") == elsewhere
    for target in targets:
        assert not os.path.lexists(target), f"{target} was written"


ROOT = line("", DIR)


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "../../x", "./x", "a/./x", "a//x",
                                 "a/", "a/x\u0000y", "x\u0000/../../y"])
def test_a_relative_path_leaving_the_mount_or_malformed_is_refused(app, repo, tmp_path, bad):
    desc = hostile(repo, [ROOT, line("a", DIR), file_line(repo, bad)])
    refused(app, repo, desc, bad, app / "x", tmp_path / "x", app / "a" / "x", tmp_path / "y")


def test_an_absolute_path_is_refused(app, repo, tmp_path):
    target = tmp_path / "elsewhere" / "abs-x"
    desc = hostile(repo, [ROOT, file_line(repo, str(target))])
    refused(app, repo, desc, str(target), target)


def test_a_directory_entry_leaving_the_mount_is_refused(app, repo, tmp_path):
    desc = hostile(repo, [ROOT, line("../escaped", DIR), file_line(repo, "../escaped/x")])
    refused(app, repo, desc, "../escaped", app / "escaped", tmp_path / "escaped")


def test_a_file_through_a_symlink_entry_to_an_absolute_directory_is_refused(app, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    desc = hostile(repo, [ROOT, link_line("link", str(elsewhere)), file_line(repo, "link/evil")])
    refused(app, repo, desc, "link/evil", elsewhere / "evil")


def test_a_file_through_a_symlink_entry_to_the_parent_is_refused(app, repo, tmp_path):
    desc = hostile(repo, [ROOT, link_line("up", ".."), file_line(repo, "up/evil")])
    refused(app, repo, desc, "up/evil", app / "evil", tmp_path / "evil")


def test_a_directory_through_a_nested_symlink_entry_is_refused(app, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    desc = hostile(repo, [ROOT, line("a", DIR), link_line("a/l", str(elsewhere)),
                          line("a/l/sub", DIR), file_line(repo, "a/l/sub/evil")])
    refused(app, repo, desc, "a/l/sub", elsewhere / "sub")


def test_a_symlink_entry_repeated_as_a_directory_is_refused(app, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    desc = hostile(repo, [ROOT, link_line("d", str(elsewhere)), line("d", DIR),
                          file_line(repo, "d/evil")])
    refused(app, repo, desc, "d", elsewhere / "evil")


def test_symlinks_themselves_may_point_anywhere_and_are_restored_as_links(app, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    desc = hostile(repo, [ROOT, link_line("abs", str(elsewhere)), link_line("up", "../..")])
    prepared = prepare_restore(app / "var", desc, repo, Recorder())
    prepared.swap()
    prepared.finish()
    assert os.readlink(app / "var" / "abs") == str(elsewhere)
    assert os.readlink(app / "var" / "up") == "../.."
    assert os.listdir(elsewhere) == []


# -- the second line of defence: materialising entries that never went through the decoder --

def _entry(path: bytes, kind: str, repo: Repository, target: bytes | None = None) -> Entry:
    if kind == FILE:
        return Entry(path, FILE, 0o644, 0, 0, 0, 4, blob=repo.put_blob(b"evil"))
    if kind == SYMLINK:
        assert target is not None
        return Entry(path, SYMLINK, 0o777, 0, 0, 0, len(target), target=target)
    return Entry(path, DIR, 0o755, 0, 0, 0, 0)


@pytest.mark.parametrize("case", ["through symlink", "dot-dot", "absolute", "nul",
                                  "duplicate as dir", "missing parent", "no root"])
def test_materialising_refuses_unsafe_entries_even_without_the_decoder(app, repo, tmp_path,
                                                                        case):
    elsewhere = os.fsencode(tmp_path / "elsewhere")
    staging = app / ".var.snapkeep-staging-0123456789abcdef"
    staging.mkdir()
    root = _entry(b"", DIR, repo)
    entries = {
        "through symlink": [root, _entry(b"l", SYMLINK, repo, elsewhere),
                            _entry(b"l/evil", FILE, repo)],
        "dot-dot": [root, _entry(b"../evil", FILE, repo)],
        "absolute": [root, _entry(elsewhere + b"/evil", FILE, repo)],
        "nul": [root, _entry(b"ev\0il", FILE, repo)],
        "duplicate as dir": [root, _entry(b"l", SYMLINK, repo, elsewhere),
                             _entry(b"l", DIR, repo), _entry(b"l/evil", FILE, repo)],
        "missing parent": [root, _entry(b"d/evil", FILE, repo)],
        "no root": [_entry(b"evil", FILE, repo)],
    }[case]
    with pytest.raises(IntegrityError):
        Builder(staging, repo, Recorder()).materialize(entries)
    assert os.listdir(tmp_path / "elsewhere") == []
    assert not (app / "evil").exists() and not (tmp_path / "evil").exists()
    assert not (staging / "evil").exists() and not (staging / "d").exists()


def test_materialising_a_safe_tree_still_works(app, repo):
    staging = app / ".var.snapkeep-staging-0123456789abcdef"
    staging.mkdir()
    entries = [_entry(b"", DIR, repo), _entry(b"d", DIR, repo), _entry(b"d/e", DIR, repo),
               _entry(b"d/e/f", FILE, repo), _entry(b"d/l", SYMLINK, repo, b"e/f"),
               _entry(b"z", FILE, repo)]
    root = Builder(staging, repo, Recorder()).materialize(entries)
    assert root.path == b""
    assert (staging / "d" / "l").read_text() == "evil"
    assert (staging / "z").read_text() == "evil"
