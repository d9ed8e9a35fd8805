"""Test-wide fixtures: the real Elasticsearch from the harness, and per-test isolation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from tests import es_pool
from tests.async_bridge import run_async
from tests.process import ServerProcess, es_server_settings

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


# The files that each hold a test process for minutes, longest first. `make test` runs xdist with
# --no-loadscope-reorder so this order is the schedule: they start at once, and the many short files fill in around
# them. xdist's own order (most tests first) started the three-node cluster file 4 minutes in, and the run waited
# for its last 7 minutes.
LONG_FILES = (
    "tests/cluster/test_node_failures.py",
    "tests/ha/test_ha.py",
    "tests/api/test_fuzz_api.py",
    "tests/faults/test_es_pause_drain.py",  # after the fuzz: its node does not start while the cluster's three do
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    files: dict[str, int] = {}
    for item in items:
        files[item.location[0]] = files.get(item.location[0], 0) + 1
    first = {name: i for i, name in enumerate(files)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        name = item.location[0]
        rank = LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)
        return rank, -files[name], first[name]  # then the rest as xdist orders them: most tests first

    items.sort(key=key)  # stable: each file keeps its own order


def _unavailable(reason: str, server: str = "Elasticsearch") -> None:
    # Locally a missing server skips its tests; in CI it must fail the run loudly.
    if IN_CI:
        pytest.fail(f"{server} is required in CI: {reason}", pytrace=False)
    pytest.skip(f"{server} unavailable: {reason}")


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """URL of a real Elasticsearch: `TASQUES_TEST_ES_URL`, or one started by `scripts/elasticsearch`."""
    url = os.environ.get("TASQUES_TEST_ES_URL")
    if url:
        yield url.rstrip("/")
        # A thread of its own: a test process that ran browser tests may hold Playwright's loop here.
        run_async(es_pool.drain(url.rstrip("/")))
        return
    script = REPO / "scripts" / "elasticsearch"
    # A node that was already running belongs to someone else: reuse it, and leave it running.
    already_running = subprocess.run([str(script), "url"], capture_output=True, check=False).returncode == 0
    proc = subprocess.run([str(script), "start"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        _unavailable(f"`scripts/elasticsearch start` exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    yield proc.stdout.strip().splitlines()[-1]
    if not already_running:
        subprocess.run([str(script), "stop"], capture_output=True, check=False)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """A real S3-compatible server: `TASQUES_TEST_S3_URL` (keys from `TASQUES_TEST_S3_ACCESS_KEY` and
    `TASQUES_TEST_S3_SECRET_KEY`, else `scripts/s3proxy credentials`), or an s3proxy started by `scripts/s3proxy`."""
    script = REPO / "scripts" / "s3proxy"
    url = os.environ.get("TASQUES_TEST_S3_URL", "").rstrip("/")
    started = False
    if not url:
        already_running = subprocess.run([str(script), "url"], capture_output=True, check=False).returncode == 0
        proc = subprocess.run([str(script), "start"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            _unavailable(f"`scripts/s3proxy start` exited {proc.returncode}:\n{proc.stderr[-4000:]}", "s3proxy")
        url = proc.stdout.strip().splitlines()[-1]
        started = not already_running
    access_key = os.environ.get("TASQUES_TEST_S3_ACCESS_KEY")
    secret_key = os.environ.get("TASQUES_TEST_S3_SECRET_KEY")
    if not (access_key and secret_key):
        keys = subprocess.run([str(script), "credentials"], capture_output=True, text=True, check=True).stdout.split()
        access_key, secret_key = keys[0], keys[1]
    yield S3Endpoint(url, access_key, secret_key)
    if started:
        subprocess.run([str(script), "stop"], capture_output=True, check=False)


@pytest.fixture
def es_index_prefix() -> str:
    """A unique, lower-case index prefix so tests never see each other's data."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def es_client(elasticsearch_url: str, es_index_prefix: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(elasticsearch_url, request_timeout=30)
    try:
        yield client
        await client.indices.delete(index=f"{es_index_prefix}*", allow_no_indices=True, ignore_unavailable=True)
    finally:
        await client.close()


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `tasques serve` on an empty store, once per store kind."""
    es: tuple[str, str] | None = None
    if request.param == "sqlite":
        settings = {"TASQUES_STORE_KIND": "sqlite", "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "tasques.db")}
    else:
        url: str = request.getfixturevalue("elasticsearch_url")
        es = (url, es_pool.lease(url))
        settings = es_server_settings(*es)
    process = ServerProcess(settings, tmp_path / "server.log")
    try:
        yield process.start()
    finally:
        process.stop()
        if es is not None:
            asyncio.run(es_pool.give_back(*es))
