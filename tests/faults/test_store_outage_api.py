"""Store outages over HTTP: 503 with the message and Retry-After within the store deadline (never 500),
`/ready` follows the store while `/health` does not, and a claim whose write lands after its timeout is
handed back rather than left claimed by a worker that never received it.

Elasticsearch runs behind a stalling TCP proxy (`proxy.py`), so only this test's traffic stalls; SQLite is
made busy by another connection holding its write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

import tasques.server
from tasques.api.http import WORKER_ID_HEADER
from tasques.config import Config, ElasticsearchConfig
from tasques.store.elasticsearch import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests import es_pool
from tests.faults.proxy import StallingProxy

Client = TestClient[web.Request, web.Application]
DEADLINE = 1.0  # the store deadline these servers run with (seconds)
MARGIN = 1.5  # scheduling slack on a busy 2-core machine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def es_prefix(elasticsearch_url: str) -> AsyncIterator[str]:
    """A prefix whose indices exist: they are created at the usual deadline, straight to the node, since a
    cluster-state update on the busy test node can outlast the 1 s these servers allow a request."""
    prefix = es_pool.lease(elasticsearch_url)
    setup = ElasticsearchStore.from_config(
        ElasticsearchConfig(addresses=[elasticsearch_url], index_prefix=prefix, replicas=0)
    )
    try:
        await setup.open()
    finally:
        await setup.close()
    yield prefix
    await es_pool.give_back(elasticsearch_url, prefix)


def _config(store: dict[str, Any], **more: Any) -> Config:
    return Config.model_validate({"store": {"ping_timeout": "500ms", **store}, "dispatch": {"enabled": False}, **more})


async def _es_client(aiohttp_client: AiohttpClient, proxy: StallingProxy, prefix: str, **more: Any) -> Client:
    config = _config(
        {
            "kind": "elasticsearch",
            "elasticsearch": {
                "addresses": [proxy.url],
                "index_prefix": prefix,
                "replicas": 0,
                "request_timeout": f"{DEADLINE}s",
            },
        },
        **more,
    )
    store = ElasticsearchStore.from_config(config.store.elasticsearch)
    try:
        return await aiohttp_client(tasques.server.build_server(config, store))
    except BaseException:
        await store.close()  # a server that never started leaves its store (and its client session) to us
        raise


async def _timed(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str], float]:
    started = time.monotonic()
    async with client.request(method, path, **kwargs) as resp:
        body = await resp.json()
        return resp.status, body, dict(resp.headers), time.monotonic() - started


def _assert_unavailable(status: int, body: Any, headers: dict[str, str], elapsed: float, limit: float) -> None:
    assert status == 503, body
    assert body["message"].startswith("store unavailable: "), body
    assert int(headers["Retry-After"]) >= 1
    assert elapsed < limit + MARGIN, f"answered after {elapsed:.2f}s, the store deadline is {limit}s"


@pytest.mark.elasticsearch
async def test_stalled_elasticsearch_answers_503_within_the_deadline(
    aiohttp_client: AiohttpClient, stalling_proxy: StallingProxy, es_prefix: str
) -> None:
    client = await _es_client(aiohttp_client, stalling_proxy, es_prefix)
    async with client.post("/tasques", json={"queue": "q", "kind": "k", "id": "a"}) as resp:
        assert resp.status == 201
    async with client.get("/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ready", "store": "elasticsearch"}

    stalling_proxy.pause()
    worker = {WORKER_ID_HEADER: "w"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/tasques/q/a", {}),
        ("POST", "/tasques", {"json": {"queue": "q", "kind": "k"}}),
        ("POST", "/tasques/claims", {"json": {"queues": ["other"], "block_for": "5s"}, "headers": worker}),
        ("PUT", "/tasques/done/q/a", {"json": {}, "headers": worker}),
        ("GET", "/tasques", {}),
        ("GET", "/queues", {}),
        ("GET", "/recurring_tasques", {}),
    ]
    for method, path, kwargs in calls:
        _assert_unavailable(*await _timed(client, method, path, **kwargs), limit=DEADLINE)
    _assert_unavailable(*await _timed(client, "GET", "/ready"), limit=0.5)
    async with client.get("/health") as resp:
        assert resp.status == 200  # liveness never asks the store

    stalling_proxy.resume()
    async with client.get("/ready") as resp:
        assert resp.status == 200
    async with client.get("/tasques/q/a") as resp:
        assert resp.status == 200


@pytest.mark.elasticsearch
async def test_a_claim_applied_after_its_timeout_is_handed_back(
    aiohttp_client: AiohttpClient, stalling_proxy: StallingProxy, es_prefix: str
) -> None:
    client = await _es_client(aiohttp_client, stalling_proxy, es_prefix)
    async with client.post("/tasques", json={"queue": "q", "kind": "k", "id": "a"}) as resp:
        assert resp.status == 201
    # The claim's conditional bulk write is held: the server gives up on it after the deadline...
    stalling_proxy.pause_on(b"/_bulk")
    claim: dict[str, Any] = {"json": {"queues": ["q"], "block_for": "0s"}, "headers": {WORKER_ID_HEADER: "w"}}
    _assert_unavailable(*await _timed(client, "POST", "/tasques/claims", **claim), limit=DEADLINE)
    # ...and Elasticsearch applies it when traffic flows again: the task is claimed by "w", who got a 503.
    stalling_proxy.resume()
    deadline = time.monotonic() + 20
    while True:
        async with client.get("/tasques/q/a") as resp:
            task = await resp.json()
        if task["state"] == "queued" and task["metadata"]["version"]["seq_num"] >= 2:
            break  # claimed by the late write (seq 1), then handed back (seq 2)
        assert time.monotonic() < deadline, f"the task stayed stranded: {task}"
        await asyncio.sleep(0.2)
    assert task["attempted"] == 0
    # Claimable again: a claim that may wait sees it once a refresh shows the hand-back (a 0 s claim can miss it).
    again = {**claim, "json": {"queues": ["q"], "block_for": "5s"}}
    async with client.post("/tasques/claims", **again) as resp:
        assert resp.status == 200
        assert [t["id"] for t in await resp.json()] == ["a"]


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


async def test_a_locked_sqlite_answers_503_within_its_busy_timeout(
    aiohttp_client: AiohttpClient, sqlite_path: Path
) -> None:
    config = _config({"sqlite": {"path": str(sqlite_path), "busy_timeout": "300ms"}})
    store = SqliteStore(str(sqlite_path), config.store.sqlite.busy_timeout)
    client = await aiohttp_client(tasques.server.build_server(config, store))
    async with client.post("/tasques", json={"queue": "q", "kind": "k", "id": "a"}) as resp:
        assert resp.status == 201
    other = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        _assert_unavailable(*await _timed(client, "POST", "/tasques", json={"queue": "q", "kind": "k"}), limit=0.3)
        worker = {WORKER_ID_HEADER: "w"}
        claim: dict[str, Any] = {"json": {"queues": ["q"], "block_for": "0s"}, "headers": worker}
        _assert_unavailable(*await _timed(client, "POST", "/tasques/claims", **claim), limit=0.3)
        other.execute("ROLLBACK")
    finally:
        other.close()
    async with client.post("/tasques/claims", **claim) as resp:
        assert resp.status == 200
        assert [t["id"] for t in await resp.json()] == ["a"]


async def test_ready_and_health_stay_open_with_basic_auth(aiohttp_client: AiohttpClient, sqlite_path: Path) -> None:
    config = _config({"sqlite": {"path": str(sqlite_path)}}, server={"basic_auth": [{"name": "u", "password": "p"}]})
    client = await aiohttp_client(tasques.server.build_server(config, SqliteStore(str(sqlite_path))))
    async with client.get("/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ready", "store": "sqlite"}
    async with client.get("/health") as resp:
        assert resp.status == 200
    async with client.get("/queues") as resp:
        assert resp.status == 401
