"""Replicas through the CLI (docs/offsite.md): a primary on local disk, a replica on a real
SeaweedFS S3 server; the copy survives the primary's repository, is resumable after a
kill -9, and a damaged replica is a one-line error with nothing listed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from tests.helpers.seaweed import SeaweedS3
from tests.helpers.server import wait_for
from tests.helpers.shop import Cli, one_line_error, shop_state, take_snapshot

REPLICA = "offsite"


def add_replica(cli: Cli, root, s3: SeaweedS3, prefix: str, *, automatic: bool) -> None:
    with open(root / "snapkeep.toml", "a") as f:
        f.write(f'\n[replicas.{REPLICA}]\nlocation = "{s3.location(prefix)}"\n'
                f'endpoint = "{s3.endpoint}"\nregion = "{s3.region}"\n'
                f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
                f'automatic = {"true" if automatic else "false"}\n'
                '[replicas.offsite.retention]\nkeep_daily = 30\n')
    out = cli.run("replica:init", REPLICA)
    assert "Created replica offsite" in out.stderr + out.stdout


def copied(out: str) -> tuple[int, int]:
    """(chunks sent, chunks referenced) from a copy's log line."""
    m = re.search(r"Copied backup \S+ to replica offsite: (\d+) of (\d+) chunks sent", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_a_snapshot_copied_off_site_restores_after_the_primary_is_gone(shop, mariadb,
                                                                       seaweed_s3):
    cli, root, db = shop
    add_replica(cli, root, seaweed_s3, f"replica-{db}", automatic=True)
    out = cli.run("snapshot:create")
    sid = out.stdout.strip().splitlines()[-1].split(": ")[1]
    copied(out.stdout + out.stderr)  # the automatic copy ran and was verified
    at_snapshot = shop_state(mariadb, db, root)
    assert sid in cli.run("snapshot:list", "--from", REPLICA).stdout
    assert cli.run("snapshot:verify", sid, "--from", REPLICA).returncode == 0

    # the replica's key is its own: the primary's key file does not open it
    primary_key = (root / ".snapkeep" / "repository.key").read_text()
    replica_key = (root / ".snapkeep" / "replicas" / "offsite.key").read_text()
    assert primary_key != replica_key
    objects = seaweed_s3.client().list_objects_v2(
        Bucket=seaweed_s3.bucket, Prefix=f"replica-{db}/").get("Contents", [])
    for o in objects:
        body = seaweed_s3.client().get_object(Bucket=seaweed_s3.bucket, Key=o["Key"])
        assert primary_key.strip().encode() not in body["Body"].read()

    # the shop changes, then its host loses the repository
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order")
    conn.close()
    shutil.rmtree(root / "pub" / "media" / "catalog")
    shutil.rmtree(root / ".snapkeep" / "repository")

    res = cli.run("snapshot:restore", sid, "--yes", check=False)
    one_line_error(res, "no snapkeep repository", "offsite", f"--from {REPLICA}")
    cli.run("snapshot:restore", sid, "--from", REPLICA, "--yes")
    assert shop_state(mariadb, db, root) == at_snapshot
    drill = cli.run("snapshot:verify", sid, "--from", REPLICA, "--restore")
    assert f"Restore drill of backup {sid} in replica offsite passed" in \
        drill.stdout + drill.stderr


def test_a_copy_killed_half_way_lists_nothing_and_the_next_one_reuses_its_packs(
        shop, mariadb, seaweed_s3):
    cli, root, db = shop
    big = root / "pub" / "media" / "big.bin"
    big.write_bytes(os.urandom(24 << 20))  # several flushes' worth of chunks
    add_replica(cli, root, seaweed_s3, f"killed-{db}", automatic=False)
    sid = take_snapshot(cli)
    killed = Cli(root, {**cli.env, "SNAPKEEP_CRASH_AT": "copy.flushed"})
    res = killed.run("snapshot:copy", sid, "--to", REPLICA, check=False)
    assert res.returncode == -9, res.stderr
    assert sid not in cli.run("snapshot:list", "--from", REPLICA, "--format", "csv").stdout
    out = cli.run("snapshot:copy", "--all", "--to", REPLICA)
    sent, total = copied(out.stdout + out.stderr)
    assert 0 < sent < total  # what the killed copy had flushed was not sent again
    assert sid in cli.run("snapshot:list", "--from", REPLICA, "--format", "csv").stdout
    again = cli.run("snapshot:copy", "--all", "--to", REPLICA)
    assert "holds every snapshot" in again.stdout + again.stderr
    assert cli.run("snapshot:verify", sid, "--from", REPLICA).returncode == 0


def test_a_corrupted_chunk_in_the_replica_is_a_one_line_error(shop, tmp_path):
    cli, root, db = shop
    replica_dir = tmp_path / "offsite-disk"
    with open(root / "snapkeep.toml", "a") as f:
        f.write(f'\n[replicas.{REPLICA}]\nlocation = "{replica_dir}"\n')
    cli.run("replica:init", REPLICA)
    first = take_snapshot(cli)
    cli.run("snapshot:copy", first, "--to", REPLICA)
    packs = sorted((replica_dir / "data").rglob("*"), key=lambda p: p.stat().st_size)
    victim = [p for p in packs if p.is_file()][-1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF  # inside the first chunk's sealed bytes
    victim.write_bytes(bytes(data))
    res = cli.run("snapshot:verify", first, "--from", REPLICA, check=False)
    one_line_error(res, f"snapshot {first} is damaged")
    res = cli.run("snapshot:restore", first, "--from", REPLICA, "--yes", check=False)
    one_line_error(res, "does not match its hash")


def test_a_replica_keeps_by_its_own_retention(shop, tmp_path):
    cli, root, _db = shop
    with open(root / "snapkeep.toml", "a") as f:
        f.write(f'\n[replicas.{REPLICA}]\nlocation = "{tmp_path / "off"}"\n'
                '[replicas.offsite.retention]\nkeep_last = 1\n')
    cli.run("replica:init", REPLICA)
    first, second = take_snapshot(cli), take_snapshot(cli)
    cli.run("snapshot:copy", "--all", "--to", REPLICA)
    out = cli.run("snapshot:expire", "--from", REPLICA).stdout
    assert re.search(rf"{first}\s.*deleted", out) and re.search(rf"{second}\s.*keep", out)
    held = cli.run("snapshot:list", "--from", REPLICA, "--format", "csv").stdout
    assert second in held and first not in held
    primary = cli.run("snapshot:list", "--format", "csv").stdout  # its own window keeps both
    assert first in primary and second in primary


def test_a_full_replica_disk_is_a_one_line_error_and_the_next_copy_completes(shop,
                                                                            tiny_disk):
    cli, root, _db = shop
    (root / "pub" / "media" / "huge.bin").write_bytes(os.urandom(6 << 20))
    with open(root / "snapkeep.toml", "a") as f:
        f.write(f'\n[replicas.{REPLICA}]\nlocation = "{tiny_disk / "offsite"}"\n')
    cli.run("replica:init", REPLICA)
    sid = take_snapshot(cli)
    res = cli.run("snapshot:copy", sid, "--to", REPLICA, check=False)
    one_line_error(res, "is full")
    assert sid not in cli.run("snapshot:list", "--from", REPLICA, "--format", "csv").stdout
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    cli.run("snapshot:copy", "--all", "--to", REPLICA)
    assert cli.run("snapshot:verify", sid, "--from", REPLICA).returncode == 0


def test_a_replica_server_that_goes_away_mid_copy_lists_nothing_and_the_next_copy_completes(
        shop, private_seaweed_s3):
    cli, root, db = shop
    s3 = private_seaweed_s3
    (root / "pub" / "media" / "big.bin").write_bytes(os.urandom(48 << 20))
    prefix = f"gone-{db}"
    add_replica(cli, root, s3, prefix, automatic=False)
    sid = take_snapshot(cli)
    copying = cli.popen("snapshot:copy", sid, "--to", REPLICA)

    def a_pack_arrived() -> bool:
        listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"{prefix}/data/")
        return listed.get("KeyCount", 0) > 0

    try:
        wait_for(a_pack_arrived, "the copy to send its first pack", 120, interval=0.05)
    finally:
        s3.kill()
    try:
        _out, err = copying.communicate(timeout=300)
        assert copying.returncode == 7, err
        # retries (and packs of the failed copy it could not delete) are warned about as
        # they happen; the error is the last line, one line saying what failed and what to do
        lines = [ln for ln in err.splitlines() if ln.startswith("snapkeep:")]
        assert "unavailable after" in lines[-1] and "run the command again" in lines[-1], err
        assert all("retrying in" in ln or "could not delete" in ln for ln in lines[:-1]), err
        assert "Traceback" not in err
    finally:
        s3.start()
    assert sid not in cli.run("snapshot:list", "--from", REPLICA, "--format", "csv").stdout
    cli.run("snapshot:copy", "--all", "--to", REPLICA)
    assert cli.run("snapshot:verify", sid, "--from", REPLICA).returncode == 0
