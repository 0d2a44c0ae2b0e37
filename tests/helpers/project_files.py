"""A project file with environments only (no repository, no database), and a Context
over it: enough for the services that read config and the catalog (schedules, policy)."""

from __future__ import annotations

from pathlib import Path

from snapkeep.catalog import Clock, SystemClock
from snapkeep.config import load_config
from snapkeep.policy import Actor
from snapkeep.services.context import Context


def write_project(base: Path, plan: str, envs: dict[str, str], project_id: str = "p") -> Path:
    """snapkeep.toml with one environment per (name → type), each with the mount ``var``
    under ``app``; no repository needed."""
    lines = [f'[project]\nid = "{project_id}"\nplan = "{plan}"\n']
    for name, env_type in envs.items():
        lines.append(f'[environments.{name}]\ntype = "{env_type}"\nroot = "app"\n'
                     'mounts = ["var"]\n')
    path = base / "snapkeep.toml"
    path.write_text("\n".join(lines))
    return path


def context(path: Path, actor: Actor | None = None, clock: Clock | None = None) -> Context:
    """A Context over the project file at ``path``, acting as ``actor`` if given, reading
    the time from ``clock`` if given."""
    ctx = Context(load_config(str(path)), clock=clock or SystemClock())
    if actor is not None:
        ctx.actor = actor
    return ctx


def project_on_catalog(base: Path, project_id: str, catalog: str, clock: Clock) -> Context:
    """Project ``project_id`` in ``base`` on the catalog at ``catalog`` (a URL), with its
    repository and one small environment, ``staging``."""
    root = base / "staging"
    (root / "pub/media").mkdir(parents=True)
    (root / "pub/media/logo.png").write_bytes(project_id.encode() * 100)
    path = base / "snapkeep.toml"
    path.write_text(f'[project]\nid = "{project_id}"\nplan = "starter"\ncatalog = "{catalog}"\n'
                    '\n[repository]\nkey_file = ".snapkeep/repository.key"\n\n'
                    f'[environments.staging]\ntype = "staging"\nroot = "{root}"\n'
                    'mounts = ["pub/media"]\n')
    ctx = Context(load_config(str(path)), clock=clock)
    ctx.init_repository()
    return ctx
