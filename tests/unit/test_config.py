import re
from pathlib import Path

import pytest

from snapkeep import config as config_face
from snapkeep.config import (
    ANY_NAME,
    SCHEMA,
    DatabaseURL,
    find_config,
    load_config,
    parse_config,
    table_header,
)
from snapkeep.errors import ConfigError
from snapkeep.repository import ROWS_ZSTD_LEVEL
from snapkeep.services.project import render_config

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
    assert load_config(str(write(tmp_path, GOOD))).compression_level == ROWS_ZSTD_LEVEL == 3
    cfg = load_config(str(write(tmp_path, GOOD + '\n[repository]\ncompression_level = 9\n')))
    assert cfg.compression_level == 9
    for bad in ("0", "20", '"high"', "true"):
        with pytest.raises(ConfigError, match="compression_level"):
            load_config(str(write(tmp_path, GOOD + f"\n[repository]\ncompression_level = {bad}\n")))


def test_unknown_repository_option_is_named(tmp_path):
    with pytest.raises(ConfigError,
                       match=r"unknown key 'bucket' in \[repository\]; valid keys here: key_file"):
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
    ('before_backup = ["x"]', "did you mean 'before_snapshot'"),
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
    ('webhook_url = "http://x/h"\nurl = "http://y"', "did you mean 'webhook_url'"),
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


# -- the schema: unknown keys and tables, wrong types, empty environments, verify -----------

ENV = "develop-branch"


def good_data() -> dict:
    """GOOD as parsed, with every table of the schema present (so each can get a typo)."""
    return {
        "project": {"id": "shop", "plan": "starter"},
        "repository": {"key_file": "k.key"},
        "environments": {ENV: {"root": "app", "mounts": ["var"],
                               "database": "mysql://root@127.0.0.1:3306/shop",
                               "retention": {"keep_last": 3},
                               "hooks": {"timeout": 30}}},
        "notifications": {"webhook_url": "http://127.0.0.1:9/h", "webhook_secret": "s"},
        "replicas": {ENV: {"location": "offsite", "retention": {"keep_daily": 30}}},
    }


def misspelt(key: str) -> str:
    """``key`` with one letter dropped from its middle (``database`` → ``databse``)."""
    return key[:len(key) // 2] + key[len(key) // 2 + 1:] if len(key) > 3 else key + "x"


# every (table, key) the schema knows, so a new key or table is covered without editing here
SCHEMA_KEYS = [(table, key) for table, keys in SCHEMA.items() for key in keys if key != ANY_NAME]


@pytest.mark.parametrize("table,key", SCHEMA_KEYS, ids=[f"{t or 'top'}:{k}" for t, k in
                                                         SCHEMA_KEYS])
def test_a_misspelt_key_in_any_table_is_refused_naming_the_right_one(tmp_path, table, key):
    names = tuple(n.replace(ANY_NAME, ENV) for n in table.split(".")) if table else ()
    data = good_data()
    target = data
    for n in names:
        target = target[n]
    is_table = SCHEMA[table][key].table
    target[misspelt(key)] = {} if is_table else "x"
    with pytest.raises(ConfigError) as e:
        parse_config(data, tmp_path / "snapkeep.toml")
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'snapkeep.toml'}: unknown ")
    if is_table:
        assert f"unknown table {table_header((*names, misspelt(key)))}; did you mean " \
               f"{table_header((*names, key))}?" in message
    else:
        assert f"unknown key '{misspelt(key)}' " in message
        assert f"; did you mean '{key}'?" in message
    del target[misspelt(key)]
    parse_config(data, tmp_path / "snapkeep.toml")  # the same config without the typo passes


def test_the_did_you_mean_text_names_the_file_the_table_and_the_key(tmp_path):
    path = write(tmp_path, GOOD.replace("database =", "databse ="))
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value) == (f"{path}: unknown key 'databse' in [environments.develop-branch]; "
                            "did you mean 'database'?")
    with pytest.raises(ConfigError, match="unknown key 'mount' .* did you mean 'mounts'"):
        load_config(str(write(tmp_path, GOOD.replace("mounts =", "mount ="))))


def test_a_key_nothing_resembles_is_refused_with_the_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, GOOD.replace('type = "development"', "colour = 1"))))
    assert "unknown key 'colour' in [environments.develop-branch]; valid keys here: type, " \
        "root, mounts, database," in str(e.value)


def test_a_key_in_the_wrong_table_says_where_it_belongs(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, GOOD + "keep_daily = 7\n")))
    assert "unknown key 'keep_daily' in [environments.develop-branch]" in str(e.value)
    assert "`keep_daily` belongs in [environments.develop-branch.retention]" in str(e.value)
    with pytest.raises(ConfigError, match=r"at the top level, .* belongs in \[project\]"):
        load_config(str(write(tmp_path, 'restore_window_days = 3\n' + GOOD)))


def test_an_unknown_top_level_table_is_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, GOOD + '\n[schedules]\nnightly = "0 3 * * *"\n')))
    assert str(e.value).endswith("unknown table [schedules]; valid tables here: [project], "
                                 "[repository], [environments], [notifications], [replicas]")
    with pytest.raises(ConfigError, match=r"did you mean \[notifications\]\?"):
        load_config(str(write(tmp_path, GOOD + '\n[notification]\nwebhook_url = "x"\n')))


@pytest.mark.parametrize("line,message", [
    ('mounts = "var"', "`mounts` must be a list of paths (strings), as in "),
    ("mounts = [1]", "`mounts` must be a list of paths"),
    ("pause_command = 5", "`pause_command` must be a string, not a whole number"),
    ("resume_command = true", "`resume_command` must be a string, not true/false"),
    ("verify = 4", "`verify` must be a string"),
    ("root = 2026-01-01", "`root` must be a string, not a date/time"),
    ("retention = 7", "`retention` must be a table, not a whole number"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_key_and_type(tmp_path, line, message):
    key = line.split(" =")[0]
    text = "\n".join(ln for ln in GOOD.splitlines() if not ln.startswith(f"{key} ="))
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, text + f"\n{line}\n")))
    assert "[environments.develop-branch]: " + message in str(e.value)


def test_a_wrong_type_never_shows_the_value(tmp_path):
    text = GOOD.replace('database = "mysql://root@127.0.0.1:3306/shop"',
                        'database = ["mysql://root:hunter2@127.0.0.1:3306/shop"]')
    with pytest.raises(ConfigError, match="`database` must be a string, not an array") as e:
        load_config(str(write(tmp_path, text)))
    assert "hunter2" not in str(e.value)


def test_an_environment_that_is_not_a_table_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[environments\]: `staging` must be a table of the "
                       r"environment's settings, as in \[environments.NAME\], not a string"):
        load_config(str(write(tmp_path, GOOD.replace("[environments.develop-branch]",
                                                     '[environments]\nstaging = "x"\n\n'
                                                     "[environments.develop-branch]"))))


def test_an_environment_with_neither_database_nor_mounts_is_refused(tmp_path):
    only_db = GOOD.replace('mounts = ["var", "/pub/media/", "app/etc", "var"]\n', "")
    assert load_config(str(write(tmp_path, only_db))).environment(ENV).mounts == ()
    only_mounts = GOOD.replace('database = "mysql://root@127.0.0.1:3306/shop"\n', "")
    assert load_config(str(write(tmp_path, only_mounts))).environment(ENV).database is None
    empty = only_mounts.replace('mounts = ["var", "/pub/media/", "app/etc", "var"]',
                                "mounts = []")
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, empty)))
    assert "environment develop-branch has neither `database` nor `mounts`: a snapshot of it " \
        "would be empty; add `database = " in str(e.value)
    with pytest.raises(ConfigError, match="`database` must be a non-empty string"):
        load_config(str(write(tmp_path, GOOD.replace('"mysql://root@127.0.0.1:3306/shop"',
                                                     '""'))))


@pytest.mark.parametrize("cron,stored", [
    ("0 4 * * *", "0 4 * * *"),
    ("  30   2 * *  sun ", "30 2 * * sun"),
    ("*/15 * * * 1-5", "*/15 * * * 1-5"),
    ("@Daily", "@daily"),
])
def test_verify_takes_a_cron_expression_for_restore_drills(tmp_path, cron, stored):
    env = load_config(str(write(tmp_path, GOOD + f'verify = "{cron}"\n'))).environment(ENV)
    assert env.verify == stored


def test_without_verify_no_drill_is_scheduled(tmp_path):
    assert load_config(str(write(tmp_path, GOOD))).environment(ENV).verify is None


@pytest.mark.parametrize("cron,message", [
    ("0 4 * *", "has 4 field(s); a cron expression has 5"),
    ("0 0 4 * * *", "has 6 field(s)"),
    ("", "has 0 field(s)"),
    ("61 * * * *", "is not a valid cron expression"),
    ("0 4 30 2 *", "never matches a real date"),
    ("0 4 * * funday", "is not a valid cron expression"),
    ("@fortnightly", "is not a valid cron expression"),
])
def test_a_bad_verify_cron_is_refused(tmp_path, cron, message):
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, GOOD + f'verify = "{cron}"\n')))
    assert "[environments.develop-branch]: `verify` " in str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize("database", [None, "mysql://root@127.0.0.1:3306/shop"])
@pytest.mark.parametrize("key_file", [True, False])
def test_the_config_init_writes_passes_the_schema(tmp_path, database, key_file):
    text = render_config("shop", "pro", "main", "staging", "app", ["var", "pub/media"],
                         database, key_file=key_file)
    cfg = load_config(str(write(tmp_path, text)))
    assert cfg.environment("main").mounts == ("var", "pub/media")


def test_the_readme_configuration_example_passes_and_names_only_known_keys(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("SNAPKEEP_WEBHOOK_SECRET", "x")  # its secret file is not here
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    cfg = load_config(str(write(tmp_path, example)))
    assert cfg.environment("develop-branch").retention["keep_weekly"] == 4
    known = {key for keys in SCHEMA.values() for key in keys}
    commented = set(re.findall(r"^# (\w+) = ", example, re.MULTILINE))
    assert "verify" in commented and commented <= known, commented - known


@pytest.mark.parametrize("name", ["../../esc", "a/b", ".hidden", "..", "a b", "é", "x" * 101])
def test_an_environment_name_that_could_leave_the_state_directory_is_refused(tmp_path, name):
    text = GOOD.replace("[environments.develop-branch]", f'[environments."{name}"]')
    with pytest.raises(ConfigError, match='is not allowed: use letters, digits, "-", "_" '
                                          r'and "\." \(not first\)'):
        load_config(str(write(tmp_path, text)))


@pytest.mark.parametrize("name", ["develop-branch", "prod_2", "release-1.2", "_tmp"])
def test_git_branch_like_environment_names_are_accepted(tmp_path, name):
    text = GOOD.replace("[environments.develop-branch]", f'[environments."{name}"]')
    assert load_config(str(write(tmp_path, text))).environment(name).name == name


def test_nothing_builds_a_state_path_from_an_unsafe_name(tmp_path):
    from snapkeep.services.activities import locks as activities
    from snapkeep.services.context import Context
    from snapkeep.services.snapshots import pause

    ctx = Context(load_config(str(write(tmp_path, GOOD))))
    with pytest.raises(ConfigError, match="'../../esc' is not allowed"):
        activities.lock_path(ctx, "../../esc")
    with pytest.raises(ConfigError, match="is not allowed"):
        pause._marker(ctx, "../x")  # where an earlier version kept it
    with pytest.raises(ConfigError, match="cannot name a file under"):
        ctx.state_path("logs", "../../esc.log")
    assert not (tmp_path.parent / "esc.lock").exists()


@pytest.mark.parametrize(("root", "mounts", "message"), [
    ("app", '["."]', "mount '.' is the whole app root"),
    ("app", '["/"]', "every mount must be a non-empty relative path"),
    (".", '[".snapkeep"]', "mount '.snapkeep' is or holds snapkeep's state directory"),
    (".", '[".snapkeep/repository"]', "mount '.snapkeep/repository' is or holds snapkeep's"),
    ("app", '["var", "var/sub"]', "mounts 'var' and 'var/sub' overlap"),
    ("app", '["/.snapkeep-state/x"]', "mount '/.snapkeep-state/x' is snapkeep's "
                                      ".snapkeep-state directory"),
    ("app", '["pub/media/x", "/pub/"]', "mounts 'pub' and 'pub/media/x' overlap"),
])
def test_mounts_of_the_root_the_state_or_each_other_are_refused(tmp_path, root, mounts,
                                                                 message):
    text = GOOD.replace('root = "app"', f'root = "{root}"').replace(
        'mounts = ["var", "/pub/media/", "app/etc", "var"]', f"mounts = {mounts}")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(str(write(tmp_path, text)))


def test_the_app_root_holding_the_config_may_be_a_root_with_sibling_mounts(tmp_path):
    text = GOOD.replace('root = "app"', 'root = "."').replace(
        'mounts = ["var", "/pub/media/", "app/etc", "var"]', 'mounts = ["var", "variable"]')
    assert load_config(str(write(tmp_path, text))).environment(ENV).mounts == ("var",
                                                                                "variable")


# Every public name of snapkeep.config before it became a package: callers import them
# from snapkeep.config, whichever module of the package holds them.
PUBLIC = (
    "ANY_NAME", "CATALOG_FILE", "CATALOG_SCHEMES", "COMMANDS", "CONFIG_NAME", "CRON_EXAMPLE",
    "CRON_MACROS", "DEFAULT_COMPRESSION_LEVEL", "DEFAULT_HOOK_TIMEOUT", "DEFAULT_KEY_FILE",
    "DEFAULT_RESTORE_WINDOW_DAYS", "DatabaseURL", "ENVIRONMENT", "ENV_NAME", "ENV_NAME_RULE",
    "ENV_TYPES", "EnvironmentConfig", "HOOK_EVENTS", "HOOK_POLICIES", "Hooks", "Kind",
    "NUMBER", "PATHS", "PLANS", "ProjectConfig", "RETENTION_KEYS", "SCHEMA", "STATE_DIR",
    "STORAGE_OPTIONS", "STRING", "TABLE", "WHOLE", "WebhookConfig", "check_schema",
    "find_config", "load_config", "parse_config", "redact_url", "safe_name", "table_header",
)


def test_every_public_name_is_importable_from_snapkeep_config():
    missing = [name for name in PUBLIC if not hasattr(config_face, name)]
    assert missing == []


def test_point_in_time_is_off_unless_asked_and_takes_an_interval(tmp_path):
    env = load_config(str(write(tmp_path, GOOD))).environment("develop-branch")
    assert (env.point_in_time, env.binlog_interval) == (False, 2.0)
    env = load_config(str(write(tmp_path, GOOD + "point_in_time = true\nbinlog_interval = 5\n"))
                      ).environment("develop-branch")
    assert (env.point_in_time, env.binlog_interval) == (True, 5.0)
    assert env.binlog_lag_warning == 60.0
    env = load_config(str(write(tmp_path, GOOD + "binlog_lag_warning = 300\n"))
                      ).environment("develop-branch")
    assert env.binlog_lag_warning == 300.0


@pytest.mark.parametrize("snippet,message", [
    ('point_in_time = "yes"', "`point_in_time` must be true or false"),
    ("binlog_interval = 0", "`binlog_interval` must be between 0.1 and 300 seconds"),
    ("binlog_lag_warning = 0", "`binlog_lag_warning` must be between 1 and 604800 seconds"),
])
def test_bad_point_in_time_settings_name_the_key(tmp_path, snippet, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(str(write(tmp_path, GOOD + snippet + "\n")))


def test_a_replica_gets_its_own_key_file_by_default_and_its_own_retention(tmp_path):
    cfg = load_config(str(write(tmp_path, GOOD + '\n[replicas.offsite]\nlocation = "../off"\n'
                                '[replicas.offsite.retention]\nkeep_daily = 30\n')))
    r = cfg.replica("offsite")
    assert r.location == str((tmp_path.parent / "off").resolve())
    assert r.key_file == tmp_path / ".snapkeep" / "replicas" / "offsite.key"
    assert r.retention == {"keep_daily": 30} and not r.automatic
    with pytest.raises(ConfigError, match=r"unknown replica 'other' \(known: offsite\)"):
        cfg.replica("other")


@pytest.mark.parametrize("lines,message", [
    ('location = ".snapkeep/repository"', "is the project's own repository"),
    ('location = "/srv/off"\nendpoint = "http://127.0.0.1:1"', "apply to an s3:// `location`"),
    ('location = "s3://b/p"\npassphrase = true\nkey_file = "k"', "not both"),
    ('endpoint = "http://127.0.0.1:1"', "`location` must be a non-empty string"),
])
def test_a_replica_that_cannot_work_is_refused_in_one_line(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_config(str(write(tmp_path, GOOD + f"\n[replicas.offsite]\n{lines}\n")))
    assert "\n" not in str(e.value) and "[replicas.offsite]" in str(e.value)


def test_the_engine_is_auto_unless_asked_and_one_of_three(tmp_path):
    env = load_config(str(write(tmp_path, GOOD))).environment("develop-branch")
    assert env.engine == "auto"
    for engine in ("auto", "physical", "logical"):
        env = load_config(str(write(tmp_path, GOOD + f'engine = "{engine}"\n'))
                          ).environment("develop-branch")
        assert env.engine == engine
    with pytest.raises(ConfigError, match="engine"):
        load_config(str(write(tmp_path, GOOD + 'engine = "pages"\n')))
