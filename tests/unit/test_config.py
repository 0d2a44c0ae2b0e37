from pathlib import Path

import pytest

from snapkeep.config import DatabaseURL, find_config, load_config
from snapkeep.errors import ConfigError
from snapkeep.repository import ROWS_ZSTD_LEVEL

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
    assert load_config(str(write(tmp_path, GOOD))).compression_level == ROWS_ZSTD_LEVEL == 5
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


# -- hooks, post_restore and [notifications] ------------------------------------------------

HOOKS = GOOD + """
[environments.develop-branch.hooks]
before_snapshot = ["bin/magento maintenance:enable", "redis-cli flushall"]
after_restore = "bin/magento cache:flush"
timeout = 30
on_failure = "warn"
"""


def test_hooks_are_read_per_event_with_their_timeout_and_policy(tmp_path):
    env = load_config(str(write(tmp_path, HOOKS))).environment("develop-branch")
    assert env.hooks.commands("before_snapshot") == ("bin/magento maintenance:enable",
                                                     "redis-cli flushall")
    assert env.hooks.commands("after_restore") == ("bin/magento cache:flush",)
    assert env.hooks.commands("after_snapshot") == ()
    assert (env.hooks.timeout, env.hooks.on_failure) == (30.0, "warn")
    with pytest.raises(ValueError, match="before_backup"):
        env.hooks.commands("before_backup")


def test_without_a_hooks_table_nothing_runs_and_failures_fail(tmp_path):
    env = load_config(str(write(tmp_path, GOOD))).environment("develop-branch")
    assert all(env.hooks.commands(e) == () for e in ("before_snapshot", "after_snapshot",
                                                     "before_restore", "after_restore"))
    assert (env.hooks.timeout, env.hooks.on_failure) == (300.0, "fail")
    assert env.post_restore == ()


@pytest.mark.parametrize("line,message", [
    ('on_failure = "ignore"', "on_failure"),
    ("timeout = 0", "timeout"),
    ('timeout = "5m"', "timeout"),
    ("before_snapshot = [1]", "before_snapshot"),
    ('before_snapshot = [" "]', "before_snapshot"),
    ('before_backup = ["x"]', "unknown key `before_backup`"),
])
def test_bad_hook_settings_name_the_key(tmp_path, line, message):
    text = GOOD + f"\n[environments.develop-branch.hooks]\n{line}\n"
    with pytest.raises(ConfigError, match=message):
        load_config(str(write(tmp_path, text)))


def test_post_restore_commands_are_a_list_of_strings(tmp_path):
    text = GOOD.replace('database = "mysql', 'post_restore = ["php anonymise.php"]\n'
                                             'database = "mysql')
    env = load_config(str(write(tmp_path, text))).environment("develop-branch")
    assert env.post_restore == ("php anonymise.php",)
    with pytest.raises(ConfigError, match="post_restore"):
        load_config(str(write(tmp_path, text.replace('["php anonymise.php"]', "7"))))


def test_a_webhook_takes_its_secret_from_a_file_and_never_shows_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPKEEP_WEBHOOK_SECRET", raising=False)
    (tmp_path / "hook.secret").write_text("s3cr3t-value\n")
    text = GOOD + ('\n[notifications]\nwebhook_url = "https://hooks.example.com/snapkeep"\n'
                   'webhook_secret_file = "hook.secret"\nwebhook_timeout = 2.5\n'
                   "webhook_attempts = 3\n")
    hook = load_config(str(write(tmp_path, text))).webhook
    assert (hook.url, hook.secret, hook.timeout, hook.attempts) == \
        ("https://hooks.example.com/snapkeep", "s3cr3t-value", 2.5, 3)
    assert "s3cr3t" not in repr(hook)
    monkeypatch.setenv("SNAPKEEP_WEBHOOK_SECRET", "from-env")
    assert load_config(str(write(tmp_path, text))).webhook.secret == "from-env"


def test_a_webhook_has_defaults_and_no_table_means_no_webhook(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAPKEEP_WEBHOOK_SECRET", "x")
    assert load_config(str(write(tmp_path, GOOD))).webhook is None
    hook = load_config(str(write(tmp_path, GOOD + '\n[notifications]\n'
                                 'webhook_url = "http://127.0.0.1:9/h"\n'))).webhook
    assert (hook.timeout, hook.attempts) == (10.0, 5)


@pytest.mark.parametrize("table,message", [
    ('webhook_url = "ftp://x/h"', "http:// or https://"),
    ('webhook_url = "http://x/h"\nwebhook_attempts = 0', "webhook_attempts"),
    ('webhook_url = "http://x/h"\nwebhook_attempts = 21', "webhook_attempts"),
    ('webhook_url = "http://x/h"\nwebhook_timeout = -1', "webhook_timeout"),
    ('webhook_url = "http://x/h"\nwebhook_secret_file = "missing.secret"', "cannot read"),
    ('webhook_secret_file = "x"', "set `webhook_url`"),
    ('webhook_url = "http://x/h"\nurl = "http://y"', "unknown key `url`"),
])
def test_bad_webhook_settings_name_the_key(tmp_path, monkeypatch, table, message):
    if "webhook_secret_file" in table:  # the variable would win over the file
        monkeypatch.delenv("SNAPKEEP_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("SNAPKEEP_WEBHOOK_SECRET", "x")
    with pytest.raises(ConfigError, match=message):
        load_config(str(write(tmp_path, GOOD + f"\n[notifications]\n{table}\n")))


def test_a_webhook_without_a_secret_is_refused_saying_where_to_put_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPKEEP_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="webhook_secret_file"):
        load_config(str(write(tmp_path, GOOD + '\n[notifications]\n'
                              'webhook_url = "http://x/h"\n')))
