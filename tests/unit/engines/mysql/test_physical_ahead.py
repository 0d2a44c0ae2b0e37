"""Storing a live snapshot's copied tablespaces ahead of prepare (physical_ahead.py): which
lines start it, that the pass after prepare finds the unchanged pages stored already,
and how much is left unreferenced when prepare changed a page."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from snapkeep import faults
from snapkeep.engines.mysql.physical_ahead import StoreAhead
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

PAGE = 16 * 1024
TS = "2026-12-06 20:42:37"


class Lines(NullReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def _tablespace(path: Path, pages: int) -> bytes:
    data = b"".join(os.urandom(64) + bytes(PAGE - 72) + os.urandom(8) for _ in range(pages))
    path.write_bytes(data)
    return data


def _ids(repo: Repository, data: bytes) -> dict[str, int]:
    """The chunks a page writer would cut ``data`` into (id → length), storing nothing."""
    chunker = repo.page_chunker(PAGE)  # its chunks are views of its window: hashed at once
    return {repo.chunk_id(p): len(p) for p in itertools.chain(chunker.feed(data),
                                                               chunker.finish())}


def _stored_whole(ahead: StoreAhead, files: int) -> None:
    """Wait (a minute at most) until ``files`` files are stored ahead: ``stop`` cuts off
    one still being read, as prepare's end does."""
    deadline = time.monotonic() + 60
    while ahead.files < files and ahead.failed is None:
        assert time.monotonic() < deadline, ahead.files
        time.sleep(0.01)


def _final(repo: Repository, path: Path):
    w = repo.page_writer(PAGE)
    w.write(path.read_bytes())
    return w.close()


@pytest.fixture
def setup(tmp_path: Path):
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    db = tmp_path / "backup" / "shop"
    db.mkdir(parents=True)
    files = {"orders": "orders", "items": "items", "we ird": "we@0020ird"}
    for name, pages in (("orders.ibd", 200), ("items.ibd", 100), ("other.ibd", 20),
                        ("we@0020ird.new", 30)):  # re-copied at the end: prepare renames it
        _tablespace(db / name, pages)
    reporter = Lines()
    return repo, db, StoreAhead(repo, db, files, PAGE, 1, 2, reporter), reporter


def test_a_file_is_stored_ahead_once_its_copy_thread_says_done(setup):
    """Interleaved copy threads: a file goes once *its* thread prints ``...done`` (a copy,
    or a re-copy at the end, ``.new``); a file of another table, or one still being
    copied at ``stop``, does not."""
    repo, db, ahead, _ = setup
    for line in (f"[01] {TS} Copying ./shop/orders.ibd to {db}/orders.ibd",
                 f"[02] {TS} Copying ./shop/other.ibd to {db}/other.ibd",
                 f"[02] {TS}         ...done",  # other: not a paged table
                 f"[02] {TS} Copying ./shop/we@0020ird.ibd to {db}/we@0020ird.new",
                 f"[02] {TS}         ...done",
                 f"[01] {TS}         ...done",  # orders
                 f"[00] {TS} Copying ibdata1 to {db.parent}/ibdata1",
                 f"[00] {TS}         ...done",
                 f"[01] {TS} Copying ./shop/items.ibd to {db}/items.ibd\n"):
        ahead.line(line)
    _stored_whole(ahead, 2)
    ahead.stop()
    ahead.line(f"[01] {TS}         ...done")  # items, after stop: not stored
    assert ahead.files == 2 and ahead.failed is None
    orders, weird = _final(repo, db / "orders.ibd"), _final(repo, db / "we@0020ird.new")
    assert ahead.unreferenced([orders, weird]) == 0  # both found stored already
    assert ahead.unreferenced([orders]) == weird.size
    assert not any(repo.has_chunk(c) for c in _ids(repo, (db / "other.ibd").read_bytes()))
    assert not any(repo.has_chunk(c) for c in _ids(repo, (db / "items.ibd").read_bytes()))


def test_pages_prepare_changed_are_what_is_left_unreferenced(setup):
    """The pass after prepare stores the file as prepare left it: a changed page is new
    there, and the chunk stored ahead with its old version is what ``unreferenced``
    counts (and the log line reports)."""
    repo, db, ahead, reporter = setup
    ahead.line(f"[01] {TS} Copying ./shop/orders.ibd to {db}/orders.ibd")
    ahead.line(f"[01] {TS}         ...done")
    _stored_whole(ahead, 1)
    ahead.stop()
    path = db / "orders.ibd"
    before = path.read_bytes()
    after = bytearray(before)
    after[150 * PAGE + 100] ^= 0xFF  # prepare applied the redo to page 150
    path.write_bytes(bytes(after))
    final = _final(repo, path)
    assert repo.read_blob(final) == bytes(after)
    left = ahead.unreferenced([final])
    changed = [n for (c, n) in final.chunks if c not in _ids(repo, before)]
    # the page's header and trailer unchanged, so were the cuts: one chunk is new
    assert len(changed) == 1 and left == changed[0], (left, changed)
    ahead.report([final])
    assert reporter.lines == [f"1 tablespaces stored ahead of prepare; {left} bytes of their "
                              "pages changed by prepare or cut off by its end (left "
                              "unreferenced for the next prune)"]


def test_a_failure_storing_ahead_is_logged_and_leaves_the_work_to_after_prepare(
        setup, monkeypatch):
    repo, db, ahead, reporter = setup

    def fail() -> None:
        raise OSError("the disk said no")

    monkeypatch.setitem(faults.SEAMS, "mysql.physical.ahead", fail)
    ahead.line(f"[01] {TS} Copying ./shop/orders.ibd to {db}/orders.ibd")
    ahead.line(f"[01] {TS}         ...done")
    ahead.stop()
    assert ahead.files == 0 and isinstance(ahead.failed, OSError)
    ahead.report([])
    assert reporter.lines[0] == ("storing the copied tablespaces ahead of prepare stopped "
                                 "(OSError: the disk said no); they are stored after "
                                 "prepare instead")
    assert not any(repo.has_chunk(c) for c in _ids(repo, (db / "orders.ibd").read_bytes()))
