"""Test-wide fixtures: the real Elasticsearch from the harness, and per-test isolation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from tests import es_pool
from tests.process import ServerProcess, es_server_settings

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    # Locally a missing Elasticsearch skips its tests; in CI it must fail the run loudly.
    if IN_CI:
        pytest.fail(f"Elasticsearch is required in CI: {reason}", pytrace=False)
    pytest.skip(f"Elasticsearch unavailable: {reason}")


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """URL of a real Elasticsearch: `TASQUES_TEST_ES_URL`, or one started by `scripts/elasticsearch`."""
    url = os.environ.get("TASQUES_TEST_ES_URL")
    if url:
        yield url.rstrip("/")
        asyncio.run(es_pool.drain(url.rstrip("/")))
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


@pytest.fixture
def es_index_prefix() -> str:
    """A unique, lower-case index prefix so tests never see each other's data."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def es_client(elasticsearch_url: str, es_index_prefix: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await client.indices.delete(index=f"{es_index_prefix}*", allow_no_indices=True, ignore_unavailable=True)
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
        yield process.start(timeout=60)
    finally:
        process.stop()
        if es is not None:
            asyncio.run(es_pool.give_back(*es))
