"""Two projects on one catalog (#19): ``shop`` and ``shop2``, each with an environment
called ``staging`` and a repository of its own, share one catalog database (a SQLite file,
then PostgreSQL). Neither sees, blocks nor deletes the other's rows: the bug was shop2's
``snapshot:list`` deleting every one of shop's snapshot rows (they had no manifest in
shop2's repository), and shop2's backup refused as busy because of shop's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from snapkeep.catalog import Activity
from snapkeep.errors import BusyError, PermissionDenied
from snapkeep.policy import local_operator
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth, users
from snapkeep.services.schedules import manage as schedules
from snapkeep.services.snapshots import listing
from tests.helpers.clock import ManualClock
from tests.helpers.postgres import catalog_url  # noqa: F401 - fixture
from tests.helpers.project_files import project_on_catalog as make_project

T0 = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)


@pytest.fixture
def projects(tmp_path, catalog_url):  # noqa: F811 - the fixture imported above
    clock = ManualClock(T0)
    shop = make_project(tmp_path / "shop", "shop", catalog_url, clock)
    shop2 = make_project(tmp_path / "shop2", "shop2", catalog_url, clock)
    yield shop, shop2
    for ctx in (shop, shop2):
        ctx.catalog.dispose()


def test_one_projects_listing_never_deletes_the_others_snapshot_rows(projects):
    shop, shop2 = projects
    env, env2 = shop.config.environment("staging"), shop2.config.environment("staging")
    taken = {operations.start_backup(shop, env, live=True).snapshot_id for _ in range(3)}
    assert {s.id for s in listing.list_snapshots(shop, env)} == taken

    # shop2's listing syncs with shop2's repository, which holds none of shop's manifests
    assert listing.list_snapshots(shop2, env2) == []
    assert {s.id for s in listing.list_snapshots(shop, env)} == taken
    assert shop.catalog.snapshot_ids() == taken

    mine = operations.start_backup(shop2, env2, live=True).snapshot_id
    assert [s.id for s in listing.list_snapshots(shop2, env2)] == [mine]
    assert {s.id for s in listing.list_snapshots(shop, env)} == taken
    # by ID too: another project's snapshot is not there
    assert shop2.catalog.get_snapshot(next(iter(taken))) is None
    shop2.catalog.delete_snapshot(next(iter(taken)))
    assert shop.catalog.snapshot_ids() == taken


def test_a_busy_environment_never_blocks_the_same_named_one_of_another_project(projects):
    shop, shop2 = projects
    env2 = shop2.config.environment("staging")
    running = Activity(id="shop-running", environment="staging", type="environment.backup",
                       description="d", created_at=T0)
    assert shop.catalog.start(running, "host-a", 600) is None
    assert shop.catalog.running_activity("staging") == "shop-running"
    assert shop2.catalog.running_activity("staging") is None

    done = operations.start_backup(shop2, env2, live=True)  # not refused as busy
    assert done.result == "success"
    with pytest.raises(BusyError):  # shop's own staging is busy
        operations.start_backup(shop, shop.config.environment("staging"), live=True)

    # a worker of shop2 neither claims nor reaps shop's activities
    pending = Activity(id="shop-pending", environment="other", type="environment.backup",
                       description="d", created_at=T0)
    assert shop.catalog.enqueue(pending) is None
    assert shop2.catalog.claim_next("host-b", 600) is None
    assert shop2.catalog.expired_leases(datetime(2100, 1, 1, tzinfo=UTC)) == []
    assert shop2.catalog.get_activity("shop-running") is None
    assert not shop2.catalog.finish("shop-running", None, state="complete", result="success")
    assert shop2.catalog.request_cancel("shop-running", "x", cancelled_log="c",
                                        requested_log="r") is None
    assert [a.id for a in shop2.catalog.list_activities()] == [done.id]
    assert {a.id for a in shop.catalog.list_activities()} == {"shop-running", "shop-pending"}
    claimed = shop.catalog.claim_next("host-a", 600)
    assert claimed is not None and claimed.id == "shop-pending"


def test_schedules_roles_and_statistics_are_per_project(projects):
    shop, shop2 = projects
    schedules.add_schedule(shop, shop.config.environment("staging"), "0 3 * * *")
    assert len(schedules.list_schedules(shop)) == 1
    assert schedules.list_schedules(shop2) == []
    assert shop2.catalog.due_schedules(datetime(2100, 1, 1, tzinfo=UTC)) == []
    assert len(shop.catalog.due_schedules(datetime(2100, 1, 1, tzinfo=UTC))) == 1

    # users are shared; roles are per project
    user = shop.catalog.add_user("Ann@Example.org", "Ann", project_role="admin")
    assert user is not None and user.project_role == "admin"
    shop.catalog.set_environment_role(user.id, "staging", "contributor")
    other = shop2.catalog.get_user("ann@example.org")
    assert other is not None and other.id == user.id and other.project_role is None
    assert shop2.catalog.environment_roles(user.id) == {}
    assert shop2.catalog.add_user("ann@example.org", "Ann again") is None
    shop2.catalog.set_project_role("ann@example.org", "viewer")
    assert shop.catalog.get_user("ann@example.org").project_role == "admin"
    assert shop2.catalog.get_user_by_id(user.id).project_role == "viewer"
    assert [u.project_role for u in shop2.catalog.list_users()] == ["viewer"]
    assert shop.catalog.environment_roles(user.id) == {"staging": "contributor"}

    operations.start_backup(shop, shop.config.environment("staging"), live=True)
    assert [env for env, *_ in shop.catalog.snapshot_totals()] == ["staging"]
    assert shop2.catalog.snapshot_totals() == []
    assert shop2.catalog.activity_counts() == []
    assert shop2.catalog.last_successes() == []


def test_a_project_view_shares_the_connections(projects):
    shop, _ = projects
    view = shop.catalog.for_project("shop2")
    assert view.project == "shop2" and shop.catalog.project == "shop"
    assert view._conn is shop.catalog._conn
    assert view.snapshot_ids() == set()
    assert shop.catalog.for_project("shop") is shop.catalog


def test_an_admin_of_one_project_cannot_take_over_a_user_of_another(projects):
    """Users are shared: a token, a password or removing someone acts on them in every
    project, so it needs an admin of every project they have a role in."""
    shop, shop2 = projects
    shop.actor = shop2.actor = local_operator()
    users.add_user(shop, "ann@example.org", "Ann", project_role="admin")
    users.add_user(shop, "carl@example.org", "Carl")
    users.set_environment_role(shop, "carl@example.org", "staging", "viewer")
    users.add_user(shop2, "bob@example.org", "Bob", project_role="admin")
    ann = auth.actor_for_user(shop, shop.catalog.get_user("ann@example.org"))
    as_ann = shop.for_actor(ann)
    for attempt in (lambda: auth.create_token(as_ann, "bob@example.org"),
                    lambda: users.set_password(as_ann, "bob@example.org", "a long new password"),
                    lambda: users.delete_user(as_ann, "bob@example.org")):
        with pytest.raises(PermissionDenied, match="also has a role in project 'shop2'"):
            attempt()
    assert auth.create_token(as_ann, "carl@example.org")[1]  # carl is shop's only
    users.set_project_role(shop2, "ann@example.org", "admin")
    as_ann = shop.for_actor(auth.actor_for_user(shop, shop.catalog.get_user("ann@example.org")))
    assert auth.create_token(as_ann, "bob@example.org")[1]  # admin of both now
