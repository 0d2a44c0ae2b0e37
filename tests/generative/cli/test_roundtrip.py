"""The generators end to end through the CLI: a project whose database is a random schema
and whose mount is a random tree; ``snapshot:create`` → damage to both →
``snapshot:restore -y`` → both fingerprints as before. Few examples (each starts the CLI
twice); the engine-level tests next to it cover the breadth.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.dbstate import assert_same, q
from tests.helpers.generative.damage_gen import damages
from tests.helpers.generative.db_steps import damage_in_new_session, db_features, load_schema
from tests.helpers.generative.fingerprint import fingerprint
from tests.helpers.generative.schema_gen import PRELUDE, schemas
from tests.helpers.generative.tree_gen import (
    apply_damage,
    build,
    tree_damages,
    tree_diff,
    tree_features,
    tree_fingerprint,
    trees,
)
from tests.helpers.shop import Cli, cli_env, git

DB = f"genc_{os.getpid()}"
HOME = Path(tempfile.gettempdir()) / f"snapkeep-gen-cli-{os.getpid():08d}"
# a fifteenth of the profile's budget: 8 examples in CI
EXAMPLES = max(2, (settings.default.max_examples or 100) // 15)


@pytest.fixture(scope="module")
def features(mariadb) -> frozenset[str]:
    # a big row needs the dump under a lowered max_allowed_packet (engines/mysql/test_roundtrip)
    return (db_features(mariadb) | tree_features(HOME)) - {"big_row"}


@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_snapshot_create_then_restore_after_damage_gives_back_database_and_mount(
        mariadb, features, data):
    mount = HOME / "app" / "data"
    schema = data.draw(schemas(features), label="schema")
    db_damage = data.draw(damages(schema, DB, features), label="database damage")
    tree = data.draw(trees(features, len(os.fsencode(mount))), label="tree")
    tree_damage = data.draw(tree_damages(features), label="mount damage")
    sparse = "sparse_allocation" in features
    conn = mariadb.connect()
    if HOME.exists():
        shutil.rmtree(HOME)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(DB)}")
            cur.execute(f"CREATE DATABASE {q(DB)}")
            cur.execute(f"USE {q(DB)}")
            for sql in PRELUDE:
                cur.execute(sql)
        load_schema(conn, schema)
        build(tree, mount)
        git(HOME / "app", "init", "-q", "-b", "develop-branch")
        before_db, before_tree = fingerprint(conn, DB), tree_fingerprint(mount, sparse=sparse)

        cli = Cli(HOME / "app", cli_env())
        cli.run("init", "--project-id", "gen", "--database", mariadb.url(DB), "--mount", "data")
        created = cli.run("snapshot:create").stdout.strip().splitlines()[-1]
        assert created.startswith("Snapshot name:"), created
        damage_in_new_session(mariadb, DB, db_damage)
        apply_damage(tree_damage, tree, mount)
        cli.run("snapshot:restore", created.split(":", 1)[1].strip(), "-y")
        assert_same(fingerprint(conn, DB), before_db, "the restored database")
        after_tree = tree_fingerprint(mount, sparse=sparse)
        assert after_tree == before_tree, tree_diff(after_tree, before_tree)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(DB)}")
        conn.close()
        if HOME.exists():
            shutil.rmtree(HOME)
