"""Key slots in the repository (``keys/<id>``) and key files outside it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from snapkeep.errors import NotFoundError, RepositoryError
from snapkeep.repository import crypto
from snapkeep.repository.crypto import Keys
from snapkeep.storage import Backend


def read_slots(backend: Backend) -> dict[str, dict[str, Any]]:
    out = {}
    for key in backend.list("keys/"):
        try:
            slot = json.loads(backend.get(key))
        except (NotFoundError, ValueError):
            continue
        if isinstance(slot, dict):
            out[key.rsplit("/", 1)[-1]] = slot
    return out


def put_slot(backend: Backend, slot: dict[str, Any]) -> str:
    sid = secrets.token_hex(16)
    backend.put(f"keys/{sid}", json.dumps(slot, indent=1, sort_keys=True).encode())
    return sid


def write_key_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RepositoryError(f"cannot write the key file {path}: {e.strerror}") from e


class KeyManagement:
    """The master key's slots: status, export, passphrases. Mixed into ``Repository``."""

    backend: Backend
    config: dict[str, Any]
    keys: Keys
    key_file: Path | None
    opened_with: str


    def key_status(self) -> dict[str, Any]:
        slots = read_slots(self.backend)
        kinds = sorted({str(s.get("kind")) for s in slots.values()})
        encrypted = self.keys.cipher != crypto.CIPHER_NONE
        protected = encrypted and "unprotected" not in kinds
        return {"repository": self.config["id"], "cipher": self.keys.cipher,
                "kdf": self.config.get("kdf"), "encrypted": encrypted,
                "protected": protected,
                "slots": [{"id": sid, "kind": s.get("kind"), "kdf": s.get("kdf"),
                           "kdf_params": {k: v for k, v in (s.get("kdf_params") or {}).items()
                                          if k != "salt"}}
                          for sid, s in sorted(slots.items())],
                "key_file": str(self.key_file) if self.key_file else None,
                "opened_with": self.opened_with}

    def _master(self) -> bytes:
        if self.keys.master is None:
            raise RepositoryError(f"the repository at {self.backend.describe()} is not "
                                  "encrypted: it has no key")
        return self.keys.master

    def export_key(self) -> str:
        """The master key as text (the key-file format), for safekeeping offline."""
        return crypto.key_text(self._master(), self.config["id"])

    def write_key_file(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        write_key_file(p, self.export_key())
        return p

    def add_passphrase(self, new: str, *, kdf_params: dict[str, int] | None = None) -> str:
        """Add a passphrase slot; drops unprotected slots (they would defeat it)."""
        slot = crypto.make_passphrase_slot(self._master(), self.config["id"], new, kdf_params)
        sid = put_slot(self.backend, slot)
        for old_id, old in read_slots(self.backend).items():
            if old.get("kind") == "unprotected":
                self.backend.delete(f"keys/{old_id}")
        return sid

    def change_passphrase(self, old: str, new: str, *,
                          kdf_params: dict[str, int] | None = None) -> str:
        matching = [sid for sid, s in read_slots(self.backend).items()
                    if s.get("kind") == "passphrase"
                    and crypto.open_slot(s, self.config["id"], old) == self.keys.master]
        if not matching:
            raise RepositoryError(
                f"wrong passphrase for the repository at {self.backend.describe()}")
        sid = self.add_passphrase(new, kdf_params=kdf_params)  # the new slot first
        for old_id in matching:
            self.backend.delete(f"keys/{old_id}")
        return sid

    def remove_passphrase(self, passphrase: str) -> None:
        slots = read_slots(self.backend)
        matching = [sid for sid, s in slots.items() if s.get("kind") == "passphrase"
                    and crypto.open_slot(s, self.config["id"], passphrase) is not None]
        if not matching:
            raise RepositoryError(
                f"wrong passphrase for the repository at {self.backend.describe()}")
        for sid in matching:
            self.backend.delete(f"keys/{sid}")
