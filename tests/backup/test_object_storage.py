"""Backups in S3-compatible object storage, against a real s3proxy (scripts/s3proxy; the `s3_endpoint` fixture).

Each test has a bucket of its own, so none sees another's objects.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config as BotoConfig
from pydantic import SecretStr

from tasques.backup.destinations import BackupStorageError
from tasques.backup.object_storage import ObjectStorage
from tasques.backup.restore import restore
from tasques.backup.runner import BackupRunner, backup_name, check_integrity
from tasques.config import ObjectStorageConfig
from tasques.domain.task import TaskKey
from tasques.store.sqlite.store import SqliteStore
from tests.conftest import S3Endpoint
from tests.contract import make_task

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T0 = datetime(2026, 12, 3, 14, 25, tzinfo=UTC)
MIB = 1024 * 1024


def name_at(minutes: int) -> str:
    return backup_name(T0 + timedelta(minutes=minutes))


@pytest.fixture
def s3(s3_endpoint: S3Endpoint) -> S3Client:
    """A plain client on the server, for what the tests set up and check behind ObjectStorage's back."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint.url,
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name="us-east-1",
        # s3proxy 2.4 refuses botocore's default trailing checksums (x-amz-checksum-crc32), as ObjectStorage knows.
        config=BotoConfig(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


@pytest.fixture
def bucket(s3: S3Client) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=name)
    # Deepest first: the filesystem back end lists its directories as "dir/" keys, and deleting one that still
    # holds files stalls for 10 s.
    for key in sorted((obj["Key"] for page in pages for obj in page.get("Contents", [])), reverse=True):
        s3.delete_object(Bucket=name, Key=key)
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def settings(s3_endpoint: S3Endpoint, bucket: str) -> ObjectStorageConfig:
    return ObjectStorageConfig(
        endpoint=s3_endpoint.url,
        access_key=s3_endpoint.access_key,
        secret_key=SecretStr(s3_endpoint.secret_key),
        bucket=bucket,
        prefix="tasques/",
        timeout=timedelta(seconds=5),
    )


def storage(settings: ObjectStorageConfig, **changes: object) -> ObjectStorage:
    return ObjectStorage(settings.model_copy(update=changes))


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_put_lists_and_fetches_the_same_bytes(settings: ObjectStorageConfig, s3: S3Client, tmp_path: Path) -> None:
    store = storage(settings)
    source = random_file(tmp_path / "a.gz", 100_000)
    store.put(name_at(0), source)
    store.put(name_at(1), random_file(tmp_path / "b.gz", 10))
    # Objects that are not backups, beside and below the prefix, are never listed.
    s3.put_object(Bucket=settings.bucket or "", Key="tasques/notes.txt", Body=b"x")
    s3.put_object(Bucket=settings.bucket or "", Key=f"tasques/old/{name_at(2)}", Body=b"x")
    s3.put_object(Bucket=settings.bucket or "", Key=name_at(3), Body=b"x")
    assert sorted(store.names()) == [name_at(0), name_at(1)]
    store.fetch(name_at(0), tmp_path / "back.gz")
    assert (tmp_path / "back.gz").read_bytes() == source.read_bytes()
    assert s3.head_object(Bucket=settings.bucket or "", Key=f"tasques/{name_at(0)}")["ContentLength"] == 100_000


def test_a_multipart_backup_is_listed_only_once_complete(
    settings: ObjectStorageConfig, s3: S3Client, tmp_path: Path
) -> None:
    store = ObjectStorage(settings, part_size=5 * MIB)  # S3's smallest part: 3 parts
    source = random_file(tmp_path / "big.gz", 12 * MIB)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        # Whenever the name is listed, the object behind it is whole.
        while not done.is_set():
            if name_at(0) in store.names():
                head = s3.head_object(Bucket=settings.bucket or "", Key=f"tasques/{name_at(0)}")
                seen.append(head["ContentLength"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        store.put(name_at(0), source)
    finally:
        done.set()
        watcher.join()
    assert set(seen) <= {12 * MIB}
    assert store.names() == [name_at(0)]
    assert s3.list_multipart_uploads(Bucket=settings.bucket or "").get("Uploads", []) == []
    store.fetch(name_at(0), tmp_path / "back.gz")
    assert (tmp_path / "back.gz").read_bytes() == source.read_bytes()


def test_prefixes_in_one_bucket_are_separate_sets(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    prod, staging, root = (
        storage(settings, prefix="prod/"),
        storage(settings, prefix="staging/"),
        storage(settings, prefix=""),
    )
    source = random_file(tmp_path / "a.gz", 10)
    prod.put(name_at(0), source)
    staging.put(name_at(1), source)
    assert prod.names() == [name_at(0)]
    assert staging.names() == [name_at(1)]
    assert root.names() == []
    staging.delete(name_at(0))  # prod's name, under the other prefix: nothing of prod's goes
    assert prod.names() == [name_at(0)]
    with pytest.raises(BackupStorageError, match="there is no backup"):
        staging.fetch(name_at(0), tmp_path / "x.gz")


def test_delete_removes_and_tolerates_a_missing_backup(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    store = storage(settings)
    store.put(name_at(0), random_file(tmp_path / "a.gz", 10))
    store.delete(name_at(0))
    store.delete(name_at(0))
    assert store.names() == []


def test_names_pages_through_long_listings(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    store = ObjectStorage(settings, page_size=7)
    source = random_file(tmp_path / "a.gz", 1)
    names = [name_at(i) for i in range(30)]  # five pages (the directory key "tasques/" is listed too)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: store.put(n, source), names))
    assert sorted(store.names()) == names


def test_a_name_that_is_not_a_backup_name_is_refused(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    store = storage(settings)
    with pytest.raises(BackupStorageError, match="not a backup name"):
        store.put("../../etc/passwd", random_file(tmp_path / "a.gz", 1))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"secret_key": SecretStr("not-the-secret")}, "refused the credentials for bucket .*SignatureDoesNotMatch"),
        ({"access_key": "nobody"}, "refused the credentials for bucket .*InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_are_a_clear_error(
    settings: ObjectStorageConfig, s3_endpoint: S3Endpoint, tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    store = storage(settings, **changes)
    source = random_file(tmp_path / "a.gz", 10)
    for call in (lambda: store.put(name_at(0), source), store.names, lambda: store.fetch(name_at(0), tmp_path / "b")):
        with pytest.raises(BackupStorageError, match=expected) as caught:
            call()
        assert "not-the-secret" not in str(caught.value)
        assert s3_endpoint.secret_key not in str(caught.value)


def test_a_missing_bucket_is_a_clear_error(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    store = storage(settings, bucket=f"t-missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(BackupStorageError, match="has no bucket t-missing-"):
        store.names()
    with pytest.raises(BackupStorageError, match="has no bucket t-missing-"):
        store.put(name_at(0), random_file(tmp_path / "a.gz", 10))


def test_an_unreachable_endpoint_fails_within_the_timeout(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    store = storage(settings, endpoint=url, timeout=timedelta(seconds=2))
    started = time.monotonic()
    with pytest.raises(BackupStorageError, match=f"object storage at {url} did not answer"):
        store.names()
    with pytest.raises(BackupStorageError, match="did not answer"):
        store.put(name_at(0), random_file(tmp_path / "a.gz", 10))
    assert time.monotonic() - started < 3 * 2 * 2  # two calls, three attempts each at most


# End to end: the runner and restore of tasques.backup on a real SQLite store, into the bucket.


async def test_a_backup_under_write_load_restores_every_task_committed_before_it(
    settings: ObjectStorageConfig, tmp_path: Path
) -> None:
    db = tmp_path / "live" / "tasques.db"
    db.parent.mkdir()
    store = SqliteStore(str(db))
    await store.open()
    committed: list[str] = []
    stop, going = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            await store.insert_task(make_task(id=f"w{i}", args={"pad": "x" * 200}))
            committed.append(f"w{i}")
            i += 1
            if i == 50:
                going.set()

    try:
        # Enough data that the copy takes a while, with the writer going all along.
        await store.insert_tasks([make_task(id=f"pre{i}", args={"pad": "y" * 500}) for i in range(3000)])
        writer = asyncio.create_task(write())
        await asyncio.wait_for(going.wait(), 30)
        before = ["pre" + str(i) for i in range(3000)] + list(committed)
        runner = BackupRunner(str(db), ObjectStorage(settings), keep=3)
        record = await asyncio.to_thread(runner.take, T0)
        during = len(committed) - (len(before) - 3000)
        stop.set()
        await writer
    finally:
        await store.close()
    assert during > 0, "the writer made no progress while the backup ran"

    target = tmp_path / "restored" / "tasques.db"
    target.parent.mkdir()
    restore(str(target), record.name, ObjectStorage(settings))
    check_integrity(target)
    restored = SqliteStore(str(target))
    await restored.open()
    try:
        found = await restored.get_tasks([TaskKey(queue="q", id=i) for i in before])
    finally:
        await restored.close()
    missing = [i for i, t in zip(before, found, strict=True) if t is None]
    assert missing == []


async def test_retention_keeps_the_newest_backups(settings: ObjectStorageConfig, tmp_path: Path) -> None:
    db = tmp_path / "tasques.db"
    store = SqliteStore(str(db))
    await store.open()
    try:
        await store.insert_task(make_task(id="one"))
    finally:
        await store.close()
    destination = ObjectStorage(settings)
    runner = BackupRunner(str(db), destination, keep=2)
    for minutes in range(4):
        await asyncio.to_thread(runner.take, T0 + timedelta(minutes=minutes))
    assert sorted(destination.names()) == [name_at(2), name_at(3)]
