"""schedule:add, schedule:list and schedule:delete as a person types them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.project_files import write_project
from tests.helpers.shop import Cli, cli_env, one_line_error


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "app" / "var").mkdir(parents=True)
    write_project(tmp_path, "pro", {"production": "production", "staging": "staging",
                                    "dev": "development"}, project_id="shop")
    return Cli(tmp_path, cli_env())



def listed(cli: Cli, *args: str) -> list[dict]:
    return json.loads(cli.run("schedule:list", "--format", "json", *args).stdout)


def test_a_pro_project_lists_the_hourly_automatic_backups_of_staging_and_production(cli):
    rows = listed(cli)
    assert sorted((r["environment"], r["cron"], r["live"], r["origin"]) for r in rows) == [
        ("production", "0 * * * *", True, "plan"), ("staging", "0 * * * *", True, "plan")]
    table = cli.run("schedule:list").stdout  # live: the plan's backups never pause the shop
    assert "Cron (UTC)" in table and "live" in table and "plan" in table


def test_add_prints_the_id_and_next_three_runs_in_utc_then_list_and_delete_it(cli):
    res = cli.run("schedule:add", "dev", "0 3 * * *", "--live")
    lines = res.stdout.strip().splitlines()
    schedule_id = lines[0].removeprefix("Schedule ID: ")
    runs = [datetime.fromisoformat(line.removeprefix("Next run: ").removesuffix(" UTC"))
            for line in lines[1:]]
    assert len(runs) == 3 and lines[1].endswith("+00:00 UTC")
    assert all((t.hour, t.minute, t.utcoffset()) == (3, 0, UTC.utcoffset(None)) for t in runs)
    assert [(b - a).days for a, b in zip(runs, runs[1:], strict=False)] == [1, 1]
    assert "live backup schedule '0 3 * * *' (UTC)" in res.stderr

    (row,) = listed(cli, "-e", "dev")
    assert (row["id"], row["cron"], row["live"], row["origin"], row["last_run_at"]) == (
        schedule_id, "0 3 * * *", True, "user", None)
    assert datetime.fromisoformat(row["next_run_at"]) == runs[0]
    assert re.search(rf"\| {schedule_id} +\| dev +\| 0 3 \* \* \* +\| live ",
                     cli.run("schedule:list").stdout)

    res = cli.run("schedule:delete", schedule_id)
    assert f"Deleted schedule {schedule_id}" in res.stderr
    assert listed(cli, "-e", "dev") == []
    one_line_error(cli.run("schedule:delete", schedule_id, check=False), "does not exist")


def test_the_plan_schedule_cannot_be_deleted_but_extra_schedules_can_be_added(cli):
    plan = next(r for r in listed(cli) if r["environment"] == "production")
    res = cli.run("schedule:delete", plan["id"], check=False)
    assert res.returncode == 4
    one_line_error(res, "comes from the project's Pro plan", "schedule:add production")
    cli.run("schedule:add", "production", "30 2 * * sun")
    rows = listed(cli, "-e", "production")
    assert sorted(r["origin"] for r in rows) == ["plan", "user"]


@pytest.mark.parametrize("cron,fragments", [
    ("0 3 * *", ["has 4 field(s)", "minute hour day-of-month month day-of-week"]),
    ("0 24 * * *", ["the hour field '24' is not valid", "0-23"]),
    ("0 0 31 2 *", ["never matches a real date"]),
])
def test_a_bad_cron_expression_is_one_clear_line_with_an_example_and_adds_nothing(
        cli, cron, fragments):
    res = cli.run("schedule:add", "dev", cron, check=False)
    assert res.returncode == 2
    one_line_error(res, *fragments, '"0 3 * * *" (every day at 03:00 UTC)')
    assert listed(cli, "-e", "dev") == []


def test_an_unknown_environment_is_refused(cli):
    one_line_error(cli.run("schedule:add", "nope", "0 3 * * *", check=False),
                   "unknown environment 'nope'")


def test_the_help_says_times_are_utc(cli):
    for command in ("schedule:add", "schedule:list"):
        assert "UTC" in cli.run(command, "--help").stdout
