"""The fast restore: tables without their secondary keys, parallel LOAD DATA streams from
format-2 row parts, keys and foreign keys added after — and the result identical."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest

from snapkeep.engines.mysql import dump_database, prepare_restore
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository import BlobRef, Repository
from snapkeep.storage import LocalBackend
from tests.helpers.corpora import load_unit, recut_parts, unit
from tests.helpers.dbstate import assert_same, databases, db_state, load_sql_file, q, target_for
from tests.helpers.recording import Recorder

SQL_DIR = Path(__file__).parent / "sql"

KEYS_ZOO = r"""
SET SESSION foreign_key_checks = 0;
CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(80) NOT NULL,
  name VARCHAR(80) CHARACTER SET utf8mb4 NOT NULL,
  bio TEXT, notes TEXT,
  referrer INT UNSIGNED NULL,
  code CHAR(8) NULL,
  UNIQUE KEY uq_email (email),
  UNIQUE KEY uq_code (code),
  KEY k_name_prefix (name(6), email) COMMENT 'prefix key',
  KEY k_ignored (referrer) IGNORED,
  FULLTEXT KEY ft_bio (bio),
  FULLTEXT KEY ft_both (bio, notes),
  CONSTRAINT fk_ref FOREIGN KEY (referrer) REFERENCES customers (id) ON DELETE SET NULL
) ENGINE=InnoDB COMMENT='customers, with keys of every kind';
CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  customer_code CHAR(8) NULL,
  placed DATETIME(3) NOT NULL,
  total DECIMAL(12,2) NOT NULL DEFAULT 0,
  doubled DECIMAL(13,2) AS (total * 2) STORED,
  KEY k_placed (placed DESC),
  KEY k_cust_placed (customer_id, placed),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
    ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT fk_orders_code FOREIGN KEY (customer_code) REFERENCES customers (code)
    ON UPDATE SET NULL,
  CONSTRAINT chk_total CHECK (total >= 0)
) ENGINE=InnoDB AUTO_INCREMENT=5000;
CREATE TABLE order_items (
  order_id BIGINT NOT NULL, line SMALLINT NOT NULL, sku VARCHAR(20) NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, line),
  KEY k_sku (sku),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE no_pk (
  a INT NOT NULL, b INT NULL, c VARCHAR(10),
  UNIQUE KEY ua (a), UNIQUE KEY ub (b), KEY kc (c)
) ENGINE=InnoDB;
CREATE TABLE ai_second (
  grp INT NOT NULL, id INT NOT NULL AUTO_INCREMENT, v INT,
  PRIMARY KEY (grp, id), KEY kv (v), KEY kid (id), KEY kv2 (v, grp)
) ENGINE=InnoDB;
CREATE TABLE places (
  id INT NOT NULL PRIMARY KEY, g POINT NOT NULL, label BLOB,
  SPATIAL KEY sp_g (g), UNIQUE KEY uq_label (label) USING HASH, KEY k_label (label(10))
) ENGINE=InnoDB;
CREATE TABLE cyc_a (id INT PRIMARY KEY, b_id INT, KEY (b_id),
  CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES cyc_b (id)) ENGINE=InnoDB;
CREATE TABLE cyc_b (id INT PRIMARY KEY, a_id INT, KEY (a_id),
  CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES cyc_a (id)) ENGINE=InnoDB;
CREATE TABLE parted (
  id INT NOT NULL, at DATE NOT NULL, v INT, PRIMARY KEY (id, at), KEY kv (v)
) ENGINE=InnoDB PARTITION BY RANGE (YEAR(at)) (
  PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN MAXVALUE);
CREATE TABLE my_keys (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(9),
  KEY ka (a), FULLTEXT KEY fb (b)) ENGINE=MyISAM;
CREATE TABLE `odd ``name``, (x)` (`k.1` INT NOT NULL PRIMARY KEY, `v v` INT,
  KEY `i``dx, 2` (`v v`)) ENGINE=InnoDB;
CREATE TABLE empty_one (id INT PRIMARY KEY, v INT, KEY kv (v)) ENGINE=InnoDB;

INSERT INTO customers (id, email, name, bio, notes, referrer, code)
  SELECT seq, CONCAT('c', seq, '@example.com'), CONCAT('Näme ', seq, ' 😀'),
         CONCAT('bio words ', seq), IF(seq % 3, NULL, 'some notes'),
         IF(seq > 1, seq - 1, NULL), IF(seq % 2, CONCAT('C', seq), NULL)
  FROM seq_1_to_3000;
INSERT INTO orders (customer_id, customer_code, placed, total)
  SELECT 1 + seq % 3000, IF(seq % 4 = 0, 'C1', NULL),
         '2024-01-01' + INTERVAL seq MINUTE, seq / 7
  FROM seq_1_to_6000;
INSERT INTO order_items SELECT o.id, s.seq, CONCAT('SKU', o.id % 97), s.seq
  FROM orders o JOIN seq_1_to_3 s;
INSERT INTO order_items VALUES (999999, 1, 'orphan', 1);
INSERT INTO no_pk VALUES (1, NULL, 'x'), (2, NULL, 'x'), (3, 3, NULL);
INSERT INTO ai_second (grp, v) SELECT seq % 5, seq FROM seq_1_to_500;
INSERT INTO places SELECT seq, POINT(seq, -seq), CONCAT('label ', seq) FROM seq_1_to_200;
INSERT INTO cyc_a VALUES (1, 1), (2, NULL);
INSERT INTO cyc_b VALUES (1, 2);
INSERT INTO parted SELECT seq, DATE '1990-01-01' + INTERVAL (seq * 20) DAY, seq FROM seq_1_to_900;
INSERT INTO my_keys (a, b) SELECT seq, CONCAT('w', seq) FROM seq_1_to_300;
INSERT INTO `odd ``name``, (x)` VALUES (1, 2), (3, 4);
SET SESSION foreign_key_checks = 1;
"""



def load_zoo(mariadb, db: str, tmp_path: Path) -> None:
    sql = tmp_path / "zoo.sql"
    sql.write_text(KEYS_ZOO)
    load_sql_file(mariadb, db, sql)


def restore(mariadb, db: str, description, repo, reporter=None, threads=None):
    prepared = prepare_restore(target_for(mariadb, db), description, repo,
                               reporter or Recorder(), threads=threads)
    prepared.swap()
    prepared.finish()
    return prepared


@pytest.mark.parametrize("threads,parts", [(1, 1), (4, 3)])
def test_every_kind_of_key_and_foreign_key_comes_back_identical(
        mariadb, fresh_db, repo, tmp_path, threads, parts):
    load_zoo(mariadb, fresh_db, tmp_path)
    conn = mariadb.connect(fresh_db)
    before = db_state(conn, fresh_db)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo, parts=parts)
    assert len(next(t for t in description["tables"] if t["name"] == "orders")["parts"]) == (
        parts)
    assert next(t for t in description["tables"] if t["name"] == "empty_one")["parts"] == []
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {q(fresh_db)}")
    progress = Recorder()
    restore(mariadb, fresh_db, description, repo, progress, threads=threads)
    assert_same(db_state(conn, fresh_db), before)
    assert progress.done == progress.total > 0
    text = "\n".join(progress.lines)
    assert "keys and foreign keys to add after the rows" in text
    assert f"on {threads} connections" in text and "cut-over" in text
    assert {shadow_name(fresh_db), old_name(fresh_db), journal_name(fresh_db)} & (
        databases(conn)) == set()


def test_rows_load_into_tables_without_their_secondary_keys(mariadb, fresh_db, repo, tmp_path):
    load_zoo(mariadb, fresh_db, tmp_path)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo)
    shadow = shadow_name(fresh_db)
    seen: dict[str, set[str]] = {}

    class Peek(Recorder):
        def advance(self, units: int) -> None:
            super().advance(units)
            with self._lock:
                if seen:
                    return
                conn = mariadb.connect()
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT TABLE_NAME, INDEX_NAME FROM information_schema."
                                    "STATISTICS WHERE TABLE_SCHEMA = %s", (shadow,))
                        for table, index in cur.fetchall():
                            seen.setdefault(table, set()).add(index)
                        cur.execute("SELECT COUNT(*) FROM information_schema."
                                    "REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
                                    (shadow,))
                        seen["#fks"] = {str(cur.fetchone()[0])}
                finally:
                    conn.close()

    restore(mariadb, fresh_db, description, repo, Peek(), threads=2)
    assert seen["#fks"] == {"0"}
    assert seen["orders"] == {"PRIMARY"}
    assert seen["customers"] == {"PRIMARY", "ft_bio", "ft_both"}
    assert seen["ai_second"] == {"PRIMARY", "kv", "kid"}  # the AUTO_INCREMENT key and before
    assert seen["no_pk"] == {"ua"}  # the clustered key of a table without a primary key
    assert seen["places"] == {"PRIMARY", "uq_label"}  # a long unique hash key stays
    assert seen["my_keys"] == {"PRIMARY", "ka", "fb"}  # MyISAM: not split


def test_type_coverage_restores_identically_from_format_2_parts(mariadb, fresh_db, repo):
    load_sql_file(mariadb, fresh_db, SQL_DIR / "type_coverage.sql")
    conn = mariadb.connect(fresh_db)
    before = db_state(conn, fresh_db)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo, parts=4)
    restore(mariadb, fresh_db, description, repo, threads=3)
    assert_same(db_state(conn, fresh_db), before)


@pytest.mark.parametrize("name", ["sakila_mariadb", "magento_mariadb106"])
def test_corpus_schemas_with_many_keys_and_foreign_keys_come_back_identical(
        mariadb, repo, name):
    u = unit(name)
    load_unit(mariadb, u)
    db = u["databases"][0]
    conn = mariadb.connect()
    try:
        before = db_state(conn, db)
        description = recut_parts(dump_database(target_for(mariadb, db), repo, Recorder()),
                                 repo, parts=2)
        restore(mariadb, db, description, repo, threads=4)
        assert_same(db_state(conn, db), before)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        conn.close()


def test_a_damaged_part_stops_every_stream_and_drops_the_shadow(
        mariadb, fresh_db, repo, tmp_path):
    load_zoo(mariadb, fresh_db, tmp_path)
    conn = mariadb.connect(fresh_db)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo, parts=3)
    before = db_state(conn, fresh_db)
    orders = next(t for t in description["tables"] if t["name"] == "orders")
    chunk_id = BlobRef.from_json(orders["parts"][1]).chunks[0][0]
    repo.flush()
    key, offset, length = repo.locate_chunk(chunk_id)
    pack = tmp_path / "repo" / key
    raw = bytearray(pack.read_bytes())
    raw[offset + length // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))  # no cached plaintext
    with pytest.raises(IntegrityError):
        prepare_restore(target_for(mariadb, fresh_db), description, fresh, Recorder(),
                        threads=3)
    assert_same(db_state(conn, fresh_db), before)
    assert shadow_name(fresh_db) not in databases(conn)


def test_a_part_with_missing_rows_is_refused(mariadb, fresh_db, repo, tmp_path):
    load_zoo(mariadb, fresh_db, tmp_path)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo)
    orders = next(t for t in description["tables"] if t["name"] == "orders")
    orders["row_count"] += 1
    with pytest.raises(RepositoryError, match="rows loaded"):
        prepare_restore(target_for(mariadb, fresh_db), description, repo, Recorder(),
                        threads=2)
    conn = mariadb.connect()
    assert shadow_name(fresh_db) not in databases(conn)


def test_a_format_the_engine_does_not_know_is_refused(mariadb, fresh_db, repo):
    with pytest.raises(RepositoryError, match="format 99"):
        prepare_restore(target_for(mariadb, fresh_db), {"kind": "mysql", "format": 99}, repo,
                        Recorder())


def test_foreign_keys_referencing_a_deferred_unique_key_are_added_after_it(
        mariadb, fresh_db, repo, tmp_path):
    load_zoo(mariadb, fresh_db, tmp_path)
    conn = mariadb.connect(fresh_db)
    description = recut_parts(dump_database(target_for(mariadb, fresh_db), repo, Recorder()),
                             repo)
    restore(mariadb, fresh_db, description, repo, threads=4)
    with conn.cursor() as cur:
        cur.execute("SELECT CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE, REFERENCED_TABLE_NAME "
                    "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                    "CONSTRAINT_SCHEMA = %s ORDER BY 1", (fresh_db,))
        fks = cur.fetchall()
    assert ("fk_orders_code", "SET NULL", "RESTRICT", "customers") in fks
    assert len(fks) == 6
    with conn.cursor() as cur, pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO orders (customer_id, placed) VALUES (424242, NOW())")
