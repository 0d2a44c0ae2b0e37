"""What the CLI prints on failure: each error once, no bar for an activity that never
started, an unresolvable host named as such, a pause left as found, and Ctrl-C exiting 130."""

from __future__ import annotations

import json
import re
import signal
import time

import MySQLdb
import pymysql
import pytest

from snapkeep.engines.mysql.connect import DRIVER_ERRORS, translate
from snapkeep.engines.mysql.target import MySQLTarget
from tests.helpers.shop import one_line_error


def test_an_error_is_printed_once_and_no_empty_bar_when_nothing_started(shop):
    cli, _root, _db = shop
    res = cli.run("snapshot:delete", "nosuchid", check=False)
    line = one_line_error(res, "nosuchid")
    message = line.removeprefix("snapkeep: ")
    assert res.stderr.count(message) == 1, res.stderr
    assert "Failed:" not in res.stderr, res.stderr
    assert "secs (" not in res.stderr, res.stderr


def test_a_failed_activity_prints_its_error_once(shop):
    cli, root, _db = shop
    with open(root / "snapkeep.toml", "a") as f:
        f.write('\n[environments.develop-branch.hooks]\n'
                'before_snapshot = ["echo no; exit 3"]\n')
    res = cli.run("snapshot:create", "--live", check=False)
    line = one_line_error(res, "before_snapshot hook")
    assert res.stderr.count(line.removeprefix("snapkeep: ")) == 1, res.stderr
    assert "(failed)" in res.stderr  # the activity started: its bar is shown


def test_an_unresolvable_host_is_named_as_such(shop):
    cli, root, _db = shop
    text = (root / "snapkeep.toml").read_text()
    (root / "snapkeep.toml").write_text(
        re.sub(r"127\.0\.0\.1:\d+", "nonexistent.invalid:3306", text))
    res = cli.run("snapshot:create", "--live", check=False, timeout=120)
    line = one_line_error(res, "nonexistent.invalid", "cannot be resolved")
    assert "is it running" not in line


def test_a_shop_already_in_maintenance_is_left_as_found(shop):
    cli, root, _db = shop
    flag = root / "var" / ".maintenance.flag"
    flag.write_text("set by the shop owner\n")
    res = cli.run("snapshot:create")
    assert "already in maintenance" in res.stderr, res.stderr
    assert "Paused" not in res.stderr and "Resumed" not in res.stderr, res.stderr
    assert flag.read_text() == "set by the shop owner\n"


def test_ctrl_c_exits_130_and_leaves_the_environment_as_found(shop):
    cli, root, _db = shop
    started = root / "hook-started"
    with open(root / "snapkeep.toml", "a") as f:
        f.write('\n[environments.develop-branch.hooks]\n'
                f'before_snapshot = ["touch {started}; sleep 60"]\n')
    proc = cli.popen("snapshot:create")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.startswith("snapkeep:")]
    assert lines == ["snapkeep: interrupted"], err
    assert not (root / "var" / ".maintenance.flag").exists()
    assert not (root / ".snapkeep-state" / "paused.json").exists()
    assert json.loads(cli.run("snapshot:list", "--format", "json").stdout) == []


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_both_drivers_name_an_unresolvable_host(driver):
    # PyMySQL reports a failed lookup as 2003 and mysqlclient as 2005: both are named.
    target = MySQLTarget("nonexistent.invalid", 3306, "u", None, "d")
    connect = pymysql.connect if driver == "pymysql" else MySQLdb.connect
    with pytest.raises(DRIVER_ERRORS) as caught:
        connect(host=target.host, port=target.port, user="u", connect_timeout=5)
    message = str(translate(caught.value, target, "connecting"))
    assert "'nonexistent.invalid' cannot be resolved" in message
    assert "is it running" not in message
