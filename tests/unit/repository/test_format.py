"""docs/repository-format.md is enough to write a restorer: this one uses only the
document (no snapkeep.repository code) to read a snapshot's blob back."""

import base64
import json
import random
import struct

import blake3
import zstandard
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapkeep.repository import BlobRef, Repository, SnapshotManifest
from snapkeep.storage import LocalBackend


def unseal(key: bytes, sealed: bytes, ad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], ad)


def decode(plain: bytes) -> bytes:
    if plain[0] == 0:
        return plain[1:]
    assert plain[0] == 1
    return zstandard.ZstdDecompressor().decompressobj().decompress(plain[1:])


def restore_by_hand(root, passphrase: str, snapshot_id: str) -> dict:
    config = json.loads((root / "config").read_text())
    master = None
    for slot_file in (root / "keys").iterdir():
        slot = json.loads(slot_file.read_text())
        kp = slot["kdf_params"]
        kek = hash_secret_raw(passphrase.encode(), base64.b64decode(kp["salt"]),
                              time_cost=kp["t"], memory_cost=kp["m"], parallelism=kp["p"],
                              hash_len=32, type=Type.ID)
        wrapped = base64.b64decode(slot["wrapped"])
        master = unseal(kek, wrapped, b"snapkeep key slot " + config["id"].encode())
    assert master is not None

    def sub(ctx):
        return blake3.blake3(master, derive_key_context=ctx).digest()

    enc, idk, check = (sub("snapkeep 2026 repository encryption key"),
                       sub("snapkeep 2026 chunk id key"), sub("snapkeep 2026 key check"))
    assert blake3.blake3(config["id"].encode(), key=check).hexdigest() == config["key_check"]
    docs = {}
    for f in (root / "index").iterdir():
        docs[f.name] = json.loads(decode(unseal(enc, f.read_bytes(), b"snapkeep index")))
    dead = {s for d in docs.values() for s in d["supersedes"]}
    where = {}
    for name, d in docs.items():
        if name in dead:
            continue
        for p in d["packs"]:
            for cid, off, length, raw_len in p["chunks"]:
                where[cid] = (p["id"], off, length, raw_len)
    raw = (root / "snapshots" / snapshot_id).read_bytes()
    manifest = json.loads(decode(unseal(enc, raw, b"snapkeep manifest " + snapshot_id.encode())))

    def read(ref):
        out = b""
        for cid, n in ref["chunks"]:
            pack, off, length, raw_len = where[cid]
            data = (root / "data" / pack[:2] / pack).read_bytes()
            # The pack header lists the same entry.
            (hlen,) = struct.unpack("<I", data[-4:])
            header = unseal(enc, data[-4 - hlen:-4], b"snapkeep pack header")
            entries = {header[i:i + 32].hex(): struct.unpack("<III", header[i + 32:i + 44])
                       for i in range(1, len(header), 44)}
            assert entries[cid] == (off, length, raw_len)
            plain = decode(unseal(enc, data[off:off + length],
                                  b"snapkeep chunk " + bytes.fromhex(cid)))
            assert len(plain) == n == raw_len
            assert blake3.blake3(plain, key=idk).hexdigest() == cid
            out += plain
        return out

    refs = read(manifest["references"]).decode().split("\n")
    return {"manifest": manifest, "read": read, "refs": refs}


def test_a_restorer_written_from_the_format_document_reads_a_snapshot(tmp_path):
    repo = Repository.init(LocalBackend(tmp_path / "repo"), passphrase="pw",
                           kdf_params={"t": 1, "m": 1024, "p": 1})
    data = random.Random(1).randbytes(3 << 20) + b"text " * 100_000
    s = repo.begin_snapshot()
    ref = s.put_blob(data)
    s.commit(SnapshotManifest(id="s1", project="p", environment="e",
                              environment_type="development", created_at="x", expires_at=None,
                              live=False, automated=False, commit_id=None,
                              services={"db": {"rows": ref.to_json()}}))
    got = restore_by_hand(tmp_path / "repo", "pw", "s1")
    assert got["read"](got["manifest"]["services"]["db"]["rows"]) == data
    assert {c for c, _n in BlobRef.from_json(got["manifest"]["services"]["db"]["rows"]).chunks} \
        <= set(got["refs"])
