"""Hooks around real backups (a repository, mounts, the catalog): their output streams
into the activity log, a failing ``before_snapshot`` takes nothing, ``after_snapshot``
names the snapshot it ran after, ``warn`` goes on with a warning, a timeout or a cancel
kills the command's whole process group; a hook reaches the environment's database
with the variables it is given."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from snapkeep.config import load_config
from snapkeep.errors import Cancelled, HookError
from snapkeep.services.activities import claims, info, operations, running
from snapkeep.services.activities import listing as activities
from snapkeep.services.context import Context
from snapkeep.services.snapshots import hooks
from tests.helpers.server import wait_for


class Project:
    """Environment ``dev``: one mount (``data``) and a ``var`` (so consistent backups pause
    with the maintenance flag), with the hooks given."""

    def __init__(self, base: Path, hooks_toml: str, env_toml: str = "") -> None:
        self.root = base / "app"
        (self.root / "data").mkdir(parents=True)
        (self.root / "var").mkdir()
        (self.root / "data" / "f.txt").write_text("data\n")
        self.config = base / "snapkeep.toml"
        self.config.write_text(
            '[project]\nid = "hk"\n[repository]\nkey_file = ".snapkeep/repository.key"\n'
            f'[environments.dev]\nroot = "app"\nmounts = ["data"]\n{env_toml}\n'
            f"[environments.dev.hooks]\n{hooks_toml}\n")
        self.ctx = self.context()
        self.ctx.init_repository()
        self.env = self.ctx.config.environment("dev")

    def context(self) -> Context:
        return Context(load_config(str(self.config)))

    def backup(self, live: bool = False):
        return operations.start_backup(self.ctx, self.env, live=live)

    def last_activity(self):
        return self.ctx.catalog.list_activities("dev", limit=1)[0]

    def log(self, activity_id: str) -> list[str]:
        return [ln.message for ln in self.ctx.catalog.log_lines(activity_id)]

    def snapshots(self) -> tuple[list[str], list[str]]:
        return ([s.id for s in self.ctx.catalog.list_snapshots("dev")],
                sorted(self.ctx.repository.snapshot_ids()))


def project_of_db_user(base: Path, mariadb, db: str, user: str, password: str) -> Project:
    """A project without hooks whose database is ``db`` reached as ``user`` (created with
    all privileges on ``db``) with ``password``."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT ALL ON `{db}`.* TO '{user}'@'%'")
    conn.close()
    url = f"mysql://{user}:{password}@{mariadb.host}:{mariadb.port}/{db}"
    return Project(base, "", f'database = "{url}"')


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_hook_output_reaches_the_activity_log_while_the_hook_still_runs(tmp_path):
    p = Project(tmp_path, 'before_snapshot = ["echo first; echo to-stderr >&2; '
                          'while [ ! -e go ]; do sleep 0.02; done; echo second"]')
    other = p.context()
    t, out = in_thread(lambda: operations.start_backup(other, p.env, live=False))

    def streamed() -> bool:
        acts = p.ctx.catalog.list_activities("dev", limit=1)
        return bool(acts) and "  > to-stderr" in p.log(acts[0].id)

    wait_for(streamed, "the hook's first lines in the activity log", 60)
    a = p.last_activity()
    assert a.state == "in_progress" and "  > first" in p.log(a.id)
    assert "  > second" not in p.log(a.id)
    (p.root / "go").touch()
    t.join(timeout=120)
    assert "error" not in out, out
    lines = p.log(a.id)
    assert lines.index("Running before_snapshot hook: echo first; echo to-stderr >&2; while "
                       "[ ! -e go ]; do sleep 0.02; done; echo second") \
        < lines.index("  > first") < lines.index("  > second") \
        < next(i for i, ln in enumerate(lines) if ln.startswith("Paused dev"))
    assert p.ctx.catalog.get_activity(a.id).result == "success"


def test_after_snapshot_hooks_run_in_the_root_with_the_activity_and_snapshot_ids(
        tmp_path, monkeypatch):
    p = Project(tmp_path, "after_snapshot = ['pwd; env | grep ^SNAPKEEP_ | sort; "
                          "test -z \"$MYSQL_PWD\"']")
    monkeypatch.setenv("SNAPKEEP_TOKEN", "sk_not-for-hooks")  # snapkeep's own secrets
    monkeypatch.setenv("SNAPKEEP_WEBHOOK_SECRET", "not-for-hooks-either")
    a = p.backup(live=True)
    lines = p.log(a.id)
    assert not any("for-hooks" in ln for ln in lines), lines
    assert a.result == "success" and a.snapshot_id
    for expected in (f"  > {p.root}", "  > SNAPKEEP_PROJECT=hk", "  > SNAPKEEP_ENVIRONMENT=dev",
                     "  > SNAPKEEP_EVENT=after_snapshot", f"  > SNAPKEEP_ACTIVITY_ID={a.id}",
                     f"  > SNAPKEEP_SNAPSHOT_ID={a.snapshot_id}", "  > SNAPKEEP_LIVE=1"):
        assert expected in lines, (expected, lines)
    assert not any(ln.startswith("  > SNAPKEEP_DB_") for ln in lines)  # no database here
    created = next(i for i, ln in enumerate(lines) if ln.startswith("Created backup"))
    assert created < lines.index("Running after_snapshot hook: pwd; env | grep ^SNAPKEEP_ | "
                                 "sort; test -z \"$MYSQL_PWD\"")


def test_a_failing_before_snapshot_hook_takes_nothing_and_runs_nothing_after_it(tmp_path):
    p = Project(tmp_path, 'before_snapshot = ["echo cannot enable maintenance >&2; exit 3", '
                          '"touch second-ran"]')
    with pytest.raises(HookError) as caught:
        p.backup()
    message = str(caught.value)
    assert message.startswith("before_snapshot hook `echo cannot enable maintenance >&2; "
                              "exit 3` failed with exit code 3; its last output: cannot "
                              "enable maintenance. Fix the command under "
                              "[environments.dev.hooks]")
    a = p.last_activity()
    assert (a.state, a.result, a.error) == ("complete", "failure", message)
    assert p.snapshots() == ([], [])
    assert not (p.root / "second-ran").exists()
    assert not any(ln.startswith("Paused") for ln in p.log(a.id))
    assert not (p.root / "var" / ".maintenance.flag").exists()


def test_a_hook_that_times_out_is_killed_with_its_children_and_fails_the_backup(tmp_path):
    p = Project(tmp_path, 'before_snapshot = ["echo starting; sleep 600 & echo $! > child.pid; '
                          'wait"]\ntimeout = 0.5')
    with pytest.raises(HookError, match=r"^before_snapshot hook `echo starting; sleep 600 & "
                                        r"echo \$! > child.pid; wait` timed out after 0.5 s "
                                        r"and was killed; its last output: starting"):
        p.backup()
    a = p.last_activity()
    assert (a.state, a.result) == ("complete", "failure")
    assert "timed out after 0.5 s" in a.error and "before_snapshot hook" in a.error
    child = int((p.root / "child.pid").read_text())
    wait_for(lambda: gone(child), "the hook's background child to be gone", 30)
    assert p.snapshots() == ([], [])


def test_the_warn_policy_keeps_the_backup_successful_with_warnings(tmp_path):
    p = Project(tmp_path, 'before_snapshot = ["exit 3", "touch second-ran"]\n'
                          'after_snapshot = ["echo oops; exit 4"]\non_failure = "warn"')
    a = p.backup()
    assert (a.state, a.result) == ("complete", "success")
    assert a.warnings == ("before_snapshot hook `exit 3` failed with exit code 3; it printed "
                          "nothing",
                          "after_snapshot hook `echo oops; exit 4` failed with exit code 4; "
                          "its last output: oops")
    assert (p.root / "second-ran").exists()
    assert p.snapshots()[0] == [a.snapshot_id]
    lines = p.log(a.id)
    assert f"Warning: {a.warnings[0]}" in lines and f"Warning: {a.warnings[1]}" in lines


def test_a_failing_after_snapshot_hook_fails_the_activity_naming_the_snapshot_it_made(tmp_path):
    p = Project(tmp_path, "after_snapshot = ['echo \"$SNAPKEEP_SNAPSHOT_ID\" > taken-id; "
                          "exit 1']")
    with pytest.raises(HookError) as caught:
        p.backup(live=True)
    taken = (p.root / "taken-id").read_text().strip()
    assert str(caught.value).startswith(
        f"backup {taken} was created (it is listed and can be restored), but after_snapshot "
        f"hook `echo \"$SNAPKEEP_SNAPSHOT_ID\" > taken-id; exit 1` failed with exit code 1")
    a = p.last_activity()
    assert (a.result, a.snapshot_id) == ("failure", taken)
    assert p.snapshots() == ([taken], [taken])


def test_cancelling_the_activity_kills_a_long_hook(tmp_path):
    p = Project(tmp_path, "before_snapshot = ['echo $$ > hook.pid; sleep 600 & "
                          "echo $! > child.pid; wait']")
    other = p.context()
    t, out = in_thread(lambda: operations.start_backup(other, p.env, live=False))
    wait_for(lambda: (p.root / "child.pid").exists() and
             (p.root / "child.pid").read_text().strip(), "the hook to start", 60)
    a = p.last_activity()
    activities.cancel_activity(p.ctx, a.id)
    t.join(timeout=120)
    assert not t.is_alive()
    assert isinstance(out.get("error"), Cancelled), out
    for name in ("hook.pid", "child.pid"):
        pid = int((p.root / name).read_text())
        wait_for(lambda pid=pid: gone(pid), f"the hook's process {pid} to be gone", 30)
    a = p.ctx.catalog.get_activity(a.id)
    assert (a.state, a.result) == ("cancelled", "failure")
    lines = p.log(a.id)
    assert any(ln.startswith("Stopped the before_snapshot hook") for ln in lines), lines
    assert p.snapshots() == ([], [])


def test_a_hook_reaches_the_database_without_its_password_on_the_command_line(
        tmp_path, mariadb, fresh_db):
    p = project_of_db_user(tmp_path, mariadb, fresh_db, "hookuser", "h00k-pw")
    query = ('mariadb --defaults-extra-file="$SNAPKEEP_DB_DEFAULTS_FILE" -N '
             '-e "SELECT CONCAT(CURRENT_USER(), \' \', DATABASE())"')
    c = claims.claim(p.ctx, "dev", info.BACKUP, "hook test", {})

    def work(rec) -> None:
        hooks.run_commands(p.ctx, p.env, [query], rec, label="post-restore command",
                           timeout=60, on_failure="fail",
                           variables={"SNAPKEEP_SOURCE_ENVIRONMENT": "prod"})

    a = running.run(p.ctx, c, work)
    lines = p.log(a.id)
    assert a.result == "success", lines
    assert f"  > hookuser@% {fresh_db}" in lines
    assert not any("h00k-pw" in ln for ln in lines)
    assert "SNAPKEEP_DB_HOST" not in os.environ  # the variables are the command's only


CREDENTIALS = ("MYSQL_PWD", "PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "SNAPKEEP_DB_PASSWORD", "SNAPKEEP_PASSPHRASE",
               "SNAPKEEP_TOKEN", "SNAPKEEP_WEBHOOK_SECRET", "SNAPKEEP_CATALOG")


def test_hooks_get_no_credential_and_their_output_is_cleared_of_the_password(
        tmp_path, mariadb, fresh_db, monkeypatch):
    p = project_of_db_user(tmp_path, mariadb, fresh_db, "hookuser2", "s3cret-h00k-pw")
    for name in CREDENTIALS:  # as the server's environment may hold them
        monkeypatch.setenv(name, f"leaked-{name.lower()}")
    commands = [
        "env",
        'stat -c "mode %a" "$SNAPKEEP_DB_DEFAULTS_FILE"; '
        'echo "$SNAPKEEP_DB_DEFAULTS_FILE" > defaults-path',
        'mariadb --defaults-extra-file="$SNAPKEEP_DB_DEFAULTS_FILE" -N -e "SELECT 1+1"',
        # an application printing its configuration: the password from the option file
        'sed -n "s/^password=//p" "$SNAPKEEP_DB_DEFAULTS_FILE"',
        'echo "db password is $(sed -n "s/^password=//p" "$SNAPKEEP_DB_DEFAULTS_FILE")"; '
        "exit 3",
    ]
    c = claims.claim(p.ctx, "dev", info.BACKUP, "hook test", {})

    def work(rec) -> None:
        hooks.run_commands(p.ctx, p.env, commands, rec, label="post-restore command",
                           timeout=60, on_failure="warn")

    a = running.run(p.ctx, c, work)
    lines = p.log(a.id)
    assert a.result == "success", lines
    for name in CREDENTIALS:
        assert not any(ln.startswith(f"  > {name}=") for ln in lines), (name, lines)
    assert not any("leaked-" in ln for ln in lines), lines
    assert "  > mode 600" in lines
    assert "  > 2" in lines  # the option file reaches the database
    assert '  > "[redacted]"' in lines
    stored = p.ctx.catalog.get_activity(a.id)
    assert not any("s3cret-h00k-pw" in ln for ln in lines + list(stored.warnings)), lines
    assert any("db password is" in w and "[redacted]" in w for w in stored.warnings)
    assert not Path((p.root / "defaults-path").read_text().strip()).exists()


def test_the_error_of_a_failed_activity_is_cleared_of_the_password(tmp_path):
    # the command itself names the password; its failure message quotes the command
    p = Project(tmp_path, "", 'database = "mysql://u:pa55-w0rd-x@127.0.0.1:1/db"')
    c = claims.claim(p.ctx, "dev", info.BACKUP, "hook test", {})

    def work(rec) -> None:
        hooks.run_commands(p.ctx, p.env, ["exit 4 # pa55-w0rd-x"], rec,
                           label="post-restore command", timeout=60, on_failure="fail")

    with pytest.raises(HookError):
        running.run(p.ctx, c, work)
    a = p.ctx.catalog.get_activity(c.activity.id)
    assert a.result == "failure" and "exit code 4" in a.error and "[redacted]" in a.error
    assert not any("pa55-w0rd-x" in text for text in [a.error, *p.log(a.id)])
