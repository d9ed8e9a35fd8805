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

from tasques.store.elasticsearch.cluster import has_ilm
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


async def delete_es_prefix(url: str, prefix: str) -> None:
    """Remove every index, template and ILM policy a test store created under `prefix`."""
    async with AsyncElasticsearch(url, request_timeout=30) as client:
        await client.indices.delete(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
        templates = await client.options(ignore_status=404).indices.get_index_template(name=f"{prefix}-*")
        for template in templates.body.get("index_templates", []):
            await client.indices.delete_index_template(name=template["name"])
        if await has_ilm(client):
            await client.options(ignore_status=404).ilm.delete_lifecycle(name=f"{prefix}-archive-policy")


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `tasques serve` on an empty store, once per store kind."""
    es: tuple[str, str] | None = None
    if request.param == "sqlite":
        settings = {"TASQUES_STORE_KIND": "sqlite", "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "tasques.db")}
    else:
        es = (request.getfixturevalue("elasticsearch_url"), request.getfixturevalue("es_index_prefix"))
        settings = es_server_settings(*es)
    process = ServerProcess(settings, tmp_path / "server.log")
    try:
        yield process.start(timeout=60)
    finally:
        process.stop()
        if es is not None:
            asyncio.run(delete_es_prefix(*es))
