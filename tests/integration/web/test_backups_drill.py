"""The console's backups page shows each snapshot's restore-drill verdict."""

from __future__ import annotations

from snapkeep.services import replicas
from snapkeep.services.activities import operations
from tests.helpers.console import ENV, VIEWER, client, sign_in, snapshot


def row_of(html: str, sid: str) -> str:
    start = html.index(f'data-snapshot="{sid}"')
    return html[start:html.index("</tr>", start)]


def test_the_backups_page_badges_a_verified_backup_and_a_failed_drill(project):  # noqa: F811
    passed, failed, never = snapshot(project), snapshot(project), snapshot(project)
    ctx = project.context()
    a = operations.start_drill(ctx, ctx.config.environment(ENV), passed)
    assert a.result == "success"
    ctx.catalog.record_drill(failed, False, ctx.clock())
    c = client(project)
    sign_in(c, VIEWER)
    html = c.get(f"/environments/{ENV}").text
    assert ">Verified</span>" in row_of(html, passed)
    assert "Drill failed" not in row_of(html, passed)
    assert ">Drill failed</span>" in row_of(html, failed)
    assert "Verified" not in row_of(html, never) and "Drill failed" not in row_of(html, never)


def test_the_backups_page_shows_where_each_snapshot_is_stored(project, tmp_path):  # noqa: F811
    with open(project.config, "a") as f:
        f.write(f'\n[replicas.offsite]\nlocation = "{tmp_path / "offsite"}"\n')
    copied, primary_only = snapshot(project), snapshot(project)
    ctx = project.context()
    replicas.init_replica(ctx, "offsite")
    operations.start_copy(ctx, ctx.config.environment(ENV), "offsite", [copied])
    c = client(project)
    sign_in(c, VIEWER)
    html = c.get(f"/environments/{ENV}").text
    assert ">Stored in</th>" in html
    assert 'class="badge replica"' in row_of(html, copied) and ">offsite</span>" in \
        row_of(html, copied)
    assert "primary" in row_of(html, primary_only)
    assert "offsite" not in row_of(html, primary_only)
