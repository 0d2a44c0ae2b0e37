"""Generative differential test of the MySQL engine: random schema and data → snapshot →
random damage → restore → the fingerprint is the one taken before the damage.

Reproduce a failure with the command printed under "generative: reproduce" (its seed), or
paste the printed Schema and Damage scripts into the ``mariadb`` client. Features and the
pending list: ``features.py``; budget and seeds: ``conftest.py``; longer runs: scripts/soak.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.engines.mysql import dump_database, prepare_restore
from snapkeep.engines.mysql.names import old_name, shadow_name
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.dbstate import assert_same, databases, q, target_for
from tests.helpers.generative.damage_gen import damages
from tests.helpers.generative.db_steps import damage_in_new_session, db_features, load_schema
from tests.helpers.generative.fingerprint import fingerprint
from tests.helpers.generative.schema_gen import PRELUDE, schemas
from tests.helpers.recording import Recorder

DB = f"gen_{os.getpid()}"
SMALL_PACKET = 1 << 20  # max_allowed_packet while dumping a big row (see schema_gen)


@st.composite
def scenarios(draw, features: frozenset[str]):
    schema = draw(schemas(features))
    return schema, draw(damages(schema, DB, features))


def _fresh(conn) -> None:
    with conn.cursor() as cur:
        for name in (DB, shadow_name(DB), old_name(DB)):
            cur.execute(f"DROP DATABASE IF EXISTS {q(name)}")
        cur.execute(f"CREATE DATABASE {q(DB)}")
        cur.execute(f"USE {q(DB)}")
        for sql in PRELUDE:
            cur.execute(sql)


def _dump(server, target, repo, big_row: bool):
    if not big_row:
        return dump_database(target, repo, Recorder())
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.max_allowed_packet")
            (old,) = cur.fetchone()
            cur.execute(f"SET GLOBAL max_allowed_packet = {SMALL_PACKET}")  # new connections
            try:
                return dump_database(target, repo, Recorder())
            finally:
                cur.execute(f"SET GLOBAL max_allowed_packet = {int(old)}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def features(mariadb) -> frozenset[str]:
    return db_features(mariadb)


@given(data=st.data())
def test_a_restore_after_random_damage_gives_back_the_snapshotted_database(
        mariadb, features, data):
    schema, damage = data.draw(scenarios(features), label="scenario")
    conn = mariadb.connect()
    try:
        _fresh(conn)
        load_schema(conn, schema)
        before = fingerprint(conn, DB)
        target = target_for(mariadb, DB)
        with tempfile.TemporaryDirectory(prefix="snapkeep-gen-") as tmp:
            repo = Repository.init(LocalBackend(Path(tmp) / "repo"))
            description = _dump(mariadb, target, repo, schema.big_row)
            assert_same(fingerprint(conn, DB), before, "the database after its snapshot")

            damage_in_new_session(mariadb, DB, damage)

            prepared = prepare_restore(target, description, repo, Recorder())
            prepared.swap()
            prepared.finish()
        assert_same(fingerprint(conn, DB), before, "the restored database")
        assert {shadow_name(DB), old_name(DB)} & databases(conn) == set()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(DB)}")
        conn.close()
