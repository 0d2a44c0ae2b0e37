"""Everything a use case needs about where it runs: config, catalog, repository, who asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from snapkeep.catalog import Catalog
from snapkeep.config import ProjectConfig, load_config
from snapkeep.errors import ConfigError
from snapkeep.policy import Actor, local_operator
from snapkeep.repository import Repository
from snapkeep.storage import open_backend


@dataclass
class Context:
    config: ProjectConfig
    actor: Actor = field(default_factory=local_operator)

    @classmethod
    def load(cls, config_path: str | None = None, project: str | None = None,
             cwd: Path | None = None) -> Context:
        config = load_config(config_path, cwd)
        if project is not None and project != config.id:
            raise ConfigError(f"project {project!r} does not match this directory's project "
                              f"{config.id!r} ({config.path}); change directory or drop -p")
        return cls(config)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.at(self.config.state_dir)

    @cached_property
    def repository(self) -> Repository:
        return Repository.open(self._backend())

    def init_repository(self) -> Repository:
        repo = Repository.init(self._backend())
        self.__dict__["repository"] = repo
        return repo

    def _backend(self):
        return open_backend(self.config.repository, self.config.repository_options)

    def state_path(self, *parts: str) -> Path:
        p = self.config.state_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
