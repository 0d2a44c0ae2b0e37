"""The quick-start demo: a sample shop on a private MariaDB, a snapshot, damage, a restore.

``python -m snapkeep.demo [DIR]`` (default ``./demo``, recreated). Every step runs the real
``snapkeep`` command and shows its output; at the end the restored data is compared with
the original (``CHECKSUM TABLE`` for every table, SHA-256 for every file).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from snapkeep.sandbox import PrivateMariaDB

SCHEMA = [
    """CREATE TABLE store (store_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       code VARCHAR(32) NOT NULL UNIQUE, name VARCHAR(255) NOT NULL) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE catalog_product_entity (
       entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(64) NOT NULL,
       name VARCHAR(255) NOT NULL, price DECIMAL(20,6) NOT NULL, weight FLOAT,
       updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), KEY idx_sku (sku))
       DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE sales_order (entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       store_id SMALLINT UNSIGNED NOT NULL, customer_name VARCHAR(255) NOT NULL,
       grand_total DECIMAL(20,4) NOT NULL, created_at DATETIME NOT NULL,
       CONSTRAINT fk_order_store FOREIGN KEY (store_id) REFERENCES store (store_id))
       DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE sales_order_grid (entity_id INT UNSIGNED NOT NULL PRIMARY KEY,
       customer_name VARCHAR(255), grand_total DECIMAL(20,4)) DEFAULT CHARSET=utf8mb4""",
    """CREATE TRIGGER trg_order_grid AFTER INSERT ON sales_order FOR EACH ROW
       INSERT INTO sales_order_grid VALUES (NEW.entity_id, NEW.customer_name, NEW.grand_total)""",
    """CREATE VIEW top_orders AS SELECT entity_id, grand_total FROM sales_order
       WHERE grand_total > 500""",
]
NAMES = ["Zoë", "Jürgen", "Ana", "Søren", "Mei", "Olu", "Ines", "Kenji", "Amélie", "Rafał"]


def run(args: list[str], cwd: Path, env: dict[str, str], show: bool = True) -> str:
    if show:
        print(f"\n$ snapkeep {' '.join(args)}", flush=True)
    res = subprocess.run([sys.executable, "-m", "snapkeep", *args], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, text=True, check=False)
    if show and res.stdout:
        print(res.stdout, end="", flush=True)
    if res.returncode != 0:
        raise SystemExit(f"demo: `snapkeep {' '.join(args)}` failed (exit {res.returncode})")
    return res.stdout


def build_shop(root: Path, server: PrivateMariaDB, rng: random.Random) -> None:
    (root / "app" / "code").mkdir(parents=True)
    (root / "app" / "code" / "Shop.php").write_text("<?php // the shop's code lives in git\n")
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
               "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@localhost"}
    for args in (["init", "-q", "-b", "develop-branch"], ["add", "-A"], ["commit", "-qm", "code"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=git_env,
                       capture_output=True)
    for d in ("var/log", "pub/media/catalog/product", "app/etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "app" / "etc" / "env.php").write_text("<?php return ['db' => ['host' => 'x']];\n")
    (root / "var" / "log" / "system.log").write_text("shop started\n")
    for i in range(200):
        (root / "pub" / "media" / "catalog" / "product" / f"p{i:04d}.jpg").write_bytes(
            rng.randbytes(rng.randint(5_000, 60_000)))

    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE shop CHARACTER SET utf8mb4")
        cur.execute("USE shop")
        for stmt in SCHEMA:
            cur.execute(stmt)
        cur.execute("INSERT INTO store VALUES (1, 'default', 'Default Store View')")
        cur.executemany(
            "INSERT INTO catalog_product_entity (sku, name, price, weight) VALUES (%s,%s,%s,%s)",
            [(f"SKU-{i:05d}", f"Product {i} ✓", round(rng.uniform(1, 999), 6),
              rng.uniform(0, 20)) for i in range(5000)])
        cur.executemany(
            "INSERT INTO sales_order (store_id, customer_name, grand_total, created_at) "
            "VALUES (1, %s, %s, %s)",
            [(f"{rng.choice(NAMES)} {i}", round(rng.uniform(5, 2000), 4),
              f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d} 12:00:00")
             for i in range(3000)])
    conn.close()


def fingerprint(root: Path, server: PrivateMariaDB) -> dict[str, object]:
    out: dict[str, object] = {}
    conn = server.connect("shop")
    with conn.cursor() as cur:
        cur.execute("SHOW FULL TABLES")
        for name, kind in cur.fetchall():
            if kind in ("BASE TABLE", "SYSTEM VERSIONED"):  # every table with rows
                cur.execute(f"CHECKSUM TABLE `{name}` EXTENDED")
                out[f"table {name}"] = cur.fetchone()[1]
    conn.close()
    for mount in ("var", "pub/media", "app/etc"):
        for p in sorted((root / mount).rglob("*")):
            if p.is_file():
                out[f"file {p.relative_to(root)}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def main(argv: list[str]) -> int:
    base = Path(argv[0] if argv else "demo").resolve()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    rng = random.Random(42)
    print(f"snapkeep demo in {base}: a sample shop on a private MariaDB server")
    with PrivateMariaDB(base / "mariadb") as server:
        root = base / "shop"
        root.mkdir()
        build_shop(root, server, rng)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
        run(["init", "--project-id", "shop", "--database", server.url("shop")], root, env)
        original = fingerprint(root, server)

        out = run(["snapshot:create"], root, env)
        snapshot = out.strip().splitlines()[-1].split(": ", 1)[1]
        run(["snapshot:list"], root, env)

        print("\n# Something goes wrong: orders deleted, prices zeroed, product images lost.")
        conn = server.connect("shop")
        with conn.cursor() as cur:
            cur.execute("DELETE FROM sales_order WHERE entity_id % 3 = 0")
            cur.execute("UPDATE catalog_product_entity SET price = 0")
        conn.close()
        for p in list((root / "pub" / "media" / "catalog" / "product").iterdir())[:50]:
            p.unlink()
        damaged = fingerprint(root, server)
        print(f"# {sum(original[k] != damaged.get(k) for k in original)} tables/files differ "
              "from the snapshot now.")

        run(["snapshot:restore", snapshot, "--yes"], root, env)
        restored = fingerprint(root, server)
        differ = [k for k in original if original[k] != restored.get(k)]
        tables = sum(k.startswith("table ") for k in original)
        if differ or len(restored) != len(original):
            print(f"\ndemo: restore differs from the original: {differ[:5]}", file=sys.stderr)
            return 1
        print(f"\nRestore verified: {tables} tables identical (CHECKSUM TABLE) and "
              f"{len(original) - tables} files identical (SHA-256) to the moment of the snapshot.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
