"""open_backend: locations, options, environment variables, and the key rules.
Nothing here talks to a server (opening a backend does not touch the network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.errors import ConfigError, RepositoryError
from snapkeep.storage import LocalBackend, RetryingBackend, open_backend
from snapkeep.storage.base import check_key, check_prefix
from snapkeep.storage.s3 import S3Backend

SECRET = "s3cr3t-do-not-show-0123456789"
AWS_VARS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"]


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    # No ~/.aws files from the machine running the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def s3(location: str, **options: str) -> S3Backend:
    b = open_backend(location, options)
    assert isinstance(b, RetryingBackend)
    assert isinstance(b.inner, S3Backend)
    return b.inner


def test_a_path_is_a_local_backend(tmp_path: Path) -> None:
    b = open_backend(str(tmp_path / "repo"))
    assert isinstance(b, LocalBackend)
    assert b.describe() == str(tmp_path / "repo")
    assert isinstance(open_backend("relative/repo", {}), LocalBackend)


def test_s3_location_and_options() -> None:
    b = s3("s3://my-bucket/team/repo/", endpoint="http://127.0.0.1:8333", region="eu-west-3",
           access_key_id="AKIDEXAMPLE", secret_access_key=SECRET, session_token="tok-123")
    assert (b.bucket, b.prefix, b.region) == ("my-bucket", "team/repo/", "eu-west-3")
    assert b.describe() == "s3://my-bucket/team/repo at http://127.0.0.1:8333"
    assert s3("s3://my-bucket", endpoint="http://h:1").describe() == "s3://my-bucket at http://h:1"
    assert s3("s3://my-bucket/", endpoint="http://h:1").prefix == ""


def test_describe_never_shows_credentials() -> None:
    b = open_backend("s3://bkt/p", {"endpoint": "http://user:pw-in-url@127.0.0.1:9",
                                    "access_key_id": "AKIDEXAMPLE",
                                    "secret_access_key": SECRET, "session_token": "tok-xyz"})
    text = b.describe() + repr(b) + repr(b.inner)
    for secret in (SECRET, "tok-xyz", "pw-in-url", "AKIDEXAMPLE"):
        assert secret not in text
    assert b.describe() == "s3://bkt/p at http://127.0.0.1:9"


def test_environment_variables_fill_what_options_leave_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7777")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    b = s3("s3://bkt/p")
    assert b.describe() == "s3://bkt/p at http://127.0.0.1:7777"
    assert b.region == "ap-south-1"
    creds = b._client._request_signer._credentials  # noqa: SLF001 - boto3's resolution
    assert (creds.access_key, creds.secret_key) == ("AKIDENV", SECRET)
    # Options win over the environment.
    b = s3("s3://bkt/p", endpoint="http://127.0.0.1:8888", region="us-west-2")
    assert b.describe() == "s3://bkt/p at http://127.0.0.1:8888"
    assert b.region == "us-west-2"


def test_generic_endpoint_and_aws_region_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:6666")
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    b = s3("s3://bkt/p")
    assert b.describe() == "s3://bkt/p at http://127.0.0.1:6666"
    assert b.region == "eu-north-1"


def test_region_defaults_to_us_east_1() -> None:
    assert s3("s3://bkt", endpoint="http://127.0.0.1:1").region == "us-east-1"


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        open_backend("s3://bkt/p", {"endpoint": "http://h:1", "secret_key": SECRET})
    assert "secret_key" in str(e.value)
    assert SECRET not in str(e.value)
    assert "access_key_id" in str(e.value)  # lists the known ones


def test_non_string_option_value_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="secret_access_key must be a string") as e:
        open_backend("s3://bkt/p", {"access_key_id": "AK", "secret_access_key": 12345})
    assert "12345" not in str(e.value)


def test_s3_options_on_a_local_repository_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="endpoint applies only to s3://"):
        open_backend(str(tmp_path), {"endpoint": "http://h:1"})


@pytest.mark.parametrize("location", ["s3://", "s3://ab", "s3://-bad/p", "s3://bad bucket/p",
                                      "s3://" + "b" * 64, "s3://bkt/a/../b", "s3://bkt/.x"])
def test_bad_s3_locations(location: str) -> None:
    with pytest.raises(ConfigError, match="repository"):
        open_backend(location, {"endpoint": "http://h:1"})


def test_unsupported_scheme() -> None:
    with pytest.raises(ConfigError, match="unsupported scheme gs://"):
        open_backend("gs://bucket/p")


def test_bad_endpoint() -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        open_backend("s3://bkt/p", {"endpoint": "127.0.0.1:8333"})


def test_half_the_key_pair_is_refused() -> None:
    with pytest.raises(ConfigError, match="go together"):
        open_backend("s3://bkt/p", {"access_key_id": "AK"})
    with pytest.raises(ConfigError, match="go together") as e:
        open_backend("s3://bkt/p", {"secret_access_key": SECRET})
    assert SECRET not in str(e.value)


@pytest.mark.parametrize("key", ["config", "data/ab/abcdef", "a b/c+d=e&f?g#h%i",
                                 "é/漢字/😀", "x" * 255, "a..b/c.", "-x/~y"])
def test_valid_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", ".", "..", "a/../b", ".git/x",
                                 "a/.tmp", "a\\b", "a\x00b", "a\x7fb", "a\nb", "x" * 256,
                                 "a/" * 512 + "b", "\udcff"])
def test_invalid_keys(key: str) -> None:
    with pytest.raises(RepositoryError, match="invalid repository key"):
        check_key(key)


def test_prefixes() -> None:
    for prefix in ["", "data/", "data/ab", "a", "snapshots/"]:
        assert check_prefix(prefix) == prefix
    for prefix in ["/a", "a//", ".x", "a/.x", "a\\"]:
        with pytest.raises(RepositoryError):
            check_prefix(prefix)
