"""What a restore puts back: everything, or the parts named by ``--only``, ``--mount`` and
``--table``, checked against the snapshot before anything starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql
from snapkeep.errors import ConfigError, NotFoundError, UsageError
from snapkeep.repository import SnapshotManifest

ONLY = ("database", "mounts")


def _mount_name(value: str) -> str:
    p = PurePosixPath(value.strip().strip("/"))
    if not str(p) or str(p) == "." or ".." in p.parts:
        raise UsageError(f"--mount {value!r} must name a mount such as pub/media")
    return str(p)


@dataclass(frozen=True)
class RestoreScope:
    database: bool = True
    mounts: tuple[str, ...] | None = None  # None: every mount the snapshot holds
    tables: tuple[str, ...] | None = None  # None: the whole database

    @classmethod
    def parse(cls, only: str | None = None, mounts: Sequence[str] = (),
              tables: Sequence[str] = ()) -> RestoreScope:
        """From ``--only database|mounts``, ``--mount M`` (repeatable), ``--table T``
        (repeatable). With none of them, everything; with any, only what they name."""
        if only is not None and only not in ONLY:
            raise UsageError(f"--only {only!r}: use --only database or --only mounts")
        picked = tuple(dict.fromkeys(_mount_name(m) for m in mounts)) or None
        named = tuple(dict.fromkeys(t for t in tables if t)) or None
        if only == "database" and picked:
            raise UsageError("--only database restores no mounts; drop --mount, or drop "
                             "--only to restore the database and those mounts")
        if only == "mounts" and named:
            raise UsageError("--only mounts restores no tables; drop --table, or drop --only "
                             "to restore those tables and the mounts")
        if only == "database":
            return cls(database=True, mounts=(), tables=named)
        if only == "mounts":
            return cls(database=False, mounts=picked, tables=None)
        if picked or named:
            return cls(database=bool(named), mounts=picked or (), tables=named)
        return cls()

    @property
    def is_full(self) -> bool:
        return self.database and self.mounts is None and self.tables is None

    def to_params(self) -> dict[str, Any]:
        return {"database": self.database,
                "mounts": list(self.mounts) if self.mounts is not None else None,
                "tables": list(self.tables) if self.tables is not None else None}

    def to_options(self) -> dict[str, Any]:
        """The ``only``/``mounts``/``tables`` options that ``parse`` turns back into this
        scope (the API's restore request)."""
        if self.is_full:
            return {}
        out: dict[str, Any] = {}
        if not self.database:
            out["only"] = "mounts"
        elif self.mounts == ():
            out["only"] = "database"
        if self.mounts:
            out["mounts"] = list(self.mounts)
        if self.tables is not None:
            out["tables"] = list(self.tables)
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> RestoreScope:
        if not params:
            return cls()
        mounts, tables = params.get("mounts"), params.get("tables")
        return cls(database=bool(params.get("database", True)),
                   mounts=tuple(mounts) if mounts is not None else None,
                   tables=tuple(tables) if tables is not None else None)

    def mounts_of(self, manifest: SnapshotManifest) -> list[str]:
        """The snapshot's mounts this restore replaces."""
        return list(manifest.mounts) if self.mounts is None else list(self.mounts)

    def restores_database(self, manifest: SnapshotManifest) -> bool:
        return self.database and "database" in manifest.services

    def describe(self, manifest: SnapshotManifest) -> str:
        """What is replaced, for confirmations and logs."""
        return self.summary("database" in manifest.services, list(manifest.mounts))

    def summary(self, has_database: bool, snapshot_mounts: list[str]) -> str:
        """``describe`` from what a snapshot holds: "the database and mounts var, media"."""
        parts = []
        if self.database and has_database:
            parts.append("the database" if self.tables is None else
                         f"table{'s' if len(self.tables) > 1 else ''} "
                         + ", ".join(self.tables) + " of the database")
        mounts = list(snapshot_mounts) if self.mounts is None else list(self.mounts)
        if mounts:
            parts.append(f"mount{'s' if len(mounts) > 1 else ''} {', '.join(mounts)}")
        return " and ".join(parts) or "nothing"

    def check(self, manifest: SnapshotManifest, target: EnvironmentConfig) -> None:
        """Refuse, before an activity starts, what the snapshot or ``target`` cannot do."""
        has_db = "database" in manifest.services
        explicit_db = self.database and (self.tables is not None or self.mounts == ())
        if explicit_db and not has_db:
            raise UsageError(f"snapshot {manifest.id} holds no database; restore its mounts "
                             "(--only mounts)")
        for m in self.mounts or ():
            if m not in manifest.mounts:
                raise NotFoundError(
                    f"snapshot {manifest.id} has no mount {m}; it holds "
                    f"{', '.join(manifest.mounts) or 'no mounts'}")
        if self.tables is not None:
            known = mysql.table_names(manifest.services["database"])
            missing = [t for t in self.tables if t not in known]
            if missing:
                raise NotFoundError(
                    f"snapshot {manifest.id} has no table {', '.join(missing)} in its "
                    f"database; see `snapkeep snapshot:get {manifest.id}` for its tables")
        if self.restores_database(manifest) and target.database is None:
            raise ConfigError(f"snapshot {manifest.id} holds a database but environment "
                              f"{target.name} has no `database` configured; add it to "
                              "snapkeep.toml, or restore only the mounts (--only mounts)")
        if manifest.environment != target.name:
            missing_mounts = [m for m in self.mounts_of(manifest) if m not in target.mounts]
            if missing_mounts:
                raise ConfigError(
                    f"environment {target.name} has no mount {', '.join(missing_mounts)} "
                    f"(it has {', '.join(target.mounts) or 'none'}); add it to `mounts` in "
                    "snapkeep.toml, or pick the mounts to restore with --mount")
        if not self.restores_database(manifest) and not self.mounts_of(manifest):
            raise UsageError(f"nothing to restore: snapshot {manifest.id} holds none of what "
                             "was asked for")
