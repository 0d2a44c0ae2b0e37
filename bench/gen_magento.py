"""Generate a Magento-like database at a chosen scale (1: ~110 MiB data + index, ~1 M rows).

    .venv/bin/python bench/gen_magento.py --scale 4 --url mysql://root@127.0.0.1:3306/shop

Catalog EAV tables (composite unique keys, secondary indexes, foreign keys), customers
with utf8mb4 names, orders and order items with many DECIMAL and DATETIME columns, a log
table with TEXT/BLOB payloads and a table without a primary key. Rows are made on the
server (``INSERT … SELECT`` over MariaDB's ``seq_1_to_N`` sequence tables), so a few
hundred MiB take seconds, and the same scale gives the same data.
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import urlparse

import pymysql

SCHEMA = [
    """CREATE TABLE eav_attribute (
        attribute_id SMALLINT UNSIGNED PRIMARY KEY, attribute_code VARCHAR(255) NOT NULL,
        backend_type VARCHAR(8) NOT NULL, UNIQUE KEY (attribute_code)) ENGINE=InnoDB""",
    """CREATE TABLE store (store_id SMALLINT UNSIGNED PRIMARY KEY, code VARCHAR(32))
        ENGINE=InnoDB""",
    """CREATE TABLE catalog_product_entity (
        entity_id INT UNSIGNED PRIMARY KEY, attribute_set_id SMALLINT UNSIGNED NOT NULL,
        type_id VARCHAR(32) NOT NULL, sku VARCHAR(64) NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE KEY (sku), KEY (attribute_set_id)) ENGINE=InnoDB""",
] + [
    f"""CREATE TABLE catalog_product_entity_{kind} (
        value_id INT PRIMARY KEY AUTO_INCREMENT, attribute_id SMALLINT UNSIGNED NOT NULL,
        store_id SMALLINT UNSIGNED NOT NULL, entity_id INT UNSIGNED NOT NULL, value {sqltype},
        UNIQUE KEY eav_uniq (entity_id, attribute_id, store_id), KEY (attribute_id),
        KEY (store_id),
        FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
        FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
        FOREIGN KEY (store_id) REFERENCES store (store_id)) ENGINE=InnoDB"""
    for kind, sqltype in (("varchar", "VARCHAR(255)"), ("int", "INT"),
                          ("decimal", "DECIMAL(20,6)"), ("text", "TEXT"))
] + [
    """CREATE TABLE customer_entity (
        entity_id INT UNSIGNED PRIMARY KEY, email VARCHAR(255), firstname VARCHAR(255),
        lastname VARCHAR(255), dob DATE, created_at DATETIME, updated_at DATETIME,
        KEY (email), KEY (lastname)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE sales_order (
        entity_id INT UNSIGNED PRIMARY KEY, increment_id VARCHAR(32), state VARCHAR(32),
        status VARCHAR(32), customer_id INT UNSIGNED, customer_firstname VARCHAR(128),
        customer_lastname VARCHAR(128), grand_total DECIMAL(20,4), base_grand_total DECIMAL(20,4),
        subtotal DECIMAL(20,4), base_subtotal DECIMAL(20,4), tax_amount DECIMAL(20,4),
        base_tax_amount DECIMAL(20,4), shipping_amount DECIMAL(20,4),
        discount_amount DECIMAL(20,4), total_paid DECIMAL(20,4), total_qty_ordered DECIMAL(12,4),
        base_to_global_rate DECIMAL(20,4), created_at DATETIME, updated_at DATETIME,
        shipped_at DATETIME, paid_at DATETIME, KEY (customer_id), KEY (created_at),
        UNIQUE KEY (increment_id),
        FOREIGN KEY (customer_id) REFERENCES customer_entity (entity_id) ON DELETE SET NULL)
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE sales_order_item (
        item_id INT UNSIGNED PRIMARY KEY, order_id INT UNSIGNED NOT NULL,
        product_id INT UNSIGNED, sku VARCHAR(64), name VARCHAR(255), qty_ordered DECIMAL(12,4),
        price DECIMAL(20,4), base_price DECIMAL(20,4), original_price DECIMAL(20,4),
        tax_percent DECIMAL(12,4), tax_amount DECIMAL(20,4), discount_amount DECIMAL(20,4),
        row_total DECIMAL(20,4), base_row_total DECIMAL(20,4), weight DECIMAL(12,4),
        created_at DATETIME, updated_at DATETIME, KEY (order_id), KEY (product_id),
        FOREIGN KEY (order_id) REFERENCES sales_order (entity_id) ON DELETE CASCADE)
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE log_event (
        id BIGINT UNSIGNED PRIMARY KEY, created_at DATETIME(6), level VARCHAR(16),
        message TEXT, payload BLOB, KEY (created_at)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE report_viewed_product_index (
        product_id INT UNSIGNED, customer_id INT UNSIGNED, store_id SMALLINT UNSIGNED,
        added_at DATETIME, KEY (product_id)) ENGINE=InnoDB""",
]

NAMES = ("'Zoë','José','Łukasz','Nguyễn','Ólafur','Søren','Müller','Иван','李','さくら',"
         "'Ana','Émile','Chloé','Jürgen','O''Brien','😀 Emoji'")


def fill(cur, scale: int) -> None:
    products, customers, orders = 20000 * scale, 10000 * scale, 20000 * scale
    logs = 4000 * scale
    cur.execute("INSERT INTO store VALUES (0, 'admin'), (1, 'default'), (2, 'fr')")
    cur.execute("INSERT INTO eav_attribute SELECT seq, CONCAT('attr_', seq), "
                "ELT(1 + seq % 4, 'varchar', 'int', 'decimal', 'text') FROM seq_1_to_40")
    cur.execute(f"INSERT INTO catalog_product_entity SELECT seq, 4 + seq % 6, "
                f"IF(seq % 9 = 0, 'configurable', 'simple'), CONCAT('SKU-', seq), "
                f"FROM_UNIXTIME(1500000000 + seq * 60), FROM_UNIXTIME(1600000000 + seq * 7) "
                f"FROM seq_1_to_{products}")
    values = {"varchar": "CONCAT('Value ', p.seq, ' of ', a.seq)", "int": "p.seq * a.seq % 1000",
              "decimal": "(p.seq * 37 % 100000) / 100 + a.seq / 1000000",
              "text": "REPEAT(CONCAT('Description of product ', p.seq, '. '), 1 + p.seq % 4)"}
    for offset, kind in enumerate(values):
        attrs = ",".join(str(a) for a in range(1 + offset, 41, 4))
        cur.execute(f"INSERT INTO catalog_product_entity_{kind} "
                    f"(attribute_id, store_id, entity_id, value) "
                    f"SELECT a.seq, IF(a.seq % 5 = 0, 1, 0), p.seq, {values[kind]} "
                    f"FROM seq_1_to_{products} p JOIN seq_1_to_40 a ON a.seq IN ({attrs})")
    cur.execute(f"INSERT INTO customer_entity SELECT seq, CONCAT('customer', seq, '@example.com'), "
                f"ELT(1 + seq % 16, {NAMES}), ELT(1 + (seq * 7) % 16, {NAMES}), "
                f"DATE('1950-01-01') + INTERVAL seq % 20000 DAY, "
                f"FROM_UNIXTIME(1500000000 + seq * 97), FROM_UNIXTIME(1600000000 + seq * 13) "
                f"FROM seq_1_to_{customers}")
    cur.execute(f"INSERT INTO sales_order SELECT seq, LPAD(seq, 9, '0'), "
                f"ELT(1 + seq % 3, 'new', 'processing', 'complete'), "
                f"ELT(1 + seq % 4, 'pending', 'processing', 'complete', 'closed'), "
                f"1 + seq % {customers}, ELT(1 + seq % 16, {NAMES}), "
                f"ELT(1 + (seq * 3) % 16, {NAMES}), seq % 99999 / 7, seq % 99999 / 7, "
                f"seq % 88888 / 7, seq % 88888 / 7, seq % 777 / 9, seq % 777 / 9, seq % 20, "
                f"-(seq % 13), seq % 99999 / 7, 1 + seq % 9, 1.0000, "
                f"FROM_UNIXTIME(1600000000 + seq * 31), FROM_UNIXTIME(1600000100 + seq * 31), "
                f"IF(seq % 3 = 0, NULL, FROM_UNIXTIME(1600090000 + seq * 31)), "
                f"FROM_UNIXTIME(1600000200 + seq * 31) FROM seq_1_to_{orders}")
    cur.execute(f"INSERT INTO sales_order_item SELECT (o.seq - 1) * 3 + i.seq, o.seq, "
                f"1 + (o.seq * i.seq) % {products}, CONCAT('SKU-', 1 + (o.seq * i.seq) % "
                f"{products}), CONCAT('Product ', (o.seq * i.seq) % {products}, ' ', "
                f"ELT(1 + o.seq % 16, {NAMES})), i.seq, o.seq % 5000 / 3, o.seq % 5000 / 3, "
                f"o.seq % 6000 / 3, 20.0000, o.seq % 500 / 7, 0, o.seq % 5000 / 3 * i.seq, "
                f"o.seq % 5000 / 3 * i.seq, o.seq % 100 / 10, "
                f"FROM_UNIXTIME(1600000000 + o.seq * 31), FROM_UNIXTIME(1600000100 + o.seq * 31) "
                f"FROM seq_1_to_{orders} o JOIN seq_1_to_3 i")
    cur.execute(f"INSERT INTO log_event SELECT seq, FROM_UNIXTIME(1600000000 + seq * 3.25), "
                f"ELT(1 + seq % 3, 'info', 'warning', 'error'), "
                f"CONCAT('Request ', seq, ' handled: ', REPEAT(MD5(seq), 8)), "
                f"UNHEX(REPEAT(SHA2(seq, 256), 8)) FROM seq_1_to_{logs}")
    cur.execute(f"INSERT INTO report_viewed_product_index SELECT 1 + seq % {products}, "
                f"IF(seq % 4 = 0, NULL, 1 + seq % {customers}), 1, "
                f"FROM_UNIXTIME(1600000000 + seq * 11) FROM seq_1_to_{products * 2}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--url", required=True, help="mysql://user@host:port/database")
    args = ap.parse_args()
    u = urlparse(args.url)
    db = u.path.lstrip("/")
    conn = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", charset="utf8mb4", autocommit=True)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{db}`")
        for sql in SCHEMA:
            cur.execute(sql)
        fill(cur, args.scale)
        cur.execute("SELECT SUM(DATA_LENGTH + INDEX_LENGTH), SUM(TABLE_ROWS) FROM "
                    "information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))
        size, rows = cur.fetchone()
    print(f"generated {db} at scale {args.scale}: ~{int(size) >> 20} MiB (data + index), "
          f"~{int(rows)} rows in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
