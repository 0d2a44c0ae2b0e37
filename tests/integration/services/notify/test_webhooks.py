"""Webhook notifications of ended activities, to a real receiver on loopback: one signed
call per activity (success, failure, cancelled, interrupted), retried on a non-2xx
answer, given up as a warning on the activity after the attempts — never changing the
activity's result — and left in the outbox for ``snapkeep serve`` when it does not fit
in the ending process's budget."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.catalog import Activity
from snapkeep.config import load_config
from snapkeep.errors import HookError
from snapkeep.ids import new_id
from snapkeep.services.activities import info, operations
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities.lease import machine_id
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify
from tests.helpers.server import wait_for
from tests.helpers.webhook import SECRET, Receiver, notifications_toml


class Project:
    """Environments ``dev`` (fine) and ``bad`` (its before_snapshot hook fails), notifying
    ``receiver``."""

    def __init__(self, base: Path, receiver: Receiver, **webhook: float) -> None:
        for env in ("dev", "bad"):
            (base / env / "data").mkdir(parents=True)
            (base / env / "data" / "f.txt").write_text(f"{env}\n")
        (base / "webhook.secret").write_text(SECRET + "\n")
        self.config = base / "snapkeep.toml"
        self.config.write_text(
            '[project]\nid = "wh"\n[repository]\nkey_file = ".snapkeep/repository.key"\n'
            '[environments.dev]\nroot = "dev"\nmounts = ["data"]\n'
            '[environments.bad]\nroot = "bad"\nmounts = ["data"]\n'
            '[environments.bad.hooks]\nbefore_snapshot = ["echo no; exit 2"]\n'
            + notifications_toml(receiver.url, **webhook))
        self.ctx = Context(load_config(str(self.config)))
        self.ctx.init_repository()

    def backup(self, env: str = "dev", **kw) -> Activity:
        return operations.start_backup(self.ctx, self.ctx.config.environment(env), live=True,
                                       **kw)

    def notification_of(self, activity_id: str):
        from sqlalchemy import select

        from snapkeep.catalog import Notification

        with self.ctx.catalog.session() as s:
            return s.scalars(select(Notification)
                             .where(Notification.activity_id == activity_id)).one()


@pytest.fixture(autouse=True)
def _no_secret_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("SNAPKEEP_WEBHOOK_SECRET", raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def shown(receiver: Receiver) -> str:
    """How the receiver's URL appears in warnings and logs: scheme and host, no path."""
    return receiver.url.split("/hook", 1)[0] + "/…"


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_every_ended_activity_gets_one_signed_call(tmp_path, receiver):
    p = Project(tmp_path, receiver)
    ok = p.backup()
    with pytest.raises(HookError):
        p.backup("bad")
    failed = p.ctx.catalog.list_activities("bad", limit=1)[0]
    queued = p.backup(queue=True)
    cancelled = activities.cancel_activity(p.ctx, queued.id)
    # what a killed process leaves: an activity in progress whose runner is gone
    lost = Activity(id=new_id(), environment="dev", type=info.BACKUP, state="pending",
                    result=None, description="a killed backup", created_at=p.ctx.clock(),
                    completion_percent=0, parameters={})
    assert p.ctx.catalog.start(lost, f"{machine_id(p.ctx)}:{dead_pid()}:0", 60) is None
    activities.list_activities(p.ctx, None)  # notices it, as any listing does

    calls = {c.payload["activity"]["id"]: c for c in receiver.calls}
    assert len(receiver.calls) == len(calls) == 4
    assert set(calls) == {ok.id, failed.id, cancelled.id, lost.id}
    for c in receiver.calls:
        assert c.signed_with(SECRET), c.headers
        assert not c.signed_with(SECRET + "x")
        assert c.headers["content-type"] == "application/json"
        assert c.headers["x-snapkeep-delivery"] == c.payload["delivery"]
        assert c.payload["event"] == "activity.completed" and c.payload["project"] == "wh"
        assert p.notification_of(c.payload["activity"]["id"]).state == "delivered"

    body = calls[ok.id].payload
    assert (body["environment"], body["result"], body["snapshot_id"]) == \
        ("dev", "success", ok.snapshot_id)
    assert body["activity"] | {"created_at": None, "started_at": None,
                               "completed_at": None} == {
        "id": ok.id, "type": "environment.backup", "state": "complete", "result": "success",
        "description": ok.description, "created_at": None, "started_at": None,
        "completed_at": None, "error": None, "warnings": []}
    assert body["activity"]["completed_at"] == ok.completed_at.isoformat()

    body = calls[failed.id].payload
    assert (body["environment"], body["result"], body["snapshot_id"]) == ("bad", "failure", None)
    assert body["activity"]["error"].startswith("before_snapshot hook `echo no; exit 2` failed")
    body = calls[cancelled.id].payload["activity"]
    assert (body["state"], body["result"]) == ("cancelled", "failure")
    body = calls[lost.id].payload["activity"]
    assert (body["state"], body["result"], body["error"]) == \
        ("complete", "failure", "interrupted: the process running it ended")


def test_a_receiver_answering_500_once_gets_the_call_again_and_the_backup_stands(tmp_path):
    with Receiver(answers=[500]) as receiver:
        p = Project(tmp_path, receiver)
        a = p.backup()
    assert (a.state, a.result, a.warnings) == ("complete", "success", ())
    first, second = receiver.calls
    assert first.body == second.body
    assert first.headers["x-snapkeep-delivery"] == second.headers["x-snapkeep-delivery"]
    assert first.signed_with(SECRET) and second.signed_with(SECRET)
    n = p.notification_of(a.id)
    assert (n.state, n.attempts, n.last_error) == ("delivered", 2, None)


def test_a_receiver_that_never_answers_2xx_becomes_a_warning_after_the_attempts(tmp_path):
    with Receiver(default=503) as receiver:
        p = Project(tmp_path, receiver, attempts=2)
        a = p.backup()
    assert len(receiver.calls) == 2
    a = p.ctx.catalog.get_activity(a.id)
    warning = (f"the webhook notification to {shown(receiver)} was not delivered after 2 "
               "attempt(s): HTTP 503 Service Unavailable")
    assert (a.state, a.result, a.warnings) == ("complete", "success", [warning])
    assert f"Warning: {warning}" in [ln.message for ln in p.ctx.catalog.log_lines(a.id)]
    n = p.notification_of(a.id)
    assert (n.state, n.attempts) == ("failed", 2)


def test_a_receiver_that_does_not_answer_in_time_is_given_up_on(tmp_path):
    with Receiver() as receiver:
        receiver.hold()
        p = Project(tmp_path, receiver, attempts=1, timeout=0.5)
        a = p.backup()
    a = p.ctx.catalog.get_activity(a.id)
    assert a.result == "success"
    assert a.warnings == [f"the webhook notification to {shown(receiver)} was not delivered "
                          "after 1 attempt(s): no answer within 0.5 s"]


def test_a_failed_activity_stays_failed_however_its_webhook_fares(tmp_path):
    with Receiver(default=500) as receiver:
        p = Project(tmp_path, receiver, attempts=1)
        with pytest.raises(HookError):
            p.backup("bad")
    a = p.ctx.catalog.list_activities("bad", limit=1)[0]
    assert (a.state, a.result) == ("complete", "failure")
    assert a.error.startswith("before_snapshot hook")
    assert len(a.warnings) == 1 and "was not delivered after 1 attempt(s)" in a.warnings[0]


def test_what_does_not_fit_in_the_budget_is_left_for_the_server_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(notify, "END_BUDGET", 2.5)  # room for two attempts (1 s apart)
    with Receiver(answers=[500, 500]) as receiver:
        p = Project(tmp_path, receiver, attempts=10)
        a = p.backup()
        assert len(receiver.calls) == 2
        n = p.notification_of(a.id)
        assert (n.state, n.attempts, n.last_error) == ("pending", 2,
                                                       "HTTP 500 Internal Server Error")
        # what `snapkeep serve` does every second
        wait_for(lambda: notify.deliver_due(p.ctx) and
                 p.notification_of(a.id).state == "delivered",
                 "the due notification to be delivered", 60, interval=0.2)
    assert len(receiver.calls) == 3
    assert len({c.headers["x-snapkeep-delivery"] for c in receiver.calls}) == 1
    assert p.ctx.catalog.get_activity(a.id).warnings is None


def test_without_a_webhook_nothing_is_queued(tmp_path):
    (tmp_path / "dev" / "data").mkdir(parents=True)
    config = tmp_path / "snapkeep.toml"
    config.write_text('[project]\nid = "wh"\n[repository]\nkey_file = "k.key"\n'
                      '[environments.dev]\nroot = "dev"\nmounts = ["data"]\n')
    ctx = Context(load_config(str(config)))
    ctx.init_repository()
    operations.start_backup(ctx, ctx.config.environment("dev"), live=True)
    assert ctx.catalog.notification_counts() == {"pending": 0, "delivered": 0, "failed": 0}


def test_a_secret_in_the_webhook_path_or_query_never_appears_in_warnings_or_logs(tmp_path,
                                                                                 caplog):
    with Receiver(default=404) as receiver:
        receiver.url += "/T0/B1/PATHSECRET?token=QUERYSECRET"
        p = Project(tmp_path, receiver, attempts=1)
        with caplog.at_level("DEBUG"):
            a = p.backup()
    assert receiver.calls[0].path == "/hook/T0/B1/PATHSECRET?token=QUERYSECRET"
    a = p.ctx.catalog.get_activity(a.id)
    assert a.warnings == [f"the webhook notification to {shown(receiver)} was not delivered "
                          "after 1 attempt(s): HTTP 404 Not Found"]
    shown_anywhere = [*a.warnings, *(ln.message for ln in p.ctx.catalog.log_lines(a.id)),
                      p.notification_of(a.id).last_error, caplog.text]
    assert not [t for t in shown_anywhere if "SECRET" in t]


def test_an_error_quoting_the_webhook_url_is_redacted_too(tmp_path, monkeypatch):
    with Receiver() as receiver:
        receiver.url += "/PATHSECRET"
        p = Project(tmp_path, receiver, attempts=1)
        url = p.ctx.config.webhook.url
        # what an HTTP library's error may say (httpx quotes the URL in some of them)
        monkeypatch.setattr(notify, "_send", lambda cfg, n, t, at: f"bad answer from {url!r}")
        a = p.backup()
    a = p.ctx.catalog.get_activity(a.id)
    assert a.warnings == [f"the webhook notification to {shown(receiver)} was not delivered "
                          f"after 1 attempt(s): bad answer from '{shown(receiver)}'"]
