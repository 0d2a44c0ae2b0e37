from pathlib import Path

import pytest

from snapkeep.config import DatabaseURL, find_config, load_config
from snapkeep.errors import ConfigError

GOOD = """
[project]
id = "shop"
plan = "starter"

[environments.develop-branch]
type = "development"
root = "app"
mounts = ["var", "/pub/media/", "app/etc", "var"]
database = "mysql://root@127.0.0.1:3306/shop"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "snapkeep.toml"
    p.write_text(text)
    return p


def test_config_is_found_by_walking_up_from_a_subdirectory(tmp_path):
    write(tmp_path, GOOD)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_config(cwd=sub) == tmp_path / "snapkeep.toml"


def test_missing_config_says_to_run_init(tmp_path):
    with pytest.raises(ConfigError, match="snapkeep init"):
        find_config(cwd=tmp_path)


def test_environment_is_parsed_with_normalised_unique_mounts_and_root_relative_to_file(tmp_path):
    cfg = load_config(str(write(tmp_path, GOOD)))
    env = cfg.environment("develop-branch")
    assert env.mounts == ("var", "pub/media", "app/etc")
    assert env.root == (tmp_path / "app").resolve()
    assert cfg.repository == str((tmp_path / ".snapkeep" / "repository").resolve())
    assert cfg.restore_window_days == 7
    assert env.database.describe() == "mysql://root@127.0.0.1:3306/shop"


@pytest.mark.parametrize("snippet,message", [
    ('plan = "gold"', "plan"),
    ('restore_window_days = 0', "restore_window_days"),
])
def test_bad_project_values_name_the_key(tmp_path, snippet, message):
    text = GOOD.replace('plan = "starter"', snippet if "plan" in snippet else
                        f'plan = "starter"\n{snippet}')
    with pytest.raises(ConfigError, match=message):
        load_config(str(write(tmp_path, text)))


def test_mount_outside_the_root_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="inside the app root"):
        load_config(str(write(tmp_path, GOOD.replace('"app/etc"', '"../etc"'))))


def test_unknown_environment_lists_the_known_ones(tmp_path):
    cfg = load_config(str(write(tmp_path, GOOD)))
    with pytest.raises(ConfigError, match="known: develop-branch"):
        cfg.environment("nope")


def test_password_comes_from_url_or_environment_and_never_shows(monkeypatch):
    monkeypatch.setenv("SNAPKEEP_DB_PASSWORD", "from-env")
    url = DatabaseURL.parse("mysql://app@db:3307/shop", where="t")
    assert url.password == "from-env"
    url2 = DatabaseURL.parse("mysql://app:s%40cret@db/shop?socket=/run/m.sock", where="t")
    assert url2.password == "s@cret" and url2.port == 3306 and url2.unix_socket == "/run/m.sock"
    assert "cret" not in repr(url2) and "cret" not in url2.describe()


@pytest.mark.parametrize("url", ["postgres://x@h/db", "mysql://x@h/", "mysql://x@h:99999/db"])
def test_bad_database_urls_are_refused(url):
    with pytest.raises(ConfigError):
        DatabaseURL.parse(url, where="t")


def test_repository_table_takes_storage_options_and_a_key_file(tmp_path):
    text = GOOD.replace('plan = "starter"', 'plan = "starter"\nrepository = "s3://bkt/shop"') + \
        '\n[repository]\nendpoint = "http://127.0.0.1:8333"\nregion = "us-east-1"\n' \
        'key_file = "keys/shop.key"\n'
    cfg = load_config(str(write(tmp_path, text)))
    assert cfg.repository == "s3://bkt/shop"
    assert cfg.repository_options == {"endpoint": "http://127.0.0.1:8333", "region": "us-east-1"}
    assert cfg.key_file == (tmp_path / "keys" / "shop.key").resolve()


def test_the_compression_level_of_database_rows_is_a_zstd_level(tmp_path):
    assert load_config(str(write(tmp_path, GOOD))).compression_level == 3
    cfg = load_config(str(write(tmp_path, GOOD + '\n[repository]\ncompression_level = 9\n')))
    assert cfg.compression_level == 9
    for bad in ("0", "20", '"high"', "true"):
        with pytest.raises(ConfigError, match="compression_level"):
            load_config(str(write(tmp_path, GOOD + f"\n[repository]\ncompression_level = {bad}\n")))


def test_unknown_repository_option_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key `bucket`"):
        load_config(str(write(tmp_path, GOOD + '\n[repository]\nbucket = "x"\n')))


def test_retention_counts_are_validated(tmp_path):
    ok = GOOD + '\n[environments.develop-branch.retention]\nkeep_daily = 7\nkeep_last = 3\n'
    env = load_config(str(write(tmp_path, ok))).environment("develop-branch")
    assert env.retention == {"keep_daily": 7, "keep_last": 3}
    with pytest.raises(ConfigError, match="keep_yearly"):
        load_config(str(write(tmp_path, ok.replace("keep_last", "keep_yearly"))))
    with pytest.raises(ConfigError, match="keep_daily"):
        load_config(str(write(tmp_path, ok.replace("= 7", "= -1"))))
