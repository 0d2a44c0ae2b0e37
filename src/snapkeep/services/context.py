"""Everything a use case needs about where it runs: config, catalog, repository, who asks,
and the clock it reads the time from."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from snapkeep.catalog import Catalog, Clock, SystemClock
from snapkeep.config import ProjectConfig, load_config
from snapkeep.errors import ConfigError
from snapkeep.policy import Actor, local_operator
from snapkeep.repository import Repository
from snapkeep.storage import Backend, open_backend


def passphrase_from_environment() -> str | None:
    """``SNAPKEEP_PASSPHRASE``, or the first line of the file ``SNAPKEEP_PASSPHRASE_FILE``."""
    if os.environ.get("SNAPKEEP_PASSPHRASE"):
        return os.environ["SNAPKEEP_PASSPHRASE"]
    path = os.environ.get("SNAPKEEP_PASSPHRASE_FILE")
    if path:
        try:
            return Path(path).read_text().splitlines()[0]
        except (OSError, IndexError):
            raise ConfigError(f"cannot read a passphrase from SNAPKEEP_PASSPHRASE_FILE={path}") \
                from None
    return None


@dataclass
class Context:
    """Config, catalog, repository, actor and clock of one use case.

    The catalog and the repository open on first use. A repository serves one thread at
    a time: a thread that works beside others takes ``with_own_repository()``; copies made
    by ``for_actor`` share what this one has opened (the catalog is thread-safe).
    """

    config: ProjectConfig
    actor: Actor = field(default_factory=local_operator)
    # Asked for the repository passphrase when no key file is configured and the
    # environment has none (the CLI prompts on a terminal).
    ask_passphrase: Callable[[], str] | None = None
    # The wall clock of every service and of the catalog this context opens.
    clock: Clock = field(default_factory=SystemClock)
    # ``[replicas.NAME]`` this context reads snapshots from instead of the project's
    # repository (``--from NAME``); None: the project's own (the primary)
    replica: str | None = None
    _catalog: Catalog | None = field(default=None, init=False, repr=False, compare=False)
    _repository: Repository | None = field(default=None, init=False, repr=False,
                                           compare=False)
    # the repositories (None: the primary; else replicas) this context and those
    # ``in_replica`` derived from it opened: each once per command (they serve this thread)
    _opened: dict[str | None, Repository] = field(default_factory=dict, init=False,
                                                  repr=False, compare=False)

    @classmethod
    def load(cls, config_path: str | None = None, project: str | None = None,
             cwd: Path | None = None) -> Context:
        config = load_config(config_path, cwd)
        if project is not None and project != config.id:
            raise ConfigError(f"project {project!r} does not match this directory's project "
                              f"{config.id!r} ({config.path}); change directory or drop -p")
        return cls(config)

    def for_actor(self, actor: Actor) -> Context:
        """This context acting as ``actor`` (a server's request): the same config and the
        catalog/repository this one already opened, shared rather than opened again. Open
        them here first (touch ``catalog``/``repository``) or each copy opens its own."""
        other = copy.copy(self)
        other.actor = actor
        other._opened = {}  # replicas are opened per copy (another thread may use it)
        return other

    def with_own_repository(self) -> Context:
        """This context for another thread: the same config, actor, clock and catalog
        (opened here if it was not: it is thread-safe), and a repository of its own, opened
        on first use (a repository serves one thread)."""
        self.catalog  # noqa: B018 - opened before the copy, so that the copy shares it
        other = copy.copy(self)
        other._repository = None
        other._opened = {}
        return other

    def in_replica(self, name: str | None) -> Context:
        """This context reading snapshots from replica ``name`` (None: the primary): its
        ``repository`` is then the replica's, and listings come from its manifests."""
        if name is not None:
            self.config.replica(name)  # ConfigError for an unknown name
        other = copy.copy(self)  # shares ``_opened``: a repository opens once per command
        other.replica = name
        other._repository = self._repository if name == self.replica else \
            self._opened.get(name)
        return other

    def with_catalog(self, catalog: Catalog) -> Context:
        """This context on an already opened ``catalog`` (tests that make their own)."""
        other = copy.copy(self)
        other._catalog = catalog
        return other

    @property
    def catalog(self) -> Catalog:
        """The configured catalog: PostgreSQL when ``catalog``/SNAPKEEP_CATALOG names one,
        else the SQLite file in ``.snapkeep/``; it reads time from this context's clock and
        serves this config's project (``[project] id``): rows of other projects sharing
        the database are neither seen nor touched."""
        if self._catalog is None:
            if self.config.catalog_url:
                self._catalog = Catalog.from_url(self.config.catalog_url, clock=self.clock,
                                                 project=self.config.id)
            else:
                self._catalog = Catalog.at(self.config.state_dir, clock=self.clock,
                                           project=self.config.id)
        return self._catalog

    @property
    def repository(self) -> Repository:
        if self._repository is None:
            self._repository = self._opened.get(self.replica)
        if self._repository is None and self.replica is not None:
            self._repository = self.open_replica(self.replica)
        if self._repository is None:
            key_file = self.config.key_file
            passphrase = None if key_file else self._passphrase()
            self._repository = Repository.open(self._backend(), key_file=key_file,
                                               passphrase=passphrase)
        self._opened.setdefault(self.replica, self._repository)
        return self._repository

    def _passphrase(self) -> str:
        passphrase = passphrase_from_environment()
        if passphrase is None and self.ask_passphrase is not None:
            passphrase = self.ask_passphrase()
        if not passphrase:
            raise ConfigError(
                "the repository is protected by a passphrase: set SNAPKEEP_PASSPHRASE (or "
                "SNAPKEEP_PASSPHRASE_FILE), or set `key_file` under [repository] in "
                f"{self.config.path}")
        return passphrase

    def replica_backend(self, name: str) -> Backend:
        r = self.config.replica(name)
        return open_backend(r.location, r.options)

    def replica_passphrase(self, name: str) -> str:
        passphrase = os.environ.get("SNAPKEEP_REPLICA_PASSPHRASE")
        if not passphrase:
            raise ConfigError(
                f"replica {name} is protected by a passphrase: set SNAPKEEP_REPLICA_PASSPHRASE, "
                f"or give [replicas.{name}] a `key_file` in {self.config.path}")
        return passphrase

    def open_replica(self, name: str) -> Repository:
        """Replica ``name``'s repository, unlocked with its own key."""
        r = self.config.replica(name)
        passphrase = None if r.key_file else self.replica_passphrase(name)
        return Repository.open(self.replica_backend(name), key_file=r.key_file,
                               passphrase=passphrase)

    def init_repository(self) -> Repository:
        """Create the repository (or open it if it exists) with this project's key setup."""
        backend = self._backend()
        key_file = self.config.key_file
        if backend.exists("config"):
            return self.repository
        passphrase = None if key_file else self._passphrase()
        self._repository = Repository.init(backend, key_file=key_file, passphrase=passphrase)
        self._opened[None] = self._repository
        return self._repository

    def _backend(self) -> Backend:
        return open_backend(self.config.repository, self.config.repository_options)

    def state_path(self, *parts: str) -> Path:
        # each part is one file name: whatever it came from, nothing escapes .snapkeep/
        for part in parts:
            if part in ("", ".", "..") or any(c in part for c in "/\\\0"):
                raise ConfigError(f"{part!r} cannot name a file under {self.config.state_dir}")
        p = self.config.state_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
