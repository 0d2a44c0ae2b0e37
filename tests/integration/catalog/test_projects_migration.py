"""Migration 0007 (#19) takes a one-project catalog along: the rows already there go to
the project whose config opens it first, and a second project on the same catalog starts
empty, its environment of the same name free and its rows apart."""

from __future__ import annotations

import sqlalchemy as sa

from snapkeep.catalog import Activity, Catalog
from snapkeep.catalog.catalog import sqlalchemy_url
from tests.helpers.catalog import url_at_revision
from tests.helpers.clock import T0
from tests.helpers.postgres import catalog_url  # noqa: F401 - fixture

OLD_ROWS = (
    "INSERT INTO snapshots (id, environment, created_at, live, automated, size_bytes, "
    "status) VALUES ('s1', 'dev', '2026-11-26 10:00:00', false, false, 5, 'complete')",
    "INSERT INTO environments (name, status, updated_at, running_activity) "
    "VALUES ('dev', 'active', '2026-11-26 10:00:00', 'a1')",
    "INSERT INTO activities (id, environment, type, state, description, created_at, "
    "completion_percent, parameters, cancel_requested, worker, lease_expires_at) VALUES "
    "('a1', 'dev', 'environment.backup', 'in_progress', 'd', '2026-11-26 10:00:00', 0, "
    "'{}', false, 'h:1', '2026-11-26 10:05:00')",
    "INSERT INTO users (email, display_name, project_role, created_at) "
    "VALUES ('ann@example.org', 'Ann', 'admin', '2026-11-26 10:00:00')",
    "INSERT INTO environment_roles (user_id, environment, role) "
    "SELECT id, 'dev', 'viewer' FROM users",
    "INSERT INTO schedules (id, environment, cron, live, origin, created_at, next_run_at) "
    "VALUES ('sch1', 'dev', '0 3 * * *', false, 'user', '2026-11-26 10:00:00', "
    "'2026-11-27 03:00:00')",
    "INSERT INTO notifications (id, activity_id, payload, attempts, next_attempt_at, state, "
    "created_at) VALUES ('n1', 'a1', '{}', 0, '2026-11-26 10:00:00', 'pending', "
    "'2026-11-26 10:00:00')",
)


def test_the_rows_of_a_one_project_catalog_go_to_the_project_that_opens_it(catalog_url):  # noqa: F811
    url_at_revision(catalog_url, "0006", *OLD_ROWS)
    shop = Catalog.from_url(catalog_url, project="shop")
    shop2 = shop.for_project("shop2")
    try:
        assert shop.snapshot_ids() == {"s1"}
        assert shop.running_activity("dev") == "a1"
        a1 = shop.get_activity("a1")
        assert a1 is not None and a1.project == "shop"
        assert [e.id for e in shop.expired_leases(T0.replace(year=2027))] == ["a1"]
        user = shop.get_user("ann@example.org")
        assert user is not None and user.project_role == "admin"
        assert shop.environment_roles(user.id) == {"dev": "viewer"}
        assert [s.id for s in shop.list_schedules()] == ["sch1"]
        assert shop.notification_counts()["pending"] == 1

        assert shop2.snapshot_ids() == set()
        assert shop2.running_activity("dev") is None
        assert shop2.get_activity("a1") is None
        assert shop2.expired_leases(T0.replace(year=2027)) == []
        other = shop2.get_user("ann@example.org")
        assert other is not None and other.project_role is None
        assert shop2.environment_roles(user.id) == {}
        assert shop2.list_schedules() == []
        assert shop2.notification_counts()["pending"] == 0
        assert shop2.get_notification("n1") is None

        # the same environment name and snapshot ID live side by side
        mine = Activity(id="b1", environment="dev", type="environment.backup",
                        description="d", created_at=T0)
        assert shop2.start(mine, "h:2", 600) is None
        assert shop2.running_activity("dev") == "b1"
        assert shop.running_activity("dev") == "a1"
        shop2.put_snapshot(shop.list_snapshots()[0])
        assert shop2.snapshot_ids() == {"s1"} == shop.snapshot_ids()
        shop2.delete_snapshot("s1")
        assert shop.snapshot_ids() == {"s1"} and shop2.snapshot_ids() == set()
    finally:
        shop.dispose()


def test_unique_keys_name_the_project(catalog_url):  # noqa: F811
    Catalog.from_url(catalog_url, project="shop").dispose()
    engine = sa.create_engine(sqlalchemy_url(catalog_url))
    try:
        inspector = sa.inspect(engine)
        for table, key in (("environments", ["project", "name"]),
                           ("snapshots", ["project", "id"]),
                           ("environment_roles", ["user_id", "project", "environment"]),
                           ("project_roles", ["user_id", "project"])):
            assert inspector.get_pk_constraint(table)["constrained_columns"] == key, table
        for table in ("activities", "schedules", "notifications"):
            assert "project" in {c["name"] for c in inspector.get_columns(table)}, table
    finally:
        engine.dispose()
