"""Backups in S3-compatible object storage (AWS S3, MinIO, Ceph, s3proxy, ...): the `object_storage` method.

Every call blocks on the network (boto3 is synchronous): callers run them in a worker thread, never on the
event loop (the leader's backup job uses `asyncio.to_thread`; the CLI calls directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from tasques.backup.destinations import BackupStorageError
from tasques.backup.runner import parse_backup_name
from tasques.config import ObjectStorageConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Objects above this go up in parts of this size; S3 makes a multipart object visible only when it is completed,
# and s3transfer aborts the upload when a part fails, so a partial backup is never listed.
PART_SIZE = 16 * 1024 * 1024
_REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class ObjectStorage:
    """A `Destination`: backup NAME is the object PREFIX+NAME in the bucket (the bucket must exist)."""

    def __init__(self, settings: ObjectStorageConfig, *, part_size: int = PART_SIZE, page_size: int = 1000) -> None:
        endpoint, bucket, access_key, secret_key = (
            settings.endpoint,
            settings.bucket,
            settings.access_key,
            settings.secret_key,
        )
        if endpoint is None or bucket is None or access_key is None or secret_key is None:
            missing = [n for n in ("endpoint", "bucket", "access_key", "secret_key") if getattr(settings, n) is None]
            raise BackupStorageError(f"object storage needs object_storage.{', object_storage.'.join(missing)}")
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.prefix = settings.prefix
        self.description = f"s3://{self.bucket}/{self.prefix} at {self.endpoint}"
        seconds = settings.timeout.total_seconds()
        verify: bool | str = settings.verify_tls
        if settings.verify_tls and settings.ca_certs:
            verify = settings.ca_certs
        config = BotoConfig(
            connect_timeout=seconds,
            read_timeout=seconds,
            # Three attempts in all: a flaky request is retried, a dead endpoint fails within about 3x timeout.
            retries={"mode": "standard", "total_max_attempts": 3},
            s3={"addressing_style": "path" if settings.path_style else "virtual"},
            signature_version="s3v4",
            # Checksums only where S3 requires them: botocore's default trailing CRCs are not understood by
            # many S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of its own: the configured keys, never whatever AWS_* variables or ~/.aws the process has.
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key.get_secret_value(),
            region_name=settings.region,
        )
        self._client: S3Client = session.client("s3", endpoint_url=self.endpoint, verify=verify, config=config)
        self._page_size = page_size  # keys per listing request (S3's maximum is 1000)
        self._transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4)

    def put(self, name: str, source: Path) -> None:
        key = self._key(name)
        try:
            self._client.upload_file(str(source), self.bucket, key, Config=self._transfer)
        except S3UploadFailedError as e:
            # boto3 wraps the ClientError of a failed upload (raised while handling it, so it is the context).
            cause = e.__context__
            raise self._error(cause if isinstance(cause, ClientError) else e, f"upload {name}") from None
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, f"upload {name}") from None
        except OSError as e:
            raise BackupStorageError(f"could not read {source} to upload it: {e.strerror or e}") from None

    def names(self) -> list[str]:
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(self.prefix) :]
                    # Only our own names directly under the prefix: a longer prefix ("prod/" under "") is another
                    # set of backups, and anything else in the bucket is not ours.
                    if parse_backup_name(rest) is not None:
                        found.append(rest)
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, "list the backups") from None
        return found

    def fetch(self, name: str, target: Path) -> None:
        key = self._key(name)
        try:
            # s3transfer writes to a temporary name beside `target` and renames it when the download is whole.
            self._client.download_file(self.bucket, key, str(target), Config=self._transfer)
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, f"fetch {name}", name=name) from None
        except OSError as e:
            raise BackupStorageError(f"could not write {target}: {e.strerror or e}") from None

    def delete(self, name: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as e:
            if _code(e) in _MISSING:
                return
            raise self._error(e, f"delete {name}") from None
        except BotoCoreError as e:
            raise self._error(e, f"delete {name}") from None

    def _key(self, name: str) -> str:
        if parse_backup_name(name) is None:
            raise BackupStorageError(f"{name!r} is not a backup name (tasques-YYYYMMDDTHHMMSSZ.db.gz)")
        return f"{self.prefix}{name}"

    def _error(
        self, e: BotoCoreError | ClientError | S3UploadFailedError, action: str, *, name: str = ""
    ) -> BackupStorageError:
        """The failure as a message naming the problem. Botocore's messages carry the endpoint, bucket and key,
        the server's code and text, never the secret key."""
        if isinstance(e, ClientError):
            code = _code(e)
            message = e.response.get("Error", {}).get("Message") or code
            if code in _REFUSED:
                return BackupStorageError(
                    f"object storage refused the credentials for bucket {self.bucket}: {code} ({message})"
                )
            if code == "NoSuchBucket":
                return BackupStorageError(f"object storage at {self.endpoint} has no bucket {self.bucket}")
            if name and code in _MISSING:
                return BackupStorageError(f"there is no backup {name} in {self.description}")
            return BackupStorageError(f"object storage could not {action} in {self.description}: {code} ({message})")
        if isinstance(e, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError):
            return BackupStorageError(f"object storage at {self.endpoint} did not answer: {e}")
        if isinstance(e, SSLError):
            return BackupStorageError(f"TLS with object storage at {self.endpoint} failed (verify_tls, ca_certs): {e}")
        return BackupStorageError(f"object storage at {self.endpoint} could not {action}: {e}")


def _code(e: ClientError) -> str:
    # HeadObject (inside download_file) has no body: its code is the bare status, "403" or "404".
    return str(e.response.get("Error", {}).get("Code", ""))
