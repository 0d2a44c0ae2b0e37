"""Keys and sealed objects.

A repository has one random 256-bit master key. Subkeys are derived from it with BLAKE3
in key-derivation mode (contexts below); nothing else ever uses the master key directly.

Every object except ``config`` and lock files is *sealed*: ``nonce (12) || ciphertext ||
tag (16)``, AES-256-GCM with a random nonce and associated data naming the object's kind
(and identity), so an object cannot be passed off as another. A repository created with
``encrypt=False`` uses cipher ``none``: the same layout with a zero nonce, the plaintext,
and as tag the first 16 bytes of BLAKE3(len(ad) as u32 LE || ad || plaintext).

See docs/repository-format.md for the byte layouts.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CIPHER_AES = "aes-256-gcm"
CIPHER_NONE = "none"
NONCE_LEN = 12
TAG_LEN = 16
OVERHEAD = NONCE_LEN + TAG_LEN

CTX_ENCRYPT = "snapkeep 2026 repository encryption key"
CTX_CHUNK_ID = "snapkeep 2026 chunk id key"
CTX_CDC_SEED = "snapkeep 2026 chunker seed"
CTX_CHECK = "snapkeep 2026 key check"

# Default Argon2id parameters for passphrase slots (memory in KiB).
ARGON2_DEFAULT = {"t": 3, "m": 65536, "p": 1}


class SealError(Exception):
    """A sealed object failed authentication (wrong key or damaged bytes)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def derive(master: bytes, context: str) -> bytes:
    return blake3.blake3(master, derive_key_context=context).digest()


@dataclass(frozen=True)
class Keys:
    """Everything derived from the master key that a repository needs at run time."""

    cipher: str
    master: bytes | None  # None for cipher "none"
    id_key: bytes
    cdc_seed: int
    _aead: AESGCM | None

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        seed = int.from_bytes(derive(master, CTX_CDC_SEED)[:8], "little") >> 2
        return cls(CIPHER_AES, master, derive(master, CTX_CHUNK_ID), seed or 1,
                   AESGCM(derive(master, CTX_ENCRYPT)))

    @classmethod
    def plaintext(cls, id_key: bytes) -> Keys:
        return cls(CIPHER_NONE, None, id_key, 0, None)

    def check_value(self, repo_id: str) -> str:
        """A MAC of the repository id: proves a candidate master key is this repository's."""
        assert self.master is not None
        return blake3.blake3(repo_id.encode(), key=derive(self.master, CTX_CHECK)).hexdigest()

    def chunk_id(self, data: bytes | memoryview) -> str:
        return blake3.blake3(data, key=self.id_key).hexdigest()

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        return bytes(self.seal_buffer(plaintext, ad))

    def seal_buffer(self, plaintext: bytes, ad: bytes) -> bytearray:
        """``seal`` without the final copy into ``bytes`` (chunks: megabytes each)."""
        if self._aead is None:
            return bytearray(NONCE_LEN) + plaintext + _plain_tag(plaintext, ad)
        nonce = os.urandom(NONCE_LEN)
        # encrypted in place after the nonce: one buffer, not ciphertext + a joined copy
        out = bytearray(NONCE_LEN + len(plaintext) + TAG_LEN)
        out[:NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plaintext, ad, memoryview(out)[NONCE_LEN:])
        return out

    def seal_into(self, plaintext: bytes | memoryview, ad: bytes, out: memoryview) -> int:
        """``seal`` written at the start of ``out`` (a pack's buffer: no separate sealed
        object), which must hold ``len(plaintext) + OVERHEAD`` bytes and not overlap
        ``plaintext``; returns that length."""
        n = len(plaintext) + OVERHEAD
        if self._aead is None:
            out[:NONCE_LEN] = bytes(NONCE_LEN)
            out[NONCE_LEN:n - TAG_LEN] = plaintext
            h = blake3.blake3(len(ad).to_bytes(4, "little") + ad)  # as _plain_tag
            h.update(plaintext)
            out[n - TAG_LEN:n] = h.digest()[:TAG_LEN]
            return n
        nonce = os.urandom(NONCE_LEN)
        out[:NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plaintext, ad, out[NONCE_LEN:n])
        return n

    def unseal(self, sealed: bytes | memoryview, ad: bytes) -> bytes:
        if len(sealed) < OVERHEAD:
            raise SealError("too short")
        if self._aead is None:
            body = bytes(sealed[NONCE_LEN:-TAG_LEN])
            if _plain_tag(body, ad) != bytes(sealed[-TAG_LEN:]):
                raise SealError("checksum mismatch")
            return body
        try:
            view = memoryview(sealed)  # no copy of the ciphertext before decrypting it
            return self._aead.decrypt(bytes(view[:NONCE_LEN]), view[NONCE_LEN:], ad)
        except InvalidTag:
            raise SealError("authentication failed") from None

    def unseal_into(self, sealed: bytes | memoryview, ad: bytes, out: memoryview) -> memoryview:
        """``unseal`` into ``out`` (at least ``len(sealed) - OVERHEAD`` bytes, e.g. a reused
        buffer: no fresh allocation per chunk); the plaintext's view of ``out``."""
        if len(sealed) < OVERHEAD:
            raise SealError("too short")
        view = memoryview(sealed)
        plain = out[:len(view) - OVERHEAD]
        if self._aead is None:
            plain[:] = view[NONCE_LEN:-TAG_LEN]
            if _plain_tag(plain, ad) != bytes(view[-TAG_LEN:]):
                raise SealError("checksum mismatch")
            return plain
        try:
            self._aead.decrypt_into(bytes(view[:NONCE_LEN]), view[NONCE_LEN:], ad, plain)
        except InvalidTag:
            raise SealError("authentication failed") from None
        return plain


def _plain_tag(plaintext: bytes | memoryview, ad: bytes) -> bytes:
    h = blake3.blake3(len(ad).to_bytes(4, "little") + ad)
    h.update(plaintext)
    return h.digest()[:TAG_LEN]


# -- key slots (keys/<id>) and key files -----------------------------------------------------


def _slot_ad(repo_id: str) -> bytes:
    return b"snapkeep key slot " + repo_id.encode()


def make_passphrase_slot(master: bytes, repo_id: str, passphrase: str,
                         params: dict[str, int] | None = None) -> dict[str, object]:
    p = dict(ARGON2_DEFAULT if params is None else params)
    salt = secrets.token_bytes(16)
    kek = _argon2(passphrase, salt, p)
    nonce = os.urandom(NONCE_LEN)
    wrapped = AESGCM(kek).encrypt(nonce, master, _slot_ad(repo_id))
    return {"version": 1, "kind": "passphrase", "kdf": "argon2id",
            "kdf_params": {"t": p["t"], "m": p["m"], "p": p["p"], "salt": b64(salt)},
            "cipher": CIPHER_AES, "wrapped": b64(nonce + wrapped)}


def make_unprotected_slot(master: bytes) -> dict[str, object]:
    return {"version": 1, "kind": "unprotected", "kdf": "none", "master_key": b64(master)}


def open_slot(slot: dict[str, object], repo_id: str, passphrase: str | None) -> bytes | None:
    """The master key if this slot opens with the passphrase (or is unprotected), else None."""
    kind = slot.get("kind")
    if kind == "unprotected":
        return unb64(str(slot["master_key"]))
    if kind != "passphrase" or passphrase is None:
        return None
    kp = slot["kdf_params"]
    assert isinstance(kp, dict)
    kek = _argon2(passphrase, unb64(kp["salt"]), kp)
    raw = unb64(str(slot["wrapped"]))
    try:
        return AESGCM(kek).decrypt(raw[:NONCE_LEN], raw[NONCE_LEN:], _slot_ad(repo_id))
    except InvalidTag:
        return None


def _argon2(passphrase: str, salt: bytes, p: dict[str, Any]) -> bytes:
    return hash_secret_raw(passphrase.encode("utf-8"), salt, time_cost=int(p["t"]),
                           memory_cost=int(p["m"]), parallelism=int(p["p"]), hash_len=32,
                           type=Type.ID)


def key_text(master: bytes, repo_id: str) -> str:
    """The key-file / export format: one line of JSON."""
    return json.dumps({"snapkeep_key": 1, "repository": repo_id, "master_key": b64(master)},
                      sort_keys=True) + "\n"


def parse_key_text(text: str) -> tuple[bytes, str | None]:
    """(master key, repository id) from a key file or an exported key; ValueError if not one."""
    text = text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = json.loads(base64.b64decode(text, validate=True))  # base64-wrapped export
    if not isinstance(data, dict) or data.get("snapkeep_key") != 1:
        raise ValueError("not a snapkeep key")
    master = unb64(data["master_key"])
    if len(master) != 32:
        raise ValueError("the master key is not 32 bytes")
    return master, data.get("repository")
