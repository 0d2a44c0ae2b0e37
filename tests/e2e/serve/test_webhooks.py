"""``snapkeep serve`` and webhooks: its loop delivers the notifications other processes
left in the outbox (so retries survive the CLI that ended the activity), retrying a
receiver that failed, and its workers notify the activities they run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.services.activities import operations
from snapkeep.services.notify import webhooks as notify
from tests.helpers.server import Server, TeamProject, wait_activity, wait_for
from tests.helpers.webhook import SECRET, Receiver, notifications_toml

SHOP = TeamProject.SHOP
P = "/api/projects/team"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TeamProject]:
    p = TeamProject(tmp_path, None)
    p.release()
    yield p
    p.ctx.catalog.engine.dispose()


def test_the_server_delivers_what_was_left_in_the_outbox_and_notifies_its_own_work(
        project: TeamProject, tmp_path: Path):
    # An activity ended by a process that could not deliver its notification: it is in
    # the outbox, due (this test's Context has no webhook configured, so nothing was sent).
    ended = operations.start_backup(project.ctx, project.ctx.config.environment(SHOP),
                                    live=True)
    left = notify.queue_notification(project.ctx, ended.id)
    with Receiver(answers=[500]) as receiver:
        (tmp_path / "webhook.secret").write_text(SECRET)
        with open(project.config, "a") as f:
            f.write("\n" + notifications_toml(receiver.url, attempts=3))
        server = Server(project.config, tmp_path, "--workers", "1", "--no-scheduler")
        try:
            wait_for(lambda: project.ctx.catalog.get_notification(left).state == "delivered",
                     "the server to deliver the notification left in the outbox", 60,
                     interval=0.2)
            first, second = receiver.calls
            assert first.body == second.body and second.signed_with(SECRET)
            assert second.payload["activity"]["id"] == ended.id
            assert project.ctx.catalog.get_notification(left).attempts == 2

            with server.http(project.tokens["project_admin"]) as admin:
                started = admin.post(f"{P}/environments/{SHOP}/backups",
                                     json={"safe": False}).json()
                done = wait_activity(admin, started)
            assert done["result"] == "success" and done["warnings"] == []
            wait_for(lambda: len(receiver.calls) == 3, "the worker's notification", 60)
            call = receiver.calls[2]
            assert call.signed_with(SECRET)
            assert (call.payload["activity"]["id"], call.payload["result"],
                    call.payload["snapshot_id"]) == (done["id"], "success",
                                                     done["snapshot_id"])
        finally:
            assert server.terminate() == 0, server.log()
    assert len(receiver.calls) == 3
