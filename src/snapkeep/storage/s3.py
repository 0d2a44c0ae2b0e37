"""A repository in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, ...).

Keys are stored under ``<prefix>/`` in one bucket. A single PUT is atomic on S3, so
``put`` needs no temp object; objects above ``multipart_threshold`` go up in parts and
only become visible when the upload completes.

botocore's own retries are off: ``RetryingBackend`` (storage/retry.py) retries the
``TransientStorageError`` this module raises, with one policy for every backend.
Messages never contain credentials: they name the bucket, the prefix and the endpoint.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore import exceptions as bex
from botocore.config import Config

from snapkeep.errors import NotFoundError, RepositoryError, SnapkeepError
from snapkeep.storage.base import TransientStorageError, check_key, check_prefix, check_range

MiB = 1024 * 1024

# Error codes an S3 server answers when retrying later may help.
_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestTimeout",
    "ServiceUnavailable", "InternalError", "OperationAborted",
}
# Error codes that mean the credentials (or their permissions) are wrong.
_AUTH_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
    "InvalidSecurity", "AllAccessDisabled", "AccountProblem",
}
_CREDENTIALS_HINT = (
    "check access_key_id / secret_access_key (and session_token) under [repository] in "
    "snapkeep.toml, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), "
    "and that they may use the bucket"
)


def _public_endpoint(url: str) -> str:
    """The endpoint URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 16 * MiB,
        page_size: int = 1000,
        max_pool_connections: int = 32,
    ) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.prefix = prefix + "/" if prefix else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.page_size = page_size
        # Never shown, only scrubbed from server messages (defence in depth).
        self._secrets = [s for s in (
            secret_access_key, session_token, access_key_id,
            os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"),
            os.environ.get("AWS_ACCESS_KEY_ID"),
        ) if s]

        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region or None,
        )
        # boto3 reads AWS_DEFAULT_REGION and the config file; AWS_REGION is the newer name.
        region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
        self.region = region
        custom_endpoint = bool(endpoint or os.environ.get("AWS_ENDPOINT_URL_S3")
                               or os.environ.get("AWS_ENDPOINT_URL"))
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            # S3-compatible servers want path-style URLs (http://host:port/bucket/key).
            s3={"addressing_style": "path" if custom_endpoint else "auto"},
            max_pool_connections=max_pool_connections,
        )
        self._client: Any = session.client("s3", endpoint_url=endpoint or None, config=config)
        self.endpoint = _public_endpoint(self._client.meta.endpoint_url)

    # -- messages ----------------------------------------------------------------------------

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix.rstrip('/')}" if self.prefix \
            else f"s3://{self.bucket}"
        return f"{where} at {self.endpoint}"

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, e: Exception, op: str, key: str | None = None) -> SnapkeepError:
        """Our exception for a boto error raised while doing ``op`` on ``key``."""
        where = self.describe()
        what = f"{op} {key}" if key is not None else op
        if isinstance(e, bex.ClientError):
            err = e.response.get("Error", {}) or {}
            code = str(err.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            detail = self._redact(f"{code} {err.get('Message') or ''}".strip())
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in ("NoSuchKey", "NotFound") or (status == 404 and key is not None):
                return NotFoundError(f"{key} is not in the repository at {where}")
            if code in _AUTH_CODES or status in (401, 403):
                return RepositoryError(
                    f"storage at {where} denied access ({what}: {detail or status}): "
                    f"{_CREDENTIALS_HINT}")
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStorageError(
                    f"storage at {where} failed to {what}: {detail or status}",
                    reason=f"{detail or 'HTTP'} (HTTP {status})")
            return RepositoryError(f"storage at {where} refused to {what}: {detail or status}")
        if isinstance(e, bex.NoCredentialsError | bex.PartialCredentialsError):
            return RepositoryError(f"no usable S3 credentials for {where}: {_CREDENTIALS_HINT}")
        if isinstance(e, bex.SSLError):
            return RepositoryError(
                f"TLS error talking to storage at {where}: {self._redact(str(e))}")
        if isinstance(e, bex.ConnectionError | bex.HTTPClientError | bex.IncompleteReadError
                      | OSError):
            reason = self._redact(str(e)) or type(e).__name__
            return TransientStorageError(
                f"cannot reach storage at {where} ({what}): {reason}", reason=reason)
        return RepositoryError(f"storage at {where} failed to {what}: {self._redact(str(e))}")

    def _no_bucket(self) -> RepositoryError:
        return RepositoryError(
            f"the bucket {self.bucket!r} does not exist at {self.endpoint}: create it "
            "(`snapkeep init` creates a missing bucket) or fix `repository` in snapkeep.toml")

    # -- the protocol ------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def ensure(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except bex.ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404 and e.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise self._error(e, "check the bucket") from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "check the bucket") from None
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**kwargs)
        except bex.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou",):
                return
            raise self._error(e, f"create the bucket {self.bucket}") from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, f"create the bucket {self.bucket}") from None

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            if len(data) > self.multipart_threshold:
                self._put_multipart(full, data)
            else:
                self._client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data))
        except (bex.BotoCoreError, bex.ClientError, OSError) as e:
            raise self._error(e, "put", key) from None

    def _put_multipart(self, full: str, data: bytes) -> None:
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        try:
            view = memoryview(data)
            parts = []
            for number, offset in enumerate(range(0, len(data), self.part_size), start=1):
                answer = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                    Body=bytes(view[offset:offset + self.part_size]))
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException:
            # Best effort: the original error is the one to report.
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise

    def get(self, key: str) -> bytes:
        full = self._key(key)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=full)
            return answer["Body"].read()
        except (bex.BotoCoreError, bex.ClientError, OSError) as e:
            raise self._error(e, "get", key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        if length == 0:
            if not self.exists(key):
                raise NotFoundError(f"{key} is not in the repository at {self.describe()}")
            return b""
        full = self._key(key)
        try:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes={offset}-{offset + length - 1}")
            data = answer["Body"].read()
            if "ContentRange" not in answer:  # a server that ignored Range sent everything
                data = data[offset:offset + length]
            return data
        except bex.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # the object exists and ends before offset
            raise self._error(e, "get", key) from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "get", key) from None

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=full)
            return True
        except bex.ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._error(e, "check", key) from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "check", key) from None

    def list(self, prefix: str = "") -> Iterator[str]:
        full_prefix = self.prefix + check_prefix(prefix)
        strip = len(self.prefix)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix,
                                  "MaxKeys": self.page_size}
        while True:
            try:
                page = self._client.list_objects_v2(**kwargs)
            except (bex.BotoCoreError, bex.ClientError, OSError) as e:
                raise self._error(e, "list", prefix or "/") from None
            for item in page.get("Contents", ()):
                name = item["Key"]
                # Skip "folder" markers other tools create; they are not our keys.
                if name.startswith(full_prefix) and not name.endswith("/"):
                    yield name[strip:]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except bex.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NoSuchKey":
                return
            raise self._error(e, "delete", key) from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "delete", key) from None
