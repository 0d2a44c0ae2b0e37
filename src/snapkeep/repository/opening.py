"""Creating a repository's config and key material, and unlocking an existing one."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from pathlib import Path
from typing import Any, NamedTuple

from snapkeep.errors import NotFoundError, RepositoryError
from snapkeep.ids import new_id
from snapkeep.repository import chunks, crypto, keyslots, packs
from snapkeep.repository.crypto import Keys
from snapkeep.storage import Backend

log = logging.getLogger("snapkeep.repository")

REPO_VERSION = 2


class Opened(NamedTuple):
    """What a repository is opened with: its config, its keys, how they were had."""

    config: dict[str, Any]
    keys: Keys
    key_file: Path | None = None
    opened_with: str = ""  # "passphrase", "key file", "exported key" or ""


def create(backend: Backend, passphrase: str | None, key_file: Path | None, encrypt: bool,
           kdf_params: dict[str, int] | None, related: Opened | None = None) -> Opened:
    """Write the config and the key slots of a new repository.

    ``related`` (a replica's primary): the new repository gets its own master key, but
    names and cuts chunks as the primary does — its chunk-id key and chunker seed, sealed
    under the new master key in ``config`` — so a snapshot copies chunk by chunk and
    deduplicates against what the replica holds. Those two are one-way derivations of the
    primary's master key, which is never written (docs/repository-format.md, Replicas)."""
    repo_id = new_id()
    config: dict[str, Any] = {
        "version": REPO_VERSION, "id": repo_id,
        "chunker": {"algorithm": "fastcdc2020", "min": chunks.CDC_MIN,
                    "avg": chunks.CDC_AVG, "max": chunks.CDC_MAX, "nc": chunks.CDC_NC},
        "hash": "blake3-keyed", "compression": "zstd", "pack_target": packs.PACK_TARGET,
    }
    opened_with = "key file" if key_file else "passphrase" if passphrase else ""
    if not encrypt:
        id_key = secrets.token_bytes(32)
        config.update(cipher=crypto.CIPHER_NONE, kdf="none", id_key=id_key.hex())
        backend.put("config", json.dumps(config, indent=1, sort_keys=True).encode())
        return Opened(config, Keys.plaintext(id_key), key_file, opened_with)
    master = secrets.token_bytes(32)
    keys = Keys.from_master(master)
    config.update(cipher=crypto.CIPHER_AES, kdf="argon2id", key_check=keys.check_value(repo_id))
    if related is not None:
        config["chunker"] = dict(related.config["chunker"])
        secret = json.dumps({"id_key": related.keys.id_key.hex(),
                             "cdc_seed": related.keys.cdc_seed}).encode()
        config["chunk_keys"] = crypto.b64(keys.seal(secret, _chunk_keys_ad(repo_id)))
        config["replica_of"] = related.config["id"]
        keys = _with_chunk_keys(keys, config, backend)
    if key_file is not None:
        keyslots.write_key_file(key_file, crypto.key_text(master, repo_id))
    if passphrase is not None:
        keyslots.put_slot(backend, crypto.make_passphrase_slot(master, repo_id, passphrase,
                                                               kdf_params))
    if key_file is None and passphrase is None:
        keyslots.put_slot(backend, crypto.make_unprotected_slot(master))
        log.warning("repository at %s: the master key is stored unprotected; "
                    "add a passphrase or a key file", backend.describe())
    backend.put("config", json.dumps(config, indent=1, sort_keys=True).encode())
    return Opened(config, keys, key_file, opened_with)


def read_config(backend: Backend) -> dict[str, Any]:
    where = backend.describe()
    try:
        config = json.loads(backend.get("config"))
    except NotFoundError:
        raise RepositoryError(
            f"no snapkeep repository at {where}: run `snapkeep init` "
            "or fix `repository` in snapkeep.toml") from None
    except ValueError as e:
        raise RepositoryError(f"the repository config at {where} is damaged: {e}") from e
    if not isinstance(config, dict) or config.get("version") != REPO_VERSION:
        version = config.get("version") if isinstance(config, dict) else None
        raise RepositoryError(
            f"repository at {where} has format version {version}; "
            f"this snapkeep reads version {REPO_VERSION}")
    return config


def _chunk_keys_ad(repo_id: str) -> bytes:
    return b"snapkeep chunk keys " + repo_id.encode()


def _with_chunk_keys(keys: Keys, config: dict[str, Any], backend: Backend) -> Keys:
    """``keys`` naming and cutting chunks with a replica's inherited chunk keys."""
    if "chunk_keys" not in config:
        return keys
    try:
        doc = json.loads(keys.unseal(crypto.unb64(config["chunk_keys"]),
                                     _chunk_keys_ad(config["id"])))
        return dataclasses.replace(keys, id_key=bytes.fromhex(doc["id_key"]),
                                   cdc_seed=int(doc["cdc_seed"]))
    except (crypto.SealError, ValueError, KeyError, TypeError):
        raise RepositoryError(f"the chunk keys in the config of the repository at "
                              f"{backend.describe()} are damaged; restore `config` from a "
                              "copy") from None


def unlock(backend: Backend, config: dict[str, Any], passphrase: str | None,
           key_file: Path | None, key: str | None) -> Opened:
    """The keys of an existing repository, from whichever material was given."""
    o = _unlock(backend, config, passphrase, key_file, key)
    return o._replace(keys=_with_chunk_keys(o.keys, config, backend))


def _unlock(backend: Backend, config: dict[str, Any], passphrase: str | None,
            key_file: Path | None, key: str | None) -> Opened:
    if config.get("cipher") == crypto.CIPHER_NONE:
        return Opened(config, Keys.plaintext(bytes.fromhex(config["id_key"])))
    if key is not None:
        return _with_key_text(backend, config, key, "the exported key", key_file)
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as e:
            raise RepositoryError(f"cannot read the key file {key_file}: {e.strerror}") \
                from None
        return _with_key_text(backend, config, text, f"the key file {key_file}", key_file)
    return _with_slots(backend, config, passphrase)


def _with_key_text(backend: Backend, config: dict[str, Any], text: str, what: str,
                   key_file: Path | None) -> Opened:
    try:
        master, _rid = crypto.parse_key_text(text)
    except (ValueError, KeyError, TypeError):
        raise RepositoryError(f"{what} is not a snapkeep key") from None
    keys = Keys.from_master(master)
    if keys.check_value(config["id"]) != config.get("key_check"):
        raise RepositoryError(f"{what} is not the key of the repository at "
                              f"{backend.describe()}")
    return Opened(config, keys, key_file, "key file" if key_file else "exported key")


def _with_slots(backend: Backend, config: dict[str, Any], passphrase: str | None) -> Opened:
    repo_id = config["id"]
    slots = keyslots.read_slots(backend)
    for kind in ("passphrase", "unprotected") if passphrase is not None else ("unprotected",):
        for slot in slots.values():
            if slot.get("kind") != kind:
                continue
            master = crypto.open_slot(slot, repo_id, passphrase)
            if master is None:
                continue
            keys = Keys.from_master(master)
            if keys.check_value(repo_id) == config.get("key_check"):
                return Opened(config, keys, None,
                              "passphrase" if kind == "passphrase" else "")
    where = backend.describe()
    if passphrase is not None:
        raise RepositoryError(f"wrong passphrase for the repository at {where}")
    raise RepositoryError(f"the repository at {where} is encrypted: give its passphrase "
                          "or its key file")
