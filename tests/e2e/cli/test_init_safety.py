"""`snapkeep init` keeps secrets private and out of git, and says where backups live."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.helpers.shop import Cli, cli_env, git, one_line_error


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_in_a_work_tree_ignores_the_state_dir_once(tmp_path: Path):
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("/vendor/")   # no trailing newline: appended cleanly
    cli = Cli(root, cli_env())
    res = cli.run("init", "--project-id", "shop", timeout=60)
    assert ".gitignore" in res.stderr
    assert (root / ".gitignore").read_text().splitlines() == ["/vendor/", "/.snapkeep/"]
    cli.run("init", "--project-id", "shop", timeout=60)
    assert (root / ".gitignore").read_text().splitlines() == ["/vendor/", "/.snapkeep/"]
    status = git(root, "status", "--porcelain", "--untracked-files=all")
    assert ".snapkeep" not in str(status)
    assert "own disk" in res.stderr and "s3://" in res.stderr


def test_init_with_a_password_in_the_url_writes_owner_only_files(tmp_path: Path, mariadb,
                                                                 fresh_db):
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS 'pw_{fresh_db}'@'%' IDENTIFIED BY 's3cret'")
        cur.execute(f"GRANT ALL ON `{fresh_db}`.* TO 'pw_{fresh_db}'@'%'")
    conn.close()
    url = mariadb.url(fresh_db).replace("//root@", f"//pw_{fresh_db}:s3cret@")
    assert "s3cret" in url
    res = Cli(root, cli_env()).run("init", "--project-id", "shop", "--database", url,
                                   timeout=60)
    assert mode(root / "snapkeep.toml") == 0o600
    assert mode(root / ".snapkeep" / "catalog.db") == 0o600
    assert "SNAPKEEP_DB_PASSWORD" in res.stderr
    assert (root / ".gitignore").read_text().splitlines() == ["/.snapkeep/", "/snapkeep.toml"]


def test_init_without_a_password_keeps_the_config_readable(tmp_path: Path):
    root = tmp_path / "app"
    root.mkdir()
    res = Cli(root, cli_env()).run("init", "--project-id", "shop", timeout=60)
    assert mode(root / "snapkeep.toml") == 0o644 & ~_umask()
    assert mode(root / ".snapkeep" / "catalog.db") == 0o600
    assert "SNAPKEEP_DB_PASSWORD" not in res.stderr
    assert not (root / ".gitignore").exists()   # not a work tree: nothing to ignore


def _umask() -> int:
    import os
    current = os.umask(0)
    os.umask(current)
    return current


def test_init_with_a_bad_url_writes_nothing(tmp_path: Path):
    root = tmp_path / "app"
    root.mkdir()
    res = Cli(root, cli_env()).run("init", "--database", "not a url", check=False, timeout=60)
    assert "mysql://" in one_line_error(res, "--database")
    assert not (root / "snapkeep.toml").exists()


def test_init_with_an_unreachable_database_writes_nothing(tmp_path: Path, mariadb, fresh_db):
    root = tmp_path / "app"
    root.mkdir()
    url = mariadb.url(fresh_db) + "_missing"
    res = Cli(root, cli_env()).run("init", "--database", url, check=False, timeout=60)
    one_line_error(res, f"{fresh_db}_missing")
    assert not (root / "snapkeep.toml").exists()
    assert not (root / ".snapkeep").exists()


def test_init_refuses_to_drop_a_new_database_for_an_existing_config(tmp_path: Path, mariadb,
                                                                    fresh_db):
    root = tmp_path / "app"
    root.mkdir()
    cli = Cli(root, cli_env())
    url = mariadb.url(fresh_db)
    cli.run("init", "--project-id", "shop", "-e", "main", "--database", url, timeout=60)
    before = (root / "snapkeep.toml").read_text()
    cli.run("init", "--project-id", "shop", "-e", "main", "--database", url, timeout=60)
    other = mariadb.url("mysql")
    res = cli.run("init", "-e", "main", "--database", other, check=False, timeout=60)
    one_line_error(res, "--database", "already exists", other)
    assert (root / "snapkeep.toml").read_text() == before


def test_init_refuses_a_type_root_or_mount_that_differs_from_an_existing_config(
        tmp_path: Path):
    """Silently ignored before (#13 item 12): each is refused, naming it and the file's value."""
    root = tmp_path / "app"
    root.mkdir()
    cli = Cli(root, cli_env())
    cli.run("init", "--project-id", "shop", "-e", "main", "--mount", "var", "--mount",
            "pub/media", timeout=60)
    before = (root / "snapkeep.toml").read_text()
    # The same values, spelled differently, are not changes.
    cli.run("init", "-e", "main", "--type", "development", "--root", "./",
            "--mount", "/pub/media/", "--mount", "var", timeout=60)
    for args, named in ((["--type", "staging"], "--type 'staging' (the file has 'development')"),
                        (["--root", "web"], "--root 'web' (the file has '.')"),
                        (["--mount", "var"], "--mount 'var' (the file has 'var, pub/media')")):
        res = cli.run("init", "-e", "main", *args, check=False, timeout=60)
        one_line_error(res, "already exists", named, "Edit")
        assert (root / "snapkeep.toml").read_text() == before
    res = cli.run("init", "-e", "other", "--type", "staging", check=False, timeout=60)
    one_line_error(res, "has no environment 'other'", "--type", "-e")
    assert (root / "snapkeep.toml").read_text() == before
