"""Every corpus unit round-tripped through the physical path (docs/physical.md), the heavy
one (16.8 M rows) in the slow group.

As ``test_corpora_roundtrip.py``, with the snapshot taken as the default backup takes it
on a local server: writes held, the InnoDB tables read in place as pages
(``dump_physical(writes_held=True)``), the others as rows. Each database is restored over
a changed live one and over the dropped database, and compared with the unit's own
source (``CHECKSUM TABLE … EXTENDED``, row counts, ``SHOW CREATE`` of every object). Every
table ``paged`` chose must have travelled as pages.
"""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql import MySQLTarget, choose_engine, dump_physical, prepare_restore
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.engines.mysql.physical_dump import paged
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import load_unit, unit
from tests.helpers.dbstate import assert_same, databases, db_state, q
from tests.integration.engines.mysql.test_corpora_roundtrip import (
    HEAVY,
    LIGHT,
    _change_live,
    _run,
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    return Repository.init(LocalBackend(tmp_path_factory.mktemp("corpora-physical") / "repo"))


@pytest.mark.parametrize("name", [*LIGHT, *(pytest.param(n, marks=pytest.mark.slow)
                                           for n in HEAVY)])
def test_corpus_unit_round_trips_through_pages(mariadb, server_conn, repo, name):
    conn = server_conn
    u = unit(name)
    load_unit(mariadb, u)
    try:
        for db in u["databases"]:
            before = db_state(conn, db)
            target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, db)
            where = choose_engine("physical", target, NullReporter())
            assert where is not None
            chosen = set(paged(target, NullReporter()))
            description = dump_physical(target, repo, NullReporter(), where, threads=2,
                                        writes_held=True)
            assert {t["name"] for t in description["tables"] if "physical" in t} == chosen
            for damage in ("changed", "dropped"):
                if damage == "dropped":
                    _run(conn, f"DROP DATABASE {q(db)}")
                else:
                    _change_live(conn, db, before)
                prepared = prepare_restore(target, description, repo, NullReporter(),
                                           threads=2)
                prepared.swap()
                prepared.finish()
                assert_same(db_state(conn, db), before,
                            f"{name}: database {db} through pages ({damage})")
                assert {shadow_name(db), old_name(db), journal_name(db)} & databases(
                    conn) == set()
    finally:
        for db in u["databases"]:
            _run(conn, f"DROP DATABASE IF EXISTS {q(db)}")
