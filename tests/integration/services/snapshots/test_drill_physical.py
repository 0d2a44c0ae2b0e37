"""Restore drills of snapshots taken physically (docs/physical.md, "Restore drills"): the
tables stored as pages are restored into the drill's scratch database as pages, then
verified by ``CHECK TABLE … EXTENDED`` and against the row count the snapshot told from
its pages; damage to a stored page, or a count that differs, fails the drill naming the
table; a table whose count the pages did not tell is reported not verifiable."""

from __future__ import annotations

import json

import pytest

from snapkeep.errors import IntegrityError
from snapkeep.repository import SnapshotManifest
from snapkeep.services.activities import operations
from snapkeep.services.snapshots import drill
from tests.helpers.damage import flip_chunk_byte
from tests.integration.services.snapshots.test_drill import Project, scratch_dbs, state

PHYSICAL = 'engine = "physical"\n'


def _paged(p: Project, sid: str) -> dict[str, dict]:
    tables = p.ctx.repository.load_snapshot(sid).services["database"]["tables"]
    return {t["name"]: t for t in tables if "physical" in t}


def _drill_log(p: Project) -> list[str]:
    (a,) = [a for a in p.ctx.catalog.list_activities("dev") if a.type == drill.VERIFY]
    return p.log(a.id)


def _rewrite(p: Project, sid: str, change) -> None:
    """The snapshot's manifest rewritten (sealed with the repository's key, as a writer
    with the key could) with ``change`` applied to its database tables."""
    repo = p.ctx.repository
    data = json.loads(repo.load_snapshot(sid).to_json())
    change({t["name"]: t for t in data["services"]["database"]["tables"]})
    repo.put_manifest(SnapshotManifest.from_json(json.dumps(data).encode()))


def test_a_physical_snapshots_drill_verifies_its_paged_tables(tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), PHYSICAL)
    sid = p.backup()
    paged = _paged(p, sid)
    assert "sales_order" in paged and all("rows" in t["physical"] for t in paged.values())
    assert paged["sales_order"]["physical"]["rows"] == 100
    live = state(mariadb, shop)
    a = operations.start_drill(p.ctx, p.env, sid)
    assert a.result == "success"
    log = p.log(a.id)
    assert any(f"restoring {len(paged)} InnoDB tables as pages" in m for m in log), log
    assert any(f"its {len(paged)} tables stored as pages verified by their page checks, "
               "CHECK TABLE … EXTENDED and row counts" in m for m in log), log
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is True
    assert state(mariadb, shop) == live
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()


def test_a_damaged_page_chunk_fails_the_drill_naming_the_table(tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), PHYSICAL)
    sid = p.backup()
    ibd = _paged(p, sid)["sales_order"]["physical"]["ibd"]
    repo = p.ctx.repository
    flip_chunk_byte(repo, repo.backend.root, ibd["chunks"][-1][0])
    live = state(mariadb, shop)
    with pytest.raises(IntegrityError, match="the pages of table `sales_order`"):
        operations.start_drill(p.ctx, p.env, sid)
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is False
    assert any(m.startswith("MISMATCH database: cannot be restored: the pages of table "
                            "`sales_order`") for m in _drill_log(p))
    assert state(mariadb, shop) == live
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()


def test_pages_whose_row_count_differs_from_the_recorded_one_fail_the_drill(
        tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), PHYSICAL)
    sid = p.backup()

    def one_more(tables: dict) -> None:
        tables["sales_order"]["physical"]["rows"] += 1

    _rewrite(p, sid, one_more)
    with pytest.raises(IntegrityError, match="`sales_order`: 100 rows in the restored copy, "
                                             "101 in the snapshot's pages"):
        operations.start_drill(p.ctx, p.env, sid)
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is False
    assert p.drills_left() == [] and scratch_dbs(mariadb, shop) == set()


def test_pages_without_a_recorded_count_are_reported_not_verifiable(tmp_path, mariadb, shop):
    p = Project(tmp_path, mariadb.url(shop), PHYSICAL)
    sid = p.backup()

    def forget(tables: dict) -> None:
        del tables["sales_order"]["physical"]["rows"]

    _rewrite(p, sid, forget)
    a = operations.start_drill(p.ctx, p.env, sid)
    assert a.result == "success"
    log = p.log(a.id)
    assert any("`sales_order`: pages restored and checked; rows not verifiable" in m
               for m in log), log
    assert any("not recorded as verified" in m for m in log)
    assert p.ctx.catalog.get_snapshot(sid).verified_ok is None
