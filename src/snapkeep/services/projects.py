"""Several projects in one process (#19): a server or worker that serves many configs.

Every config must name the same catalog (``[project] catalog`` / SNAPKEEP_CATALOG): users
and tokens are shared through it, and each project sees its own rows (catalog/catalog.py).
The catalog is opened once; each project's Context uses its view of it
(``Catalog.for_project``), so fifty projects cost one connection pool, not fifty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from snapkeep.config import CONFIG_NAME, load_config
from snapkeep.errors import ConfigError
from snapkeep.policy import Actor
from snapkeep.services.context import Context
from snapkeep.services.identity import auth


def config_paths(given: Sequence[str]) -> list[str]:
    """The config files ``given`` names: each a snapkeep.toml, or a directory holding
    them (``DIR/*.toml`` and ``DIR/*/snapkeep.toml``, in name order)."""
    found: list[str] = []
    for entry in given:
        p = Path(entry)
        if p.is_dir():
            inside = sorted({*p.glob("*.toml"), *p.glob(f"*/{CONFIG_NAME}")})
            if not inside:
                raise ConfigError(f"{p} holds no project configs (*.toml or "
                                  f"*/{CONFIG_NAME}); give --config a snapkeep.toml or a "
                                  "directory of them")
            found += [str(f) for f in inside]
        else:
            found.append(entry)
    return found


def load_projects(paths: Sequence[str]) -> list[Context]:
    """A Context per config in ``paths`` (see ``config_paths``), all on one catalog."""
    configs = [load_config(p) for p in config_paths(paths)]
    return on_one_catalog([Context(c) for c in configs])


def on_one_catalog(contexts: list[Context]) -> list[Context]:
    """``contexts`` sharing the first one's catalog, each as its own project. Refused:
    two configs of one project id, or configs naming different catalogs."""
    if len(contexts) < 2:
        return contexts
    first = contexts[0].config
    seen: dict[str, Path] = {}
    for ctx in contexts:
        c = ctx.config
        if c.id in seen:
            raise ConfigError(f"{seen[c.id]} and {c.path} are both project {c.id!r}: each "
                              "served project needs an `id` of its own")
        seen[c.id] = c.path
        if not c.catalog_url or c.catalog_url != first.catalog_url:
            raise ConfigError(
                f"{c.path} uses the catalog {c.catalog_description}, {first.path} "
                f"{first.catalog_description}: projects served together share one catalog; "
                "set the same `catalog` (a postgresql:// URL) in each, or SNAPKEEP_CATALOG")
    shared = contexts[0].catalog
    return [contexts[0]] + [ctx.with_catalog(shared.for_project(ctx.config.id))
                            for ctx in contexts[1:]]


def actor_in(ctx: Context, actor: Actor) -> Actor:
    """``actor`` (a signed-in user) with their roles in ``ctx``'s project; an actor
    without an email (the local operator, the scheduler) is returned as it is."""
    if not actor.email:
        return actor
    user = ctx.catalog.get_user(actor.email)
    if user is None:
        return Actor(name=actor.name, email=actor.email)
    return auth.actor_for_user(ctx, user)


def visible(ctx: Context, actor: Actor) -> set[str]:
    """The projects of ``ctx``'s catalog ``actor`` (a signed-in user) has a role in."""
    user = ctx.catalog.get_user(actor.email) if actor.email else None
    return ctx.catalog.user_projects(user.id) if user is not None else set()


def may_see(actor: Actor) -> bool:
    """Whether ``actor`` (as ``actor_in`` made it for a project) has any role there."""
    return actor.project_role is not None or bool(actor.environment_roles)


def environments_by_project(contexts: Sequence[Context],
                            names: Sequence[str]) -> dict[str, list[str] | None]:
    """Which environments of each project a worker serves, from its ``-e`` names: each
    ``PROJECT/ENV``, or ``ENV`` (that environment of every project that has it). No names:
    every project, all of it (None). A project none of the names is in is left out; a
    name no project has is refused (a typo would otherwise run nothing, silently)."""
    if not names:
        return {ctx.config.id: None for ctx in contexts}
    by_id = {ctx.config.id: ctx for ctx in contexts}
    chosen: dict[str, list[str]] = {}
    for name in names:
        pid, _, env = name.rpartition("/")
        if pid:
            if pid not in by_id:
                raise ConfigError(f"-e {name}: project {pid!r} is not served here (served: "
                                  f"{', '.join(by_id)})")
            by_id[pid].config.environment(env)  # ConfigError for an unknown one
            owners = [pid]
        else:
            owners = [pid for pid, ctx in by_id.items() if env in ctx.config.environments]
            if not owners:
                raise ConfigError(f"-e {env}: no served project ({', '.join(by_id)}) has an "
                                  "environment of that name; check the spelling, or name it "
                                  "as PROJECT/ENV")
        for owner in owners:
            if env not in chosen.setdefault(owner, []):
                chosen[owner].append(env)
    return {pid: chosen[pid] for pid in by_id if pid in chosen}
