"""A Magento-style shop for end-to-end tests: an app root in git, mounts, a database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE store (store_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code VARCHAR(32) NOT NULL UNIQUE, name VARCHAR(255) NOT NULL) ENGINE=InnoDB;
CREATE TABLE catalog_product_entity (entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sku VARCHAR(64) NOT NULL, price DECIMAL(20,6) NOT NULL DEFAULT 0, weight FLOAT,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY idx_sku (sku)) ENGINE=InnoDB
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE sales_order (entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  store_id SMALLINT UNSIGNED NOT NULL, customer_name VARCHAR(255) CHARACTER SET utf8mb4,
  grand_total DECIMAL(20,4), payload BLOB,
  CONSTRAINT fk_store FOREIGN KEY (store_id) REFERENCES store (store_id)) ENGINE=InnoDB;
CREATE TABLE order_log (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT UNSIGNED,
  note VARCHAR(100)) ENGINE=InnoDB;
CREATE TRIGGER trg_order_log AFTER INSERT ON sales_order FOR EACH ROW
  INSERT INTO order_log (order_id, note) VALUES (NEW.entity_id, 'created');
CREATE VIEW big_orders AS SELECT entity_id, grand_total FROM sales_order WHERE grand_total > 100;
INSERT INTO store VALUES (0, 'admin', 'Admin'), (1, 'default', 'Default Store View');
"""


def fill(conn, products: int = 500, orders: int = 300) -> None:
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO'")
        for stmt in SCHEMA.split(";\n"):
            if stmt.strip():
                cur.execute(stmt)
        cur.executemany(
            "INSERT INTO catalog_product_entity (sku, price, weight) VALUES (%s, %s, %s)",
            [(f"SKU-{i:05d}", i * 1.25, i / 3) for i in range(products)])
        cur.executemany(
            "INSERT INTO sales_order (store_id, customer_name, grand_total, payload) "
            "VALUES (1, %s, %s, %s)",
            [(f"Zoë 🛒 Müller {i}", i * 0.7, bytes([i % 256, 0, 9, 10, 92]) * 3)
             for i in range(orders)])


def create_database(mariadb, name: str) -> None:
    """An empty database ``name`` on the session's MariaDB server."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.close()


def fill_database(mariadb, db: str, products: int = 500, orders: int = 300) -> None:
    """The shop's tables and rows (``fill``) in the existing database ``db``."""
    conn = mariadb.connect(db)
    fill(conn, products, orders)
    conn.close()


def checksums(conn, db: str) -> dict[str, object]:
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, table_type FROM information_schema.tables "
                    "WHERE table_schema=%s ORDER BY table_name", (db,))
        tables = cur.fetchall()
        out: dict[str, object] = {}
        for name, kind in tables:
            if kind in ("BASE TABLE", "SYSTEM VERSIONED"):  # every table with rows
                cur.execute(f"CHECKSUM TABLE `{db}`.`{name}` EXTENDED")
                out[name] = cur.fetchone()[1]
            cur.execute(f"SHOW CREATE TABLE `{db}`.`{name}`")
            out[f"{name}:ddl"] = cur.fetchone()[1]
        cur.execute("SELECT trigger_name, action_statement FROM information_schema.triggers "
                    "WHERE trigger_schema=%s ORDER BY trigger_name", (db,))
        out["triggers"] = cur.fetchall()
    return out


def tree(root: Path) -> dict[str, tuple]:
    """(type, mode, size, mtime_ns, sha256 or link target) of every entry under ``root``."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                out[rel] = ("file", st.st_mode, st.st_size, st.st_mtime_ns,
                            hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def make_app_root(root: Path, big_file_mb: int = 0) -> None:
    """Code in git on branch develop-branch, plus the three Magento mounts."""
    (root / "app" / "code").mkdir(parents=True)
    (root / "app" / "code" / "Module.php").write_text("<?php // code, never snapshotted\n")
    git(root, "init", "-q", "-b", "develop-branch")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "code")
    for d in ("var/log", "var/cache/empty", "pub/media/catalog/product", "app/etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var" / "log" / "system.log").write_text("started\n")
    (root / "app" / "etc" / "env.php").write_text("<?php return ['db' => 'x'];\n")
    os.chmod(root / "app" / "etc" / "env.php", 0o640)
    media = root / "pub" / "media" / "catalog" / "product"
    for i in range(20):
        (media / f"img{i}.jpg").write_bytes(os.urandom(20_000 + i))
    os.symlink("catalog/product/img1.jpg", root / "pub" / "media" / "placeholder.jpg")
    if big_file_mb:
        with open(media / "big.bin", "wb") as f:
            for _ in range(big_file_mb):
                f.write(os.urandom(1 << 20))


def make_shop(root: Path, mariadb, db: str, products: int = 500, orders: int = 300) -> Path:
    """``root`` made an app root (``make_app_root``) and the existing database ``db`` filled
    with the shop's data; ``root``."""
    root.mkdir()
    make_app_root(root)
    fill_database(mariadb, db, products, orders)
    return root


@dataclass
class Cli:
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, stdin: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "snapkeep", *args], cwd=self.cwd,
                             env=self.env, capture_output=True, text=True, input=stdin,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"snapkeep {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stdout}\n{res.stderr}")
        return res

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "snapkeep", *args], cwd=self.cwd,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    return env


def one_line_error(res, *fragments: str) -> str:
    """The one ``snapkeep: …`` line a failed command printed (no traceback), holding
    every fragment."""
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("snapkeep:")]
    assert len(lines) == 1, res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


MOUNTS = ("app/etc", "pub/media", "var")  # the mounts make_app_root configures


def take_snapshot(cli: Cli, env: str = "develop-branch") -> str:
    """Create a snapshot of ``env`` through the CLI; its name."""
    out = cli.run("snapshot:create", "-e", env).stdout
    return out.strip().splitlines()[-1].split(": ")[1]


def live_backup(cli: Cli) -> str:
    """``backup --live`` (the seed's alias of ``snapshot:create``) through the CLI; the
    snapshot's name."""
    return cli.run("backup", "--live").stdout.strip().splitlines()[-1].split(": ")[1]


def shop_state(mariadb, db: str, root: Path) -> dict[str, object]:
    """The shop's fingerprint: its tables' checksums and its mounts' trees."""
    conn = mariadb.connect(db)
    try:
        state: dict[str, object] = {"db": checksums(conn, db)}
    finally:
        conn.close()
    for m in MOUNTS:
        state[m] = tree(root / m)
    return state
