"""The repository's master key: status, export for safekeeping, passphrases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapkeep.errors import UsageError
from snapkeep.services.context import Context
from snapkeep.services.snapshots.integrity import require_project_admin


def status(ctx: Context) -> dict[str, Any]:
    return ctx.repository.key_status()


def export(ctx: Context) -> str:
    """The master key as one line of text: with it alone the repository can be opened."""
    require_project_admin(ctx)
    return ctx.repository.export_key()


def set_passphrase(ctx: Context, old: str | None, new: str) -> str:
    """Add a passphrase slot, or change an existing passphrase (``old`` required then)."""
    require_project_admin(ctx)
    if len(new) < 8:
        raise UsageError("the new passphrase is too short: use at least 8 characters")
    repo = ctx.repository
    has_passphrase = any(s.get("kind") == "passphrase"
                         for s in repo.key_status().get("slots", []))
    if has_passphrase:
        if not old:
            raise UsageError("the repository already has a passphrase: give the current one "
                             "(SNAPKEEP_PASSPHRASE or the prompt) to change it")
        return repo.change_passphrase(old, new)
    return repo.add_passphrase(new)


def write_key_file(ctx: Context, path: Path) -> Path:
    require_project_admin(ctx)
    return ctx.repository.write_key_file(path)
