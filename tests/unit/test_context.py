"""Context: what its copies share (config, clock, catalog) and what each thread owns (its
repository)."""

from __future__ import annotations

from pathlib import Path

from snapkeep.config import load_config
from snapkeep.policy import Actor
from snapkeep.services.context import Context
from tests.helpers.clock import ManualClock


def project(base: Path, clock: ManualClock) -> Context:
    path = base / "snapkeep.toml"
    path.write_text('[project]\nid = "p"\nplan = "starter"\n\n[repository]\n'
                    'key_file = ".snapkeep/repository.key"\n\n'
                    '[environments.dev]\ntype = "development"\nroot = "app"\nmounts = ["var"]\n')
    ctx = Context(load_config(str(path)), clock=clock)
    ctx.init_repository()
    return ctx


def test_a_copy_for_another_thread_opens_its_own_repository_and_shares_the_rest(
        tmp_path, clock):
    ctx = project(tmp_path, clock)
    own = ctx.with_own_repository()
    assert own.repository is not ctx.repository
    assert own.repository is own.repository  # opened once, then kept
    assert (own.config, own.actor, own.clock, own.catalog) == (ctx.config, ctx.actor, clock,
                                                               ctx.catalog)
    assert ctx.catalog.clock is clock


def test_a_copy_for_another_actor_shares_what_is_open(tmp_path, clock):
    ctx = project(tmp_path, clock)  # its repository is open (init_repository)
    ctx.catalog  # noqa: B018 - open it too
    ann = ctx.for_actor(Actor("ann", project_role="admin"))
    assert (ann.repository, ann.catalog) == (ctx.repository, ctx.catalog)
    assert ann.actor.name == "ann" and ctx.actor.name != "ann"


def test_a_given_catalog_is_used_as_it_is(tmp_path, clock):
    ctx = project(tmp_path, clock)
    other = Context(ctx.config).with_catalog(ctx.catalog)
    assert other.catalog is ctx.catalog
