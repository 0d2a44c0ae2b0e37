"""Every refusal is one line naming the problem, a non-zero exit, and never a traceback."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.shop import Cli, cli_env, live_backup, one_line_error


def edit_config(root: Path, old: str, new: str) -> None:
    p = root / "snapkeep.toml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def test_no_config_file(tmp_path):
    res = Cli(tmp_path, cli_env()).run("snapshot:list", check=False)
    one_line_error(res, "no snapkeep.toml found", "snapkeep init")


@pytest.mark.parametrize(("args", "message", "hint"), [
    pytest.param(("snapshot:create", "-e", "nope"), "unknown environment 'nope'",
                 "develop-branch", id="unknown_environment"),
    pytest.param(("worker", "-e", "develop-brnch"), "unknown environment 'develop-brnch'",
                 "did you mean 'develop-branch'?", id="worker_environment_typo"),
    pytest.param(("worker", "--once", "-e", "nope"), "unknown environment 'nope'",
                 "develop-branch", id="worker_once_unknown_environment"),
    pytest.param(("snapshot:list", "-p", "other"), "project 'other' does not match", "shop",
                 id="wrong_project"),
    pytest.param(("snapshot:restore", "nosuchsnap", "-y"), "snapshot nosuchsnap does not exist",
                 "snapshot:list", id="unknown_snapshot_id"),
])
def test_a_name_that_does_not_exist_is_refused_saying_what_does(shop, args, message, hint):
    cli, _root, _db = shop
    one_line_error(cli.run(*args, check=False), message, hint)


def test_expired_snapshot_is_listed_not_restorable_and_refused_with_its_date(shop):
    cli, root, _db = shop
    snap = live_backup(cli)
    repo = Repository.open(LocalBackend(root / ".snapkeep" / "repository"),
                           key_file=root / ".snapkeep" / "repository.key")
    manifest = repo.load_snapshot(snap)
    manifest.expires_at = "2026-01-02T03:04:05+00:00"
    repo.commit_snapshot(manifest)
    with sqlite3.connect(root / ".snapkeep" / "catalog.db") as c:  # drop the cached listing
        c.execute("DELETE FROM snapshots")
    listing = json.loads(cli.run("snapshot:list", "--format", "json").stdout)
    assert listing[0]["restorable"] is False
    one_line_error(cli.run("snapshot:restore", snap, "-y", check=False),
                   f"snapshot {snap} expired on 2026-01-02T03:04:05+00:00")


def test_inactive_environment_refuses_snapshots_until_activated(shop):
    cli, _root, _db = shop
    cli.run("environment:deactivate")
    one_line_error(cli.run("snapshot:create", check=False), "inactive", "environment:activate")
    envs = json.loads(cli.run("environment:list", "--format", "json").stdout)
    assert envs[0]["status"] == "inactive"
    cli.run("environment:activate")
    cli.run("snapshot:create", "--live")


def test_database_unreachable(shop):
    cli, root, db = shop
    text = (root / "snapkeep.toml").read_text()
    (root / "snapkeep.toml").write_text(re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:9", text))
    res = cli.run("snapshot:create", check=False)
    one_line_error(res, "127.0.0.1:9")
    assert json.loads(cli.run("snapshot:list", "--format", "json").stdout) == []


def test_wrong_password_is_named_but_never_shown(shop, mariadb):
    cli, root, db = shop
    with mariadb.connect().cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'shopuser'@'%' IDENTIFIED BY 'right-horse'")
        cur.execute(f"GRANT ALL ON `{db}`.* TO 'shopuser'@'%'")
    edit_config(root, "mysql://root@", "mysql://shopuser@")
    cli.env["SNAPKEEP_DB_PASSWORD"] = "Wrong-Battery-Staple"
    res = cli.run("snapshot:create", check=False)
    one_line_error(res, "shopuser")
    assert "Wrong-Battery-Staple" not in res.stderr + res.stdout
    log = cli.run("activity:list", "--format", "json").stdout
    assert "Wrong-Battery-Staple" not in log
    cli.env["SNAPKEEP_DB_PASSWORD"] = "right-horse"
    cli.run("snapshot:create", "--live")


def test_a_mount_that_does_not_exist(shop):
    cli, root, _db = shop
    edit_config(root, '"app/etc"', '"app/etc", "pub/missing"')
    one_line_error(cli.run("snapshot:create", check=False), "mount pub/missing", "does not exist")


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.mark.parametrize("old,new,hint", [
    ("database =", "databse =", "did you mean 'database'?"),
    ("mounts =", "mount =", "did you mean 'mounts'?"),
])
def test_a_misspelt_config_key_is_refused_before_anything_runs(shop, old, new, hint):
    cli, root, _db = shop
    edit_config(root, old, new)
    before = tree_state(root)
    res = cli.run("snapshot:create", check=False)
    one_line_error(res, f"{root / 'snapkeep.toml'}: unknown key '{new.split()[0]}' in "
                   f"[environments.develop-branch]; {hint}")
    assert res.returncode == 2  # a config error, as for every other bad snapkeep.toml
    assert tree_state(root) == before  # no activity, no pause, no repository object


def test_pro_staging_gets_automatic_backups_not_manual_snapshots(shop):
    cli, root, _db = shop
    edit_config(root, 'plan = "starter"', 'plan = "pro"')
    edit_config(root, 'type = "development"', 'type = "staging"')
    one_line_error(cli.run("snapshot:create", check=False), "Pro staging", "automatic backups")


def test_a_bad_list_format_is_a_usage_error(shop):
    cli, _root, _db = shop
    res = cli.run("snapshot:list", "--format", "xml", check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
